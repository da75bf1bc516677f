"""`next.yaml`: the sweep to run after this one, written from its answers, with a comment on every
line saying why.

- A settled parameter is fixed at the recommended run's value.
- A numeric parameter whose recommended value sits at the edge of the values tried is extended
  beyond that edge (log-spaced on a log scale); a range is re-centred on the recommended value.
- When the leaders are within noise, the values on which the winner and the recommended run
  differ are both kept, and `seed` takes 3 values: a confirmation.
- `max_steps` comes from the plateau, and plateau stopping is on.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from agent.records import is_fixed, is_number
from agent.review.answers import PATIENCE, Answers
from agent.review.formatting import format_value
from agent.review.results import Parameter, SweepResults
from agent.review.verdict import find_runner_up

SEED = "seed"
CONFIRMATION_SEEDS = 3
SET_BY_ANSWERS = ("max_steps", "plateau_patience", "plateau_threshold", SEED)
"""Parameters next.yaml writes from the answers, whatever the previous sweep said."""
TOP_LEVEL = ("program", "method", "metric", "early_terminate", "run_cap", "command")
"""The previous sweep's keys that next.yaml keeps, in this order; `parameters` follows `metric`."""
SEARCH_ONLY = ("early_terminate", "run_cap")
"""Keys of a search that a grid does without: it runs every point once."""
WIDE = 10**6  # no line wrapping in flow-style YAML


def format_next_sweep(config: dict[str, Any], results: SweepResults, answers: Answers) -> str:
    """The previous sweep's file (`config`, as registered) turned into the next one."""
    parameters = next_parameters(config.get("parameters") or {}, results, answers)
    previous = config.get("method", "random")
    method = "grid" if all(grid_ready(spec) for spec, _ in parameters.values()) else previous
    lines = [
        f"# The next sweep after {results.sweep_id}, written by `lora-sweep report` from its answers.",
        f"# Check it with `lora-sweep validate next.yaml`; the tolerance was {answers.tolerance:.2g} {results.metric}.",
    ]
    for key in TOP_LEVEL:
        if key == "method":
            lines.append(line(key, method, method_reason(method, previous)))
        elif key in config and not (key in SEARCH_ONLY and method == "grid"):
            lines.append(line(key, config[key], "as in the previous sweep"))
        if key == "metric":
            lines.append("parameters:  # what the answers settled, extended or left to confirm")
            lines += [line(name, spec, why, indent=2) for name, (spec, why) in parameters.items()]
    return "\n".join(lines) + "\n"


def next_parameters(specs: dict[str, Any], results: SweepResults, answers: Answers) -> dict[str, tuple[Any, str]]:
    """Each parameter of the next sweep: its spec, and why, in the previous sweep's order, then
    those the answers set."""
    recommended, winner = answers.recommended.params, answers.winner.params
    confirming = leaders_within_noise(results, answers)
    swept = {parameter.name: parameter for parameter in results.swept}
    parameters: dict[str, tuple[Any, str]] = {}
    for name, spec in specs.items():
        if name in SET_BY_ANSWERS or not isinstance(spec, dict):
            continue
        if "parameters" in spec:
            parameters[name] = spec, "a nested block, as in the previous sweep"
        elif name not in swept or is_fixed(spec):
            parameters[name] = spec, "fixed in the previous sweep"
        else:
            parameters[name] = next_spec(swept[name], spec, recommended.get(name), winner.get(name), confirming)
    steps = answers.questions["steps"]
    if steps.data["suggested_max_steps"] is not None:
        why = (
            f"the leaders' latest plateau plus {PATIENCE} evaluations"
            if steps.data["leaders_plateaued"]
            else "a leader was still improving at its last evaluation: twice its steps"
        )
        parameters["max_steps"] = {"value": steps.data["suggested_max_steps"]}, why
    patience = f"stop a run after {PATIENCE} evaluations without an improvement beyond the threshold"
    parameters["plateau_patience"] = {"value": PATIENCE}, patience
    threshold = f"the review's tolerance: smaller gains in {results.metric} change no decision"
    parameters["plateau_threshold"] = {"value": round(answers.tolerance, 4)}, threshold
    parameters[SEED] = seed_spec(specs.get(SEED), recommended.get(SEED), confirming)
    return parameters


def line(key: str, value: Any, why: str, indent: int = 0) -> str:
    """`key: value  # why`, the value in YAML's flow style, on one line."""
    shown = yaml.safe_dump(value, default_flow_style=True, width=WIDE).removesuffix("\n...\n").strip()
    return f"{' ' * indent}{key}: {shown}  # {why}"


def grid_ready(spec: Any) -> bool:
    return isinstance(spec, dict) and ("value" in spec or "values" in spec)


def method_reason(method: str, previous: str) -> str:
    if method == previous:
        return "as in the previous sweep"
    return f"every parameter is a list of values now (was {previous})"


def leaders_within_noise(results: SweepResults, answers: Answers) -> bool:
    """The runner-up (another configuration) within the tolerance of the winner, or the recommended
    run not the winner: either way the lead is noise, and another seed could reorder them."""
    runner_up = find_runner_up(results)
    close = runner_up is not None and results.score(answers.winner) - results.score(runner_up) <= answers.tolerance
    return close or answers.recommended is not answers.winner


def next_spec(parameter: Parameter, spec: dict, chosen: Any, winner: Any, confirming: bool) -> tuple[dict, str]:
    shown = format_value(chosen)
    if confirming and chosen != winner:
        return (
            {"values": [chosen, winner]},
            f"the recommended {shown} and the winner's {format_value(winner)}, within noise: confirm",
        )
    if "values" in spec and not parameter.categorical and is_number(chosen):
        values = sorted(float(value) for value in spec["values"])
        beyond = extend(values, float(chosen), parameter.log_scale, all(isinstance(v, int) for v in spec["values"]))
        if beyond:
            return {"values": beyond}, f"{shown} is at the edge of {format_list(values)}: extended beyond it"
    if "min" in spec and "max" in spec and is_number(chosen):
        return {**spec, **recentre(spec, float(chosen))}, f"re-centred on the recommended {shown}"
    return {"value": chosen}, "settled: the recommended run's value"


def extend(values: list[float], chosen: float, log_scale: bool, integers: bool) -> list | None:
    """The edge value and two more beyond it, when `chosen` is the smallest or largest value tried;
    None otherwise. Log-spaced by the last ratio (its square root when that exceeds 4, so that a
    decade grid steps by about 3x), else evenly by the last gap."""
    if len(values) < 2 or chosen not in (values[0], values[-1]):
        return None
    upward = chosen == values[-1]
    if log_scale and values[0] > 0:
        ratio = values[-1] / values[-2] if upward else values[1] / values[0]
        step = math.sqrt(ratio) if ratio > 4 else ratio
        points = [chosen * step**k if upward else chosen / step**k for k in range(3)]
    else:
        gap = values[-1] - values[-2] if upward else values[1] - values[0]
        points = [chosen + k * gap if upward else chosen - k * gap for k in range(3)]
        if values[0] > 0:
            points = [point for point in points if point > 0]
    shaped = sorted({round(point) if integers else float(f"{point:.3g}") for point in points})
    if integers:
        shaped = [point for point in shaped if point >= 1]
    return shaped if len(shaped) > 1 else None


def recentre(spec: dict, chosen: float) -> dict:
    """The same width of range, centred on `chosen` (on a log axis for a log distribution)."""
    low, high = float(spec["min"]), float(spec["max"])
    if "log" in str(spec.get("distribution", "")) and low > 0:
        half = math.sqrt(high / low)
        return {"min": float(f"{chosen / half:.3g}"), "max": float(f"{chosen * half:.3g}")}
    half = (high - low) / 2
    new_low = max(chosen - half, 0.0) if low >= 0 else chosen - half
    return {"min": float(f"{new_low:.3g}"), "max": float(f"{chosen + half:.3g}")}


def format_list(values: list[float]) -> str:
    return "[" + ", ".join(format_value(value) for value in values) + "]"


def seed_spec(previous: dict | None, seed: Any, confirming: bool) -> tuple[dict, str]:
    if confirming:
        start = int(seed) if is_number(seed) else 0
        seeds = list(range(start, start + CONFIRMATION_SEEDS))
        return {"values": seeds}, f"the leaders are within noise: {CONFIRMATION_SEEDS} seeds each"
    if previous is not None:
        return previous, "as in the previous sweep"
    return {"value": seed if is_number(seed) else 0}, "one seed: the winner's lead is beyond noise"
