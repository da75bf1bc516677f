"""The runs of a local sweep as a table for people or JSON for scripts."""

from __future__ import annotations

import json
from typing import Any

from agent.records import RunRecord, SweepRecord, is_number


def objective(run: RunRecord, metric_name: str) -> float | None:
    value = run.summary.get(metric_name)
    return float(value) if is_number(value) else None


def sort_by_objective(record: SweepRecord) -> list[RunRecord]:
    """Best first by the sweep's goal; runs without a value last, in sweep order."""
    sign = -1.0 if record.objective.maximize else 1.0
    scored = [run for run in record.runs if objective(run, record.objective.name) is not None]
    unscored = [run for run in record.runs if objective(run, record.objective.name) is None]
    return sorted(scored, key=lambda run: sign * objective(run, record.objective.name)) + unscored


def best_run(record: SweepRecord) -> RunRecord | None:
    ranked = sort_by_objective(record)
    if ranked and objective(ranked[0], record.objective.name) is not None:
        return ranked[0]
    return None


def runs_as_json(record: SweepRecord) -> str:
    runs = [
        {
            "run_id": run.run_id,
            "state": run.state,
            "config": run.config,
            "objective": objective(run, record.objective.name),
            "runtime_s": run.runtime_s,
            "exit_code": run.exit_code,
        }
        for run in record.runs
    ]
    return json.dumps(
        {"sweep_id": record.sweep_id, "metric": record.objective.name, "goal": record.objective.goal, "runs": runs},
        indent=2,
    )


def runs_as_table(record: SweepRecord, runs: list[RunRecord] | None = None) -> str:
    runs = record.runs if runs is None else runs
    param_names = record.swept_parameters  # fixed ones would only widen the table
    header = ["run", "state", record.objective.name, "runtime"] + param_names
    rows = [header]
    for run in runs:
        value = objective(run, record.objective.name)
        rows.append(
            [
                run.run_id,
                run.state,
                "-" if value is None else f"{value:.4g}",
                "-" if run.runtime_s is None else f"{run.runtime_s:.1f}s",
            ]
            + [_short(run.config.get(name, "")) for name in param_names]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
