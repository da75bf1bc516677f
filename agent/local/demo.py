"""`lora-sweep demo`: the smoke sweep created locally and run to the end, offline, on CPU."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from agent.local.listing import runs_as_table
from agent.local.options import AgentOptions
from agent.local.runner import run_agent
from agent.local.store import Store
from agent.records import RunState, best_run, objective_value


def run_demo(
    store: Store, config: dict[str, Any], source: str, echo: Callable[[str], None], *, env: Mapping[str, str]
) -> tuple[str, bool]:
    """Run the (already checked) sweep `config` from `source` to the end: its id, and whether every
    run finished.

    `env` is what the runs start from; the entry point sets WANDB_MODE=offline there unless the
    user chose a mode, so the demo never needs an account."""
    with store.write() as tx:
        sweep_id = tx.create_sweep(config, config.get("project"), "demo")
    echo(f"demo: local sweep {sweep_id} from {source} in {store.path}")
    started = time.monotonic()
    result = run_agent(store, sweep_id, AgentOptions(), echo=echo, env=env)
    echo(f"demo: {len(result.outcomes)} run(s) in {time.monotonic() - started:.0f}s; {result.reason}")

    record = store.sweep_record(sweep_id)
    echo("")
    echo(f"Runs by {record.objective.name} ({record.objective.goal}):")
    echo(runs_as_table(record))
    best = best_run(record)
    if best is not None:
        echo("")
        metric = record.objective.name
        echo(f"Best configuration (run {best.run_id}, {metric}={objective_value(best, record.objective):.4g}):")
        for key, value in best.config.items():
            echo(f"  {key}: {value}")
    echo("")
    if result.failed:
        echo(f"demo: FAILED: {result.reason}")
        return sweep_id, False
    return sweep_id, all(run.state == RunState.FINISHED for run in record.runs)
