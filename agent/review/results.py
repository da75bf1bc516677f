"""One row per run, with the swept parameters described once: what every review view reads.

A run counts as *finished* when its state is `finished` and it logged the objective; only
finished runs are ranked, plotted on the parallel coordinates and used for importance and verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.records import (
    COST_KEY,
    FINAL_PREFIX,
    GPU_TOTAL_KEY,
    LOSS_KEY,
    MEMORY_KEYS,
    PEAK_MEMORY_KEY,
    RUNTIME_KEY,
    SHARE_KEY,
    STEP_KEY,
    TRAINABLE_PARAMS_KEY,
    RunRecord,
    SweepRecord,
    config_value,
    is_fixed,
    is_number,
    objective_value,
    rank_runs,
)

FINAL_ROUGE_KEYS = tuple(f"{FINAL_PREFIX}{name}" for name in ("rouge1", "rouge2", "rougeL", "rougeLsum"))
LOG_SCALE_RATIO = 10  # a numeric grid spanning a decade or more reads better on a log axis


@dataclass(frozen=True)
class Parameter:
    name: str
    categorical: bool
    """Strings and booleans (target_modules, bf16) are categories; everything else is a number."""
    log_scale: bool
    """Drawn and judged on a log axis (log distributions, grids spanning a decade or more)."""
    levels: int | None
    """How many values the sweep declares (`values:`); None for a distribution."""


@dataclass(frozen=True)
class RunResult:
    run_id: str
    state: str
    params: dict[str, Any]
    """Every sweep parameter of the run, swept and fixed, as the run received it."""
    objective: float | None
    """The summary value of the sweep's metric (the best evaluation), else the best in history."""
    final_rouge: dict[str, float]
    runtime_s: float | None
    peak_memory_gb: float | None
    cost_usd: float | None
    """The run's `cost/usd`: its GPU time x the price of a GPU-hour; None when no price was given."""
    curve: list[tuple[float, float]]
    """(step, objective) for every evaluation, step 0 being the untuned base model."""
    loss: list[tuple[float, float]] = field(default_factory=list)
    """(step, train/loss) for every logged training loss."""
    memory: list[tuple[float, float]] = field(default_factory=list)
    """(step, GB) of CUDA memory allocated by the run, logged with each training loss on a GPU."""
    gpu_share: float = 1.0
    """The fraction of its GPU the run had: 1/N when N agents shared it."""
    gpu_total_gb: float | None = None
    """The memory the run could use (its GPU's, or its share's cap); None on CPU."""
    trainable_params: float | None = None
    """The adapter's trainable parameters, when the trial logged them."""

    @property
    def finished(self) -> bool:
        return self.state == "finished" and self.objective is not None

    @property
    def gpu_hours(self) -> float | None:
        # A run holds its share of a GPU for its runtime, as it pays for it in cost/usd; runs
        # without GPU memory figures ran on CPU and used no GPU time.
        if self.runtime_s is None or self.peak_memory_gb is None:
            return None
        return self.runtime_s / 3600 * self.gpu_share


@dataclass(frozen=True)
class SweepResults:
    sweep_id: str
    metric: str
    maximize: bool
    swept: list[Parameter]
    fixed: dict[str, Any]
    """The sweep's `value:` parameters."""
    runs: list[RunResult]
    """Best first; runs without an objective last."""

    @property
    def finished(self) -> list[RunResult]:
        return [run for run in self.runs if run.finished]

    @property
    def total_cost(self) -> float | None:
        """What the sweep cost, failed and stopped runs included; None when no run logged a cost."""
        costs = [run.cost_usd for run in self.runs if run.cost_usd is not None]
        return sum(costs) if costs else None

    @property
    def priced(self) -> bool:
        """Some finished run logged a cost: the review then draws and judges what the cost buys."""
        return any(run.cost_usd is not None for run in self.finished)

    def score(self, run: RunResult) -> float:
        """The objective oriented so that higher is better, whatever the metric's goal."""
        return run.objective if self.maximize else -run.objective


def collect_results(sweep: SweepRecord) -> SweepResults:
    maximize = sweep.objective.maximize
    specs = sweep.parameters
    runs = [collect_run(run, specs, sweep) for run in rank_runs(sweep)]
    return SweepResults(
        sweep_id=sweep.sweep_id,
        metric=sweep.objective.name,
        maximize=maximize,
        swept=describe_swept(specs, runs),
        fixed={name: fixed_value(specs, name) for name, spec in specs.items() if is_fixed(spec)},
        runs=runs,
    )


def collect_run(run: RunRecord, specs: dict, sweep: SweepRecord) -> RunResult:
    runtime = run.runtime_s if run.runtime_s is not None else run.summary.get(RUNTIME_KEY)
    names = list(specs) or [name for name in run.config if not name.startswith("_")]
    params = {name: config_value(run.config, name) for name in names}
    return RunResult(
        run_id=run.run_id,
        state=run.state,
        params={
            name: normalize_value(fixed_value(specs, name) if value is None else value)
            for name, value in params.items()
        },
        objective=objective_value(run, sweep.objective),
        final_rouge={key: float(run.summary[key]) for key in FINAL_ROUGE_KEYS if is_number(run.summary.get(key))},
        runtime_s=float(runtime) if is_number(runtime) else None,
        peak_memory_gb=number_in(run.summary, PEAK_MEMORY_KEY),
        cost_usd=number_in(run.summary, COST_KEY),
        curve=series_of(run.history, sweep.objective.name),
        loss=series_of(run.history, LOSS_KEY, keep_non_finite=True),
        memory=series_of(run.history, MEMORY_KEYS[0]),
        gpu_share=number_in(run.summary, SHARE_KEY) or 1.0,
        gpu_total_gb=number_in(run.summary, GPU_TOTAL_KEY),
        trainable_params=number_in(run.summary, TRAINABLE_PARAMS_KEY),
    )


def number_in(summary: dict, key: str) -> float | None:
    return float(summary[key]) if is_number(summary.get(key)) else None


def series_of(history: list[dict], key: str, keep_non_finite: bool = False) -> list[tuple[float, float]]:
    """(step, value) for every history row holding a number under `key` and a numeric step.

    The step is `train/global_step`, else W&B's `_step`; a row whose step is not a number is left out.
    `keep_non_finite` keeps NaN and infinite values (a diverged loss), which W&B stores as floats or
    as the strings "NaN" and "Infinity".
    """
    points = []
    for row in history:
        step, value = row.get(STEP_KEY, row.get("_step")), row.get(key)
        if keep_non_finite and value in NON_FINITE:
            value = float(value)
        if not is_number(step):
            continue
        if is_number(value) or (keep_non_finite and isinstance(value, float)):
            points.append((float(step), float(value)))
    return points


NON_FINITE = ("NaN", "nan", "Infinity", "-Infinity", "inf", "-inf")


def describe_swept(specs: dict, runs: list[RunResult]) -> list[Parameter]:
    """The parameters the sweep varies, in the order the sweep declares them."""
    if not specs:  # a sweep defined elsewhere without `parameters`: whatever varied across runs
        names = [name for name in (runs[0].params if runs else {}) if len({repr(r.params.get(name)) for r in runs}) > 1]
        specs = {name: {} for name in names}
    swept = []
    for name, spec in specs.items():
        if is_fixed(spec):
            continue
        declared = spec.get("values")
        observed = [run.params.get(name) for run in runs if run.params.get(name) is not None]
        # A finished run without the parameter (the sweep changed, or the run came from elsewhere)
        # gets its own "None" category rather than a hole in a numeric axis.
        missing = any(run.finished and run.params.get(name) is None for run in runs)
        categorical = missing or any(not is_number(value) for value in observed + list(declared or []))
        swept.append(
            Parameter(name, categorical, is_log_scale(spec, observed, categorical), len(declared) if declared else None)
        )
    return swept


def is_log_scale(spec: dict, observed: list, categorical: bool) -> bool:
    if categorical:
        return False
    if "log" in str(spec.get("distribution", "")):
        return True
    numbers = [float(value) for value in list(spec.get("values") or observed) if is_number(value)]
    return bool(numbers) and min(numbers) > 0 and max(numbers) / min(numbers) >= LOG_SCALE_RATIO


def fixed_value(specs: dict, name: str) -> Any:
    """A fixed parameter's value; None for a swept one, whose value only the run knows."""
    spec = specs.get(name, {})
    if not is_fixed(spec):
        return None
    return spec["value"] if "value" in spec else spec["values"][0]


def normalize_value(value: Any) -> Any:
    """Lists (an explicit target-module list) become the comma form the trainer accepts."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    return value
