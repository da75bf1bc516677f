"""Sweep YAML checks: W&B's own schema, then every parameter against the trial config.

A sweep registered with a typo (`lora_rank` for `lora_r`), a float range for an integer, or an
out-of-range value would otherwise train hundreds of runs with the wrong values. (The engine's
schema already catches `log_uniform` written in real units instead of e-exponents.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from agent.trial.config import (
    LLAMA_LINEAR_LAYERS,
    PARAMETER_TYPES,
    PARAMETERS,
    TARGET_MODULE_ALIASES,
    ConfigError,
    TrialConfig,
    load_yaml_mapping,
    unknown_parameter,
)

# Distributions whose samples are floats; an integer parameter needs int_uniform, q_* or values.
_FLOAT_DISTRIBUTIONS = {
    "param_uniform",
    "param_loguniform",
    "param_loguniform_v2",
    "param_inv_loguniform",
    "param_inv_loguniform_v2",
    "param_normal",
    "param_lognormal",
    "param_beta",
}
# Where a distribution is unbounded, its 1st and 99th percentiles stand for its range.
_UNBOUNDED = {"param_normal", "param_qnormal", "param_lognormal", "param_qlognormal"}


def load_sweep_config(path: str | Path) -> dict[str, Any]:
    return load_yaml_mapping(path, "sweep file", "method, metric and parameters")


def runs_trainer(config: dict[str, Any]) -> bool:
    """True when the sweep launches our trial program (then its parameters are ours to check)."""
    command = [str(part) for part in config.get("command", [])]
    return "agent.train" in command or str(config.get("program", "")).endswith(("agent/train.py", "agent.train"))


def sweep_problems(config: dict[str, Any]) -> list[str]:
    """Every problem at once: the engine's schema violations, then our parameters'."""
    import sweeps

    problems = [" ".join(str(v).split()) for v in sweeps.schema_violations_from_proposed_config(config)]
    problems += launch_problems(config) + upload_problems(config)
    parameters = config.get("parameters")
    if isinstance(parameters, dict):
        if config.get("method") == "grid":
            problems += grid_problems(parameters)
        if runs_trainer(config):
            problems += parameter_problems(parameters)
            if is_llama(parameters):
                problems += target_module_problems(parameters)
    return list(dict.fromkeys(problems))  # one line per problem, in order


def launch_problems(config: dict[str, Any]) -> list[str]:
    """`wandb agent` launches `command`, or `python <program>` by default: with neither it has nothing to run."""
    if config.get("program") or config.get("command"):
        return []
    return [
        "the sweep has neither program nor command, so `wandb agent` has nothing to launch; add "
        "command: [${env}, ${interpreter}, -m, agent.train, ${args}]"
    ]


def upload_problems(config: dict[str, Any]) -> list[str]:
    """What `wandb sweep` itself refuses before upload, checked by W&B's own code.

    Today that is a min/max pair mixing an int and a float with no distribution ("ambiguous"):
    the engine's schema accepts it, `wandb sweep` does not.
    """
    from wandb.apis.public.sweeps import _validate_config_and_fill_distribution

    try:
        _validate_config_and_fill_distribution(config)
    except (ValueError, TypeError) as error:  # TypeError: a parameter spec that is not a mapping
        return [f"wandb sweep refuses this file: {' '.join(str(error).split())}"]
    return []


def grid_problems(parameters: dict[str, Any]) -> list[str]:
    discrete = {"param_single_value", "param_categorical", "param_int_uniform", "param_quniform"}
    return [
        f"{param.name}: a grid needs values, value, int_uniform or q_uniform, not {param.config.get('distribution')}"
        for param in _hyperparameters(parameters)
        if param.type not in discrete
    ]


def parameter_problems(parameters: dict[str, Any]) -> list[str]:
    problems = [unknown_parameter(name) for name in parameters if name not in PARAMETERS]
    for param in _hyperparameters(parameters):
        if param.name not in PARAMETERS:
            continue
        if PARAMETER_TYPES[param.name] is int and param.type in _FLOAT_DISTRIBUTIONS:
            problems.append(
                f"{param.name} is an integer but its distribution {param.config['distribution']} samples floats; "
                "use int_uniform, a q_ distribution or values"
            )
        else:
            problems += [p for value in candidate_values(param) for p in value_problems(param.name, value)]
    return problems


def is_llama(parameters: dict[str, Any]) -> bool:
    """Whether every model the sweep can use is Llama-architecture: the default, the tiny one, or a llama id."""
    models = [PARAMETERS["model_name_or_path"].default]
    spec = parameters.get("model_name_or_path")
    if isinstance(spec, dict):
        models = spec.get("values") or ([spec["value"]] if "value" in spec else models)
    return all("llama" in str(model).lower() for model in models)


def target_module_problems(parameters: dict[str, Any]) -> list[str]:
    """Module names no Llama-architecture model has (`qz`), caught before any GPU time.

    Other architectures name their layers differently; for them the trial program checks the
    names against the loaded model, before training.
    """
    spec = parameters.get("target_modules")
    if not isinstance(spec, dict):
        return []
    values = spec.get("values") or ([spec["value"]] if "value" in spec else [])
    problems = []
    for value in values:
        if not isinstance(value, str) or value in TARGET_MODULE_ALIASES:  # a non-string is a type problem already
            continue
        unknown = [name.strip() for name in value.split(",") if name.strip() not in LLAMA_LINEAR_LAYERS]
        if unknown:
            problems.append(
                f"target_modules={value!r}: Llama models have no linear layer named {', '.join(unknown)}; use "
                f"{', '.join(TARGET_MODULE_ALIASES)}, or a comma list of {', '.join(LLAMA_LINEAR_LAYERS)}"
            )
    return problems


def _hyperparameters(parameters: dict[str, Any]) -> list[Any]:
    """The engine's view of each parameter; ones it cannot parse are already schema violations."""
    from sweeps.params import HyperParameter

    parsed = []
    for name, spec in parameters.items():
        try:
            parsed.append(HyperParameter(name, spec))
        except Exception:  # jsonschema.ValidationError, ValueError, TypeError on malformed specs
            continue
    return parsed


def candidate_values(param: Any) -> list[Any]:
    """The values a parameter can take (categorical) or its range's ends (distributions)."""
    if "values" in param.config:
        return list(param.config["values"])
    if "value" in param.config:
        return [param.config["value"]]
    ends = [0.01, 0.99] if param.type in _UNBOUNDED else [0.0, 1.0]
    return [_plain(v) for v in param.ppf(np.array(ends))]


def value_problems(name: str, value: Any) -> list[str]:
    try:
        TrialConfig.from_params({name: value})
    except ConfigError as error:
        return error.problems
    return []


def grid_size(config: dict[str, Any], limit: int = 100_000) -> int | None:
    """How many points a grid has, counted by the engine itself (None for random and Bayes)."""
    if config.get("method") != "grid":
        return None
    from sweeps.grid_search import grid_search_next_runs

    proposals = grid_search_next_runs([], config, n=limit)
    return sum(proposal is not None for proposal in proposals)


def load_valid_sweep(path: str | Path) -> dict[str, Any]:
    """The sweep config, or a ConfigError holding every problem (what `validate` prints)."""
    config = load_sweep_config(path)
    problems = sweep_problems(config)
    if problems:
        raise ConfigError(problems)
    return config


def _plain(value: Any) -> Any:
    """numpy scalars -> Python numbers, so type checks see int or float."""
    return value.item() if hasattr(value, "item") else value
