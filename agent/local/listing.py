"""The runs of a local sweep as a table for people or JSON for scripts, best first (`records.rank_runs`)."""

from __future__ import annotations

import json
from typing import Any

from agent.records import SweepRecord, config_value, objective_value, rank_runs


def runs_as_json(record: SweepRecord) -> str:
    runs = [
        {
            "run_id": run.run_id,
            "state": run.state,
            "config": run.config,
            "objective": objective_value(run, record.objective),
            "runtime_s": run.runtime_s,
            "exit_code": run.exit_code,
        }
        for run in rank_runs(record)
    ]
    return json.dumps(
        {"sweep_id": record.sweep_id, "metric": record.objective.name, "goal": record.objective.goal, "runs": runs},
        indent=2,
    )


def runs_as_table(record: SweepRecord) -> str:
    runs = rank_runs(record)
    param_names = record.swept_parameters  # fixed ones would only widen the table
    header = ["run", "state", record.objective.name, "runtime"] + param_names
    rows = [header]
    for run in runs:
        value = objective_value(run, record.objective)
        rows.append(
            [
                run.run_id,
                run.state,
                "-" if value is None else f"{value:.4g}",
                "-" if run.runtime_s is None else f"{run.runtime_s:.1f}s",
            ]
            + [_short(config_value(run.config, name)) for name in param_names]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def _short(value: Any) -> str:
    if value is None:  # a swept parameter this run never received
        return "-"
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
