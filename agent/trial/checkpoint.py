"""Where a run keeps what it needs to continue after a preemption.

A run's folder (`<checkpoint_dir>/<run_id>/`) holds the Trainer's newest checkpoint (`checkpoint-N/`:
adapter, optimizer, scheduler, RNG states, trainer state with the data position) plus the best
adapter so far, the resolved trial config it was trained with, and `launches.json`, one line per
launch of the run (`agent/trial/launches.py`). A checkpoint counts only once every file a resume
reads is there and its `complete` marker is written, last, after the rest is synced: a save cut
short by SIGKILL, or a download cut short, is ignored and removed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

CHECKPOINT_PREFIX = "checkpoint-"  # the Trainer's own folder names
COMPLETE_MARKER = "complete"
BEST_ADAPTER_FILE = "best_adapter.safetensors"
TRIAL_CONFIG_FILE = "trial_config.json"
LAUNCHES_FILE = "launches.json"
"""One line per launch of the run: its number, outcome and, when it failed, why (agent/trial/launches.py)."""
EARLIER_LAUNCHES_FILE = "attempts.json"
"""The same list under the name runs checkpointed by earlier versions gave it: read when there is no
`launches.json`, and replaced by one at the next write."""
CHECKPOINT_FILES = (
    "adapter_model.safetensors",
    "adapter_config.json",
    "optimizer.pt",
    "scheduler.pt",
    "rng_state.pth",  # one process per trial; transformers names it rng_state_<rank>.pth only under several
    "trainer_state.json",
    BEST_ADAPTER_FILE,
    TRIAL_CONFIG_FILE,
)
"""What a resume reads: the Trainer's files, as transformers 5 writes them, and ours."""


def run_folder(checkpoint_dir: str, output_dir: str, run_id: str) -> Path:
    """`<checkpoint_dir>/<run_id>`, or `<output_dir>/<run_id>/checkpoints` when no volume is given."""
    if checkpoint_dir:
        return Path(checkpoint_dir) / run_id
    return Path(output_dir) / run_id / "checkpoints"


def step_of(folder: Path) -> int:
    return int(folder.name[len(CHECKPOINT_PREFIX) :])


def is_complete(checkpoint: Path) -> bool:
    """Sealed, and every file a resume reads is there (a download cut short can bring the marker alone)."""
    return all((checkpoint / name).is_file() for name in (COMPLETE_MARKER, *CHECKPOINT_FILES))


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint, or None."""
    complete = [f for f in root.glob(f"{CHECKPOINT_PREFIX}*") if is_complete(f)]
    return max(complete, key=step_of, default=None)


def training_done(checkpoint: Path) -> bool:
    """The checkpoint is the last step's: resuming from it, the Trainer would take one step more."""
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    return state["global_step"] >= state["max_steps"]


def seal(folder: Path) -> None:
    """Mark a fully written checkpoint complete, then remove every other one: only the newest is kept.

    The Trainer's files are synced first: on a volume whose host goes away, the marker must not reach
    the disk before the data it vouches for.
    """
    for file in folder.iterdir():
        if file.is_file():
            sync_file(file)
    sync_folder(folder)
    write_atomically(folder / COMPLETE_MARKER, "")
    for other in folder.parent.glob(f"{CHECKPOINT_PREFIX}*"):
        if other != folder:
            shutil.rmtree(other, ignore_errors=True)


def read_launches(folder: Path) -> list[dict]:
    """The launches recorded so far. A damaged file (a volume that lost its last write) is a warning and a
    fresh count: refusing it would fail every relaunch the same way."""
    path = folder / LAUNCHES_FILE
    if not path.exists():
        path = folder / EARLIER_LAUNCHES_FILE
        if not path.exists():
            return []
    try:
        history = json.loads(path.read_text())
    except (OSError, ValueError):
        history = None
    if isinstance(history, list) and all(isinstance(a, dict) and "outcome" in a for a in history):
        return history
    print(f"warning: {path} is damaged; this run's launches are counted afresh", file=sys.stderr)
    return []


def write_launches(folder: Path, history: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_atomically(folder / LAUNCHES_FILE, json.dumps(history, indent=1))
    (folder / EARLIER_LAUNCHES_FILE).unlink(missing_ok=True)


def write_trial_config(checkpoint: Path, params: dict[str, Any]) -> None:
    write_atomically(checkpoint / TRIAL_CONFIG_FILE, json.dumps(params, indent=1, sort_keys=True))


def config_differences(checkpoint: Path, params: dict[str, Any]) -> list[str]:
    """`name=checkpointed (now new)` for each parameter the checkpoint was trained with another value of."""
    saved = json.loads((checkpoint / TRIAL_CONFIG_FILE).read_text())
    return [
        f"{name}={saved.get(name)!r} (now {params.get(name)!r})"
        for name in sorted(saved.keys() | params.keys())
        if saved.get(name) != params.get(name)
    ]


def write_atomically(path: Path, text: str) -> None:
    """Readers see the old file or the new one, and once this returns the new one is on the disk.

    The temporary name is this write's own: two launches of one run on a shared volume never write
    into each other's.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tmp.open("w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    sync_folder(path.parent)  # the rename itself


def sync_file(path: Path) -> None:
    with path.open("rb") as file:
        os.fsync(file.fileno())


def sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
