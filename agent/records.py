"""What a finished (or running) sweep looks like once fetched: the one shape that review code reads.

W&B sweeps (through `wandb.Api()`) and local sweeps (from the SQLite store) are both turned into
these records, so everything after fetching is one code path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

STEP_KEY = "train/global_step"
"""The x axis of every curve: the optimizer step the trial program logs with each evaluation."""
OBJECTIVE = "eval/rougeL"
"""The trial program's objective (ROUGE-L x100 on the fixed validation subset); sweeps name it."""
DEFAULT_GOAL = "minimize"
"""W&B's schema default when a sweep's metric has no `goal`."""


@dataclass(frozen=True)
class Objective:
    """A sweep's `metric:` block: what to rank runs by, and which way."""

    name: str | None
    """None when the sweep declares no metric (grid and random sweeps may omit it)."""
    goal: str = DEFAULT_GOAL

    @property
    def maximize(self) -> bool:
        return self.goal == "maximize"


def objective_of(sweep_config: dict[str, Any]) -> Objective:
    """The one reading of `(metric name, goal)` from a sweep config, with W&B's defaults."""
    metric = sweep_config.get("metric") or {}
    return Objective(metric.get("name"), metric.get("goal", DEFAULT_GOAL))


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    state: str
    """W&B's run states: pending, running, finished, failed, crashed, stopped (preempted runs: preempted)."""
    config: dict[str, Any]
    """The run's parameter values as the sweep assigned them (no `_wandb` keys)."""
    summary: dict[str, Any] = field(default_factory=dict)
    """The run summary: `eval/rougeL` holds the best evaluation, plus `final/*`, `train/*`, `_runtime`."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """Logged rows holding the objective, in order, each with `train/global_step`."""
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
    def swept_parameters(self) -> list[str]:
        """The parameters the sweep varies, in declaration order (fixed ones left out)."""
        return [name for name, spec in self.config.get("parameters", {}).items() if not is_fixed(spec)]


def is_fixed(spec: dict[str, Any]) -> bool:
    """A sweep parameter spec that admits one value: `value: x` or `values: [x]`."""
    return "value" in spec or len(spec.get("values", [None, None])) < 2


def is_number(value: Any) -> bool:
    """A finite int or float that is not a bool: what a metric value must be to rank runs."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
