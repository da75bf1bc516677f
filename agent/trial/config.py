"""The trial config: every parameter a sweep can set, with its type, default, range and help.

One small frozen dataclass per concern. Parameters are flat and unique across sections, because
that is how sweeps name them (`lora_r`, `learning_rate`, ...). `TrialConfig.from_params` is the only
way in: it rejects unknown names and wrong types and collects every problem into one error, so a
typo in a sweep YAML can never silently train with a default.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent.errors import UserError

TINY_MODEL = "builtin:tiny-llama"
DEFAULT_CACHE_ROOT = Path.home() / ".cache" / "lora-sweep"
"""Where the built-in tiny model is built once and kept, unless LORA_SWEEP_CACHE names another folder."""
SYNTHETIC_DATASET = "builtin:synthetic"
SAMSUM_SHAPED_DATASET = "builtin:synthetic-samsum"
"""Synthetic dialogues with SAMSum's published shape (utterance counts, speakers, split sizes): for measuring."""

# Sweep-friendly names for LoRA target modules: short axis labels in parallel coordinates.
TARGET_MODULE_ALIASES: dict[str, list[str] | str] = {
    "qv": ["q_proj", "v_proj"],
    "qkv": ["q_proj", "k_proj", "v_proj"],
    "qkvo": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "all-linear": "all-linear",
}
LLAMA_LINEAR_LAYERS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head")
"""Every linear layer of a Llama-architecture model (Llama 3.2 and the tiny built-in model alike)."""


class ConfigError(UserError, ValueError):
    """Bad user input. Each problem is one line saying what is wrong and how to fix it."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


def param(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class ModelArgs:
    model_name_or_path: str = param(
        "meta-llama/Llama-3.2-1B-Instruct",
        f"Hub id or local path of the base model; {TINY_MODEL} builds a tiny CPU model",
    )
    bf16: str = param("auto", "bfloat16 training: auto (when the GPU supports it), true or false")

    def problems(self) -> list[str]:
        out = []
        if not self.model_name_or_path.strip():
            out.append("model_name_or_path is empty: give a Hub id or a local model directory")
        if self.bf16 not in ("auto", "true", "false"):
            out.append(f"bf16={self.bf16!r}: use auto, true or false")
        return out


@dataclass(frozen=True)
class DataArgs:
    dataset: str = param(
        "knkarthick/samsum",
        "Hub dataset id (SAMSum mirror), a local JSON/JSONL/CSV/parquet file or directory with "
        f"dialogue/summary columns, {SYNTHETIC_DATASET}, or {SAMSUM_SHAPED_DATASET} (SAMSum's lengths, for measuring)",
    )
    max_source_length: int = param(512, "dialogue tokens kept in the prompt (longer dialogues are cut)")
    max_target_length: int = param(128, "summary tokens trained on, end-of-turn included")

    def problems(self) -> list[str]:
        out = []
        if not self.dataset.strip():
            out.append("dataset is empty: give a Hub id, a local file or directory, or " + SYNTHETIC_DATASET)
        out += _positive(self, "max_source_length", "max_target_length")
        return out


@dataclass(frozen=True)
class LoraArgs:
    lora_r: int = param(8, "LoRA rank: adapter capacity; trainable parameters grow linearly with it")
    lora_alpha: int = param(16, "LoRA scaling numerator (update scale = alpha / r); usually 2 x rank")
    lora_dropout: float = param(0.05, "dropout on the LoRA input, in [0, 1)")
    target_modules: str = param(
        "qv", "layers that get adapters: qv, qkv, qkvo, all-linear, or a comma list of module names"
    )

    def problems(self) -> list[str]:
        out = _positive(self, "lora_r", "lora_alpha")
        if not 0 <= self.lora_dropout < 1:
            out.append(f"lora_dropout={self.lora_dropout}: must be in [0, 1)")
        if not self.target_modules.strip() or any(not m.strip() for m in self.target_modules.split(",")):
            out.append(
                f"target_modules={self.target_modules!r}: use qv, qkv, qkvo, all-linear, "
                "or a comma list of module names such as q_proj,v_proj"
            )
        return out

    def module_names(self) -> list[str] | str:
        """What peft's `LoraConfig(target_modules=...)` takes."""
        alias = TARGET_MODULE_ALIASES.get(self.target_modules)
        if alias is not None:
            return alias
        return [m.strip() for m in self.target_modules.split(",")]


@dataclass(frozen=True)
class TrainArgs:
    learning_rate: float = param(2e-4, "peak AdamW learning rate (LoRA tolerates ~10x full fine-tuning)")
    num_train_epochs: float = param(1.0, "passes over the training split (ignored when max_steps > 0)")
    max_steps: int = param(-1, "optimizer steps to train; -1 lets num_train_epochs decide")
    per_device_train_batch_size: int = param(8, "examples per forward pass on each device")
    gradient_accumulation_steps: int = param(1, "forward passes per optimizer step")
    warmup_ratio: float = param(0.03, "share of the steps spent warming up the learning rate, in [0, 1)")
    weight_decay: float = param(0.0, "AdamW weight decay on the adapter weights")
    logging_steps: int = param(10, "steps between training-loss logs")
    seed: int = param(42, "seed for data order, LoRA init and dropout")
    output_dir: str = param("outputs", "where each run writes its adapter and config, under a run-id folder")

    def problems(self) -> list[str]:
        out = _positive(
            self,
            "learning_rate",
            "num_train_epochs",
            "per_device_train_batch_size",
            "gradient_accumulation_steps",
            "logging_steps",
        )
        if self.max_steps == 0 or self.max_steps < -1:
            out.append(f"max_steps={self.max_steps}: give a positive step count, or -1 to train by epochs")
        if not 0 <= self.warmup_ratio < 1:
            out.append(f"warmup_ratio={self.warmup_ratio}: must be in [0, 1)")
        if self.weight_decay < 0:
            out.append(f"weight_decay={self.weight_decay}: must be >= 0")
        return out


@dataclass(frozen=True)
class EvalArgs:
    eval_steps: int = param(100, "steps between ROUGE evaluations on the fixed validation subset")
    eval_subset_size: int = param(200, "validation examples scored at every evaluation (the objective)")
    eval_batch_size: int = param(32, "prompts generated together at evaluation")
    max_new_tokens: int = param(64, "generation budget per summary")
    plateau_patience: int = param(
        0,
        "evaluations in a row without an improvement of at least plateau_threshold before training stops "
        "early (the best adapter is still scored and saved); 0 trains every step",
    )
    # The default is the review's MIN_GAIN (agent/review/verdict.py): a smaller gain changes no decision there.
    plateau_threshold: float = param(
        0.3, "the smallest gain of the objective (ROUGE-L x100) that counts as an improvement for plateau_patience"
    )

    def problems(self) -> list[str]:
        out = _positive(self, "eval_steps", "eval_subset_size", "eval_batch_size", "max_new_tokens")
        if self.plateau_patience < 0:
            out.append(f"plateau_patience={self.plateau_patience}: must be >= 0 (0 turns plateau stopping off)")
        if not 0 <= self.plateau_threshold < float("inf"):
            out.append(f"plateau_threshold={self.plateau_threshold}: must be a number >= 0 (ROUGE-L x100 points)")
        return out


@dataclass(frozen=True)
class PreemptArgs:
    """Checkpoints and launches: what lets a run survive preemption (docs/preemption.md)."""

    checkpoint_dir: str = param(
        "",
        "a mounted or network volume for checkpoints (under a run-id folder), so a requeued run resumes "
        "on any machine; empty keeps them under output_dir and, for an online run, in the W&B artifact "
        "checkpoint-<run_id>",
    )
    preempt_grace_s: float = param(
        3.0,
        "seconds after SIGTERM within which a last checkpoint must be written (RunPod kills at 5 s; a "
        "lora-sweep pod ends its agents at 3.5 s)",
    )
    max_attempts: int = param(3, "launches of a run that may fail or die unannounced before it ends failed")

    def problems(self) -> list[str]:
        out = _positive(self, "max_attempts")
        if self.preempt_grace_s < 0:
            out.append(f"preempt_grace_s={self.preempt_grace_s}: must be >= 0 (0 saves nothing on SIGTERM)")
        return out


@dataclass(frozen=True)
class DeviceArgs:
    """How a trial uses its device: speed and memory. Within float tolerance, never what it learns; a
    resume still keeps them, since they change the numbers in the last bits and a resumed run must
    continue bit for bit."""

    padding_free: bool = param(
        True,
        "pack each batch's examples into one row with position ids that restart per example, instead of "
        "padding them; the same examples per step, no attention across them (docs/performance.md)",
    )
    torch_compile: bool = param(False, "compile the model with torch.compile (transformers' torch_compile)")
    use_liger_kernel: bool = param(
        False,
        "Liger's Triton kernels for RMSNorm, RoPE and SwiGLU (CUDA only; pip install 'lora-sweep[liger]'); "
        "never its fused lm_head loss, which would bypass a LoRA adapter there",
    )

    def problems(self) -> list[str]:
        return []


SECTIONS = (ModelArgs, DataArgs, LoraArgs, TrainArgs, EvalArgs, PreemptArgs, DeviceArgs)


@dataclass(frozen=True)
class TrialConfig:
    model: ModelArgs = ModelArgs()
    data: DataArgs = DataArgs()
    lora: LoraArgs = LoraArgs()
    train: TrainArgs = TrainArgs()
    eval: EvalArgs = EvalArgs()
    preempt: PreemptArgs = PreemptArgs()
    device: DeviceArgs = DeviceArgs()

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TrialConfig:
        """Build from flat `name -> value` parameters; every problem is reported at once."""
        problems: list[str] = []
        values: dict[str, Any] = {}
        for name, raw in params.items():
            if name.startswith("_"):  # keys W&B injects itself, such as `_wandb` on requeued runs
                continue
            spec = PARAMETERS.get(name)
            if spec is None:
                problems.append(unknown_parameter(name))
                continue
            try:
                values[name] = coerce(name, raw)
            except ConfigError as error:
                problems += error.problems
        sections = {}
        for section_name, section_cls in zip(SECTION_NAMES, SECTIONS):
            own = {f.name: values[f.name] for f in dataclasses.fields(section_cls) if f.name in values}
            sections[section_name] = section_cls(**own)
        config = cls(**sections)
        if not problems:
            problems = [p for section in sections.values() for p in section.problems()]
        if problems:
            raise ConfigError(problems)
        return config

    def to_params(self) -> dict[str, Any]:
        """The flat parameters: what goes into `wandb.init(config=...)` and `trial_config.yaml`."""
        return {k: v for section in self.sections() for k, v in dataclasses.asdict(section).items()}

    def sections(self) -> tuple:
        return (self.model, self.data, self.lora, self.train, self.eval, self.preempt, self.device)

    def training_params(self) -> dict[str, Any]:
        """The parameters a checkpoint depends on: all but where things are kept and how stops are handled,
        which a relaunch may change (another volume, another grace) and still continue the same run."""
        return {k: v for k, v in self.to_params().items() if k not in RESUME_NEUTRAL}


RESUME_NEUTRAL = {"output_dir", *(f.name for f in dataclasses.fields(PreemptArgs))}
SECTION_NAMES = [f.name for f in dataclasses.fields(TrialConfig)]
PARAMETERS: dict[str, dataclasses.Field] = {f.name: f for section in SECTIONS for f in dataclasses.fields(section)}
PARAMETER_TYPES: dict[str, type] = {
    name: kind for section in SECTIONS for name, kind in typing.get_type_hints(section).items()
}
"""Each parameter's Python type (int, float, str or bool), resolved from the dataclass annotations."""
_TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
_BOOL_WORDS = {"true": True, "false": False}


def load_yaml_mapping(path: str | Path, what: str, shape: str) -> dict[str, Any]:
    """A YAML file that must hold a mapping; every failure is one line naming the file.

    `what` names the file ("sweep file"), `shape` says what the mapping should hold.
    """
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{what} {str(path)!r} does not exist") from None
    except OSError as error:
        raise ConfigError(f"cannot read {what} {str(path)!r}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {str(path)!r} is not UTF-8 text (a binary file?): give a YAML file") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{what} {str(path)!r} is not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{what} {str(path)!r} must be a mapping of {shape}")
    return loaded


def unknown_parameter(name: str) -> str:
    close = difflib.get_close_matches(name, PARAMETERS, n=1)
    hint = f"did you mean {close[0]}?" if close else "see `python -m agent.train --help` for the list"
    return f"unknown parameter {name!r}: {hint}"


def coerce(name: str, value: Any) -> Any:
    """Accept a value of the parameter's type, or its string form (command-line flags are strings)."""
    want = PARAMETER_TYPES[name]
    default = PARAMETERS[name].default
    example = str(default).lower() if want is bool else default
    bad = ConfigError(f"{name}={value!r} is not {_TYPE_WORDS[want]}; for example {name}={example}")
    if want is bool:  # a YAML true/false, or its string form; never 0/1, which a typo could hide behind
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
            return _BOOL_WORDS[value.strip().lower()]
        raise bad
    if isinstance(value, str) and want is not str:
        return _parse(value, want, bad)
    if want is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if want is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, want) and not (want is int and isinstance(value, bool)):
        return value
    raise bad


def _parse(text: str, want: type, bad: ConfigError) -> Any:
    text = text.strip()
    try:
        number = float(text)
    except ValueError:
        raise bad from None
    if want is int:
        if not number.is_integer():
            raise bad
        return int(number)
    return number


def _positive(section: Any, *names: str) -> list[str]:
    return [f"{n}={getattr(section, n)}: must be > 0" for n in names if not getattr(section, n) > 0]
