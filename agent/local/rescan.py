"""Read finished runs' results again from their W&B folders: `lora-sweep runs SWEEP_ID --rescan`.

Before the store kept which folder each claim's launch wrote, a requeued run could be recorded
with an earlier launch's summary: an orphaned `wandb-core` kept the old log the freshest, and the
agent followed it. The right log, with the score and an exit record, sits on disk beside the wrong one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from agent.local import metrics
from agent.local.launch import run_dirs
from agent.local.store import Store
from agent.records import RunState, objective_of


def rescan_finished_runs(store: Store, sweep_id: str, wandb_dir: Path, env: Mapping[str, str]) -> list[str]:
    """Store each finished run's summary as its own log reads now; one line per run changed or
    left as it was for want of a log."""
    objective = objective_of(store.sweep(sweep_id).config)
    lines = []
    for run in store.runs(sweep_id, with_history=False):
        if run.state != RunState.FINISHED:
            continue
        folder = store.run_log(run.claim) or _finished_folder(wandb_dir, run.run_id, env)
        if folder is None:
            lines.append(f"run {run.run_id}: no W&B folder of it with an exit record under {wandb_dir}; left as it was")
            continue
        read = metrics.read_summary(folder, env)
        if read.error is not None:
            lines.append(f"run {run.run_id}: {read.error} ({folder}); left as it was")
            continue
        summary = metrics.flatten_summary(read.summary, objective)
        if summary != run.summary:
            with store.write() as tx:
                tx.replace_summary(run.run_id, summary)
            name = objective.name
            lines.append(f"run {run.run_id}: {name} {run.summary.get(name)} -> {summary.get(name)}, from {folder}")
    return lines


def _finished_folder(wandb_dir: Path, run_id: str, env: Mapping[str, str]) -> Path | None:
    """The newest folder of the run id whose log ends with an exit record: the launch that finished."""
    newest_first = sorted(run_dirs(wandb_dir, run_id), key=lambda folder: folder.name.rsplit("-", 2)[-2], reverse=True)
    for folder in newest_first:
        records = metrics.read_records(folder / f"run-{run_id}.wandb", env)
        if any(record.get("type") == "exit" for record in records):
            return folder
    return None
