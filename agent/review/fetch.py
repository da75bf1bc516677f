"""Fetching a sweep into a `SweepRecord`: from W&B through its public API, or from the local store.

The form of the id decides: `entity/project/id` is a W&B sweep, a bare id is a local one. After
this module both paths are the same code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.errors import UserError, first_line
from agent.records import (
    LOSS_KEY,
    MEMORY_KEYS,
    OBJECTIVE,
    RUNTIME_KEY,
    STEP_KEY,
    RunRecord,
    SweepRecord,
    is_wandb_path,
    objective_of,
)


class FetchError(UserError):
    """The sweep cannot be read; the message is one line for the user."""


def fetch_sweep(sweep_id: str, store_path: Path | None = None) -> SweepRecord:
    if is_wandb_path(sweep_id):
        return fetch_wandb_sweep(sweep_id)
    if "/" in sweep_id:
        raise FetchError(f"{sweep_id!r} is neither a local sweep id nor a W&B path entity/project/id")
    return fetch_local_sweep(sweep_id, store_path)


def fetch_wandb_sweep(path: str, with_runs: bool = True) -> SweepRecord:
    """Read a W&B sweep and (unless `with_runs` is False) its runs through `wandb.Api()`."""
    import wandb
    from wandb.sdk.lib.service.service_connection import WandbApiFailedError

    try:
        sweep = wandb.Api().sweep(path)
        metric = objective_of(sweep.config).name or OBJECTIVE
        runs = [record_wandb_run(run, metric) for run in sweep.runs] if with_runs else []
        return SweepRecord(sweep_id=path, config=dict(sweep.config), runs=runs)
    # wandb raises its own errors for login problems and ValueError for an unknown sweep; from 0.31
    # every GraphQL call goes through wandb-core, and a failed one (network, HTTP status, GraphQL
    # error), on any page of runs or history, raises WandbApiFailedError, which is not a wandb.Error.
    except (wandb.errors.Error, ValueError, WandbApiFailedError) as error:
        raise FetchError(f"cannot read W&B sweep {path}: {first_line(error)}") from error


def record_wandb_run(run: Any, metric: str) -> RunRecord:
    # Media and tables sit in the summary as nested objects; the review reads only scalars.
    summary = {key: value for key, value in run.summary.items() if isinstance(value, (int, float, str, bool))}
    # scan_history returns only rows holding every requested key: the evaluations, the losses, then
    # the run's own GPU memory (logged with the losses, on a GPU only).
    keys = (metric, LOSS_KEY, MEMORY_KEYS[0])
    history = [dict(row) for key in keys for row in run.scan_history(keys=[STEP_KEY, key])]
    runtime = summary.get(RUNTIME_KEY)
    return RunRecord(
        run_id=run.id,
        state=run.state,
        config={key: value for key, value in run.config.items() if not key.startswith("_")},
        summary=summary,
        history=history,
        runtime_s=float(runtime) if isinstance(runtime, (int, float)) else None,
    )


def fetch_local_sweep(sweep_id: str, store_path: Path | None) -> SweepRecord:
    """Read a sweep from the local store (`--store`, else $LORA_SWEEP_STORE, else the default file)."""
    from agent.local.store import StoreError, open_store

    try:
        store = open_store(store_path)
        try:
            return store.sweep_record(sweep_id)
        finally:
            store.close()
    except StoreError as error:  # unknown sweep, and a store that is damaged, foreign or unreadable
        raise FetchError(first_line(error)) from error
