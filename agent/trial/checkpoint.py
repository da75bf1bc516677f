"""Where a run keeps what it needs to continue after a preemption, and how many tries it has had.

A run's folder (`<checkpoint_dir>/<run_id>/`) holds the Trainer's newest checkpoint (`checkpoint-N/`:
adapter, optimizer, scheduler, RNG states, trainer state with the data position) plus the best
adapter so far, and `attempts.json`, one line per launch of the run. A checkpoint counts only once
its `complete` marker is written, last: a save cut short by SIGKILL is ignored and removed.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from agent.records import RunState

CHECKPOINT_PREFIX = "checkpoint-"  # the Trainer's own folder names
COMPLETE_MARKER = "complete"
ATTEMPTS_FILE = "attempts.json"
BEST_ADAPTER_FILE = "best_adapter.safetensors"

# How a launch ended, in attempts.json and as the run's `attempt/outcome`: the run's state words
# (RunState: preempted, failed, finished, stopped), or still `running` when it was killed without
# warning or crashed hard. One outcome is the trial's own and reaches the summary only: a launch
# that gives up (max_attempts used up) trains nothing, and its run ends failed.
GAVE_UP = "gave_up"


def run_folder(checkpoint_dir: str, output_dir: str, run_id: str) -> Path:
    """`<checkpoint_dir>/<run_id>`, or `<output_dir>/<run_id>/checkpoints` when no volume is given."""
    if checkpoint_dir:
        return Path(checkpoint_dir) / run_id
    return Path(output_dir) / run_id / "checkpoints"


def step_of(folder: Path) -> int:
    return int(folder.name[len(CHECKPOINT_PREFIX) :])


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint, or None."""
    complete = [f for f in root.glob(f"{CHECKPOINT_PREFIX}*") if (f / COMPLETE_MARKER).exists()]
    return max(complete, key=step_of, default=None)


def seal(folder: Path) -> None:
    """Mark a fully written checkpoint complete, then remove every other one: only the newest is kept."""
    write_atomically(folder / COMPLETE_MARKER, "")
    for other in folder.parent.glob(f"{CHECKPOINT_PREFIX}*"):
        if other != folder:
            shutil.rmtree(other, ignore_errors=True)


@dataclass(frozen=True)
class LaunchRecord:
    """This launch of a run, as the trial program counts it in `attempts.json`. A controller keeps
    its own count of the tries it made (the local store's `StoreAttempt`)."""

    number: int
    failures_before: int
    """Earlier launches that failed or died without a word (not counting announced preemptions)."""
    last_failure: str
    """The reason the most recent failed launch gave, or '' if none did."""

    def is_last(self, max_attempts: int) -> bool:
        """A failure now would be the max_attempts-th: this launch must not be requeued on failure."""
        return self.failures_before + 1 >= max_attempts

    def exhausted(self, max_attempts: int) -> bool:
        return self.failures_before >= max_attempts


def begin_attempt(root: Path) -> LaunchRecord:
    """Record a new launch as running and return what earlier launches left."""
    history = read_attempts(root)
    failures = [a for a in history if a["outcome"] in (RunState.RUNNING, RunState.FAILED)]
    last_failure = (failures[-1].get("reason") or "killed without warning (no exit recorded)") if failures else ""
    launch = LaunchRecord(number=len(history) + 1, failures_before=len(failures), last_failure=last_failure)
    _write_attempts(root, [*history, {"number": launch.number, "outcome": RunState.RUNNING.value}])
    return launch


def end_attempt(root: Path, outcome: RunState, reason: str = "", step: int | None = None) -> None:
    history = read_attempts(root)
    if not history:
        return
    history[-1].update({"outcome": RunState(outcome).value, **({"reason": reason} if reason else {})})
    if step is not None:
        history[-1]["step"] = step
    _write_attempts(root, history)


def read_attempts(root: Path) -> list[dict]:
    path = root / ATTEMPTS_FILE
    return json.loads(path.read_text()) if path.exists() else []


def _write_attempts(root: Path, history: list[dict]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    write_atomically(root / ATTEMPTS_FILE, json.dumps(history, indent=1))


def write_atomically(path: Path, text: str) -> None:
    # A network volume may see the process die mid-write: readers see the old file or the new one.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
