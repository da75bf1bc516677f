"""The one vocabulary: what a sweep's runs are called, the words for how they stand, and the keys a run logs.

W&B sweeps (through `wandb.Api()`) and local sweeps (from the SQLite store) are both turned into
the records below, so everything after fetching is one code path.

Glossary, used the same way in code, files, docs and summary keys:
- **run**: one parameter set of a sweep, under one W&B run id, from its first start to its end.
- **launch**: one start of the trial program for a run (`python -m agent.train`). The trial
  counts its launches in the run's checkpoint folder (`launches.json`, `agent/trial/launches.py`)
  and writes `launch/number` and `launch/outcome` to the summary. A preempted run is launched
  again under the same id; a requeue on W&B is a new launch, as is one by the local agent.
- **claim**: one time a local agent took a queued run from the store to launch it
  (`runs.claims`, `Claim` in `agent/local/store.py`). Every write about a running run names its
  claim, so an agent whose run was requeued behind its back writes nothing. W&B's own controller
  keeps its claims to itself; a launch is what both kinds of sweep have.
- **max_attempts** (a trial parameter, named so in users' sweep files): how many launches of a run
  may fail before it gives up. "Attempt" means nothing else anywhere.
- **outcome**: how a launch or a claim ended. A `RunState` word, or one of two words of their own:
  `GAVE_UP` (a launch that found max_attempts used up, trained nothing, and ended its run failed) and
  `TAKEN` (a claim whose run another agent requeued after missed heartbeats: it dropped its run
  without a write).
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field
from typing import Any

# The keys the trial program writes to its run: history rows and summary alike. Code that reads or
# writes a run's keys names them from here (tests/test_layout.py holds literal summary keys to it).
STEP_KEY = "train/global_step"
"""The x axis of every curve: the optimizer step the trial program logs with each evaluation."""
LOSS_KEY = "train/loss"
"""The training loss the trial program logs (through HF Trainer) every `logging_steps`."""
OBJECTIVE = "eval/rougeL"
"""The trial program's objective (ROUGE-L x100 on the fixed validation subset); sweeps name it."""
COST_KEY = "cost/usd"
"""The run's GPU time x the price of a GPU-hour, in its summary (only when a price was given)."""
SHARE_KEY = "gpu/share"
"""The share of its GPU a run held (1/N with --agents-per-gpu N), in its summary when it shared one."""
MEMORY_KEYS = ("gpu/allocated_gb", "gpu/reserved_gb")
"""The run's own CUDA memory (torch's allocator, this process only), logged with each training loss."""
PEAK_MEMORY_KEY = "gpu/peak_allocated_gb"
"""The run's peak CUDA memory allocated, in its summary when it ran on a GPU."""
GPU_TOTAL_KEY = "gpu/total_gb"
"""The memory the run could use, in its summary when it ran on a GPU: the GPU's total, or its
share's cap under `--agents-per-gpu` (the review's headroom is this minus the largest peak)."""
EVAL_PREFIX = "eval/"
"""Each evaluation on the fixed subset logs `eval/<metric>` (rouge1, rouge2, rougeL, rougeLsum, gen_len)."""
FINAL_PREFIX = "final/"
"""The best adapter scored once on the whole validation split: `final/<metric>`, never the objective."""
FINAL_OBJECTIVE = FINAL_PREFIX + "rougeL"
SAMPLES_KEY = EVAL_PREFIX + "samples"
"""A W&B Table of sample predictions (dialogue, reference, prediction, rougeL)."""
TRAINABLE_PARAMS_KEY = "train/trainable_params"
TOTAL_PARAMS_KEY = "train/total_params"
TOKENS_PER_S_KEY = "train/tokens_per_s"
"""Real (non-padding) tokens trained per second of training, evaluations excluded."""
REAL_TOKEN_SHARE_KEY = "train/real_token_share"
"""The share of the tokens in training batches that are not padding."""
LOAD_S_KEY = "time/load_s"
TRAIN_S_KEY = "time/train_s"
EVAL_S_KEY = "time/eval_s"
FINAL_EVAL_S_KEY = "time/final_eval_s"
PEAK_RESERVED_KEY = "gpu/peak_reserved_gb"
LAUNCH_NUMBER_KEY = "launch/number"
"""Which launch of its run this is (1 for the first), as counted in the run's `launches.json`."""
LAUNCH_OUTCOME_KEY = "launch/outcome"
"""How the latest launch ended: a `RunState` word or `GAVE_UP`."""
PULL_FAILURES_KEY = "launch/pull_failures"
"""Launches in a row whose checkpoint pull failed (the summary, which W&B keeps across requeues, counts them)."""
RESUMED_FROM_STEP_KEY = "launch/resumed_from_step"
PLATEAU_STOP_KEY = "plateau/stopped_at_step"
"""The step at which plateau stopping (`plateau_patience`) ended training, in the summary of a run it
stopped early; absent when the run trained every step."""
FAILURE_REASON_KEY = "failure_reason"
"""Why the run failed, in one line."""
RUNTIME_KEY = "_runtime"
"""W&B's own: the run's seconds, in its summary."""

PREEMPTED_EXIT_CODE = 143
"""128 + SIGTERM: how the trial program exits when preempted, so that its controller requeues it."""
DEFAULT_GOAL = "minimize"
"""W&B's schema default when a sweep's metric has no `goal`."""


class RunState(str, enum.Enum):
    """W&B's run states, the one vocabulary every part uses for how a run stands: the local store
    keeps these words, `lora-sweep runs` prints them, the local controller maps them to the
    engine's (`agent/local/controller.py`), and the trial program records its launches in them
    (`agent/trial/launches.py`). Members are strings: `RunState.FINISHED == "finished"`."""

    PENDING = "pending"
    """Waiting for an agent: new, or put back by an agent that was interrupted or died."""
    RUNNING = "running"
    PREEMPTED = "preempted"
    """Stopped by its machine, or died after marking itself preempting: queued again under its own
    id, to resume from its checkpoint."""
    FINISHED = "finished"
    FAILED = "failed"
    """Exited with an error."""
    CRASHED = "crashed"
    """Killed by a signal nobody in the sweep sent (the OOM killer, a user's kill)."""
    STOPPED = "stopped"
    """Stopped by its controller: early termination, or a cancelled sweep."""

    __str__ = str.__str__  # print and format as the bare word, on every Python version
    __format__ = str.__format__


GAVE_UP = "gave_up"
"""A launch's outcome of its own: max_attempts was used up, so it trained nothing and ended its run failed."""
TAKEN = "taken"
"""A claim's outcome of its own: another agent requeued the run after missed heartbeats."""


class SweepState(str, enum.Enum):
    """W&B's sweep states, the words the local store keeps and `lora-sweep pause/resume/cancel` set."""

    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    """No new runs are handed out; running ones go on."""
    FINISHED = "FINISHED"
    """The search has nothing left to propose (a grid done, `run_cap` reached)."""
    CANCELED = "CANCELED"
    """Stopped by its user: running runs are stopped and no new ones start."""

    __str__ = str.__str__
    __format__ = str.__format__


FAILED_STATES = (RunState.FAILED, RunState.CRASHED)
QUEUED_STATES = (RunState.PENDING, RunState.PREEMPTED)
"""Runs waiting for an agent; a preempted one resumes."""


@dataclass(frozen=True)
class Objective:
    """A sweep's `metric:` block: what to rank runs by, and which way."""

    name: str | None
    """None when the sweep declares no metric (grid and random sweeps may omit it)."""
    goal: str = DEFAULT_GOAL

    @property
    def maximize(self) -> bool:
        return self.goal == "maximize"


def is_wandb_path(sweep_id: str) -> bool:
    """`entity/project/id` names a W&B sweep; a bare id is a local one."""
    return sweep_id.count("/") == 2 and all(sweep_id.split("/"))


def safe_name(text: str) -> str:
    """`text` as one file or folder name (a sweep id, a GPU UUID): every run of other characters than
    letters, digits, `_` and `-` becomes one `-`, so W&B paths, colons and `..` cannot escape a folder."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")


def objective_of(sweep_config: dict[str, Any]) -> Objective:
    """The one reading of `(metric name, goal)` from a sweep config, with W&B's defaults."""
    metric = sweep_config.get("metric") or {}
    return Objective(metric.get("name"), metric.get("goal", DEFAULT_GOAL))


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    state: str
    """A `RunState` word (W&B's own API may also give others, such as `killed`)."""
    config: dict[str, Any]
    """The run's parameter values as the sweep assigned them (no `_wandb` keys)."""
    summary: dict[str, Any] = field(default_factory=dict)
    """The run summary: `eval/rougeL` holds the best evaluation, plus `final/*`, `train/*`, `_runtime`."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """Logged rows holding the objective or `train/loss`, each with `train/global_step`."""
    runtime_s: float | None = None
    exit_code: int | None = None


@dataclass(frozen=True)
class SweepRecord:
    sweep_id: str
    config: dict[str, Any]
    """The sweep definition as registered (method, metric, parameters, command ...)."""
    runs: list[RunRecord]

    @property
    def objective(self) -> Objective:
        """The sweep's metric; a sweep that names none is ranked by the trial program's objective."""
        declared = objective_of(self.config)
        return Objective(declared.name or OBJECTIVE, declared.goal)

    @property
    def parameters(self) -> dict[str, dict[str, Any]]:
        """Every parameter spec, nested blocks flattened to dotted names, in declaration order."""
        return flatten_parameters(self.config.get("parameters") or {})

    @property
    def swept_parameters(self) -> list[str]:
        """The parameters the sweep varies, in declaration order (fixed ones left out)."""
        return [name for name, spec in self.parameters.items() if not is_fixed(spec)]


def flatten_parameters(specs: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """`{optim: {parameters: {lr: ...}}}` (W&B's nested form) becomes `{"optim.lr": ...}`."""
    flat: dict[str, dict[str, Any]] = {}
    for name, spec in specs.items():
        spec = spec if isinstance(spec, dict) else {"value": spec}
        if isinstance(spec.get("parameters"), dict):
            flat.update(flatten_parameters(spec["parameters"], f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = spec
    return flat


def config_value(config: dict[str, Any], name: str) -> Any:
    """A parameter's value in a run config: a flat key, else a dotted path into nested dicts; None if absent."""
    if name in config:
        return config[name]
    value: Any = config
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def objective_value(run: RunRecord, objective: Objective) -> float | None:
    """The run's objective: its summary value (the best evaluation), else the best value in its history."""
    value = run.summary.get(objective.name)
    if is_number(value):
        return float(value)
    logged = [float(row[objective.name]) for row in run.history if is_number(row.get(objective.name))]
    if not logged:
        return None
    return max(logged) if objective.maximize else min(logged)


def rank_runs(record: SweepRecord) -> list[RunRecord]:
    """The one ranking of runs: finished runs first, then the others, each best first by the sweep's
    goal; runs with no objective value last, in sweep order. `runs`, `demo` and `report` all use it,
    so the best configuration they name is always the same run."""
    objective = record.objective

    def rank(run: RunRecord) -> tuple[int, float]:
        value = objective_value(run, objective)
        if value is None:
            return (2, 0.0)
        return (0 if run.state == RunState.FINISHED else 1, -value if objective.maximize else value)

    return sorted(record.runs, key=rank)  # stable: ties keep sweep order


def best_run(record: SweepRecord) -> RunRecord | None:
    """The winner: the best finished run with an objective value; None while no run qualifies."""
    ranked = rank_runs(record)
    if ranked and ranked[0].state == RunState.FINISHED and objective_value(ranked[0], record.objective) is not None:
        return ranked[0]
    return None


def is_fixed(spec: dict[str, Any]) -> bool:
    """A sweep parameter spec that admits one value: `value: x` or `values: [x]`."""
    return "value" in spec or len(spec.get("values", [None, None])) < 2


def is_number(value: Any) -> bool:
    """A finite int or float that is not a bool: what a metric value must be to rank runs."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
