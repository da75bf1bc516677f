"""A run's launches: how many there have been and how each ended (`launches.json`, in the run's
folder), and `LaunchLedger`, the one owner of the launch under way.

A launch is one start of the trial program for a run (the glossary: agent/records.py). The count
lives beside the run's checkpoints, so it travels with them to whichever machine launches the run
next, and W&B's requeue and the local controller's alike are counted. `max_attempts` bounds the
launches that fail: an announced preemption is not a failure, a launch that died without a word is.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import one_line
from agent.records import (
    FAILURE_REASON_KEY,
    GAVE_UP,
    LAUNCH_NUMBER_KEY,
    LAUNCH_OUTCOME_KEY,
    RunState,
)
from agent.trial.checkpoint import read_launches, write_launches

if TYPE_CHECKING:
    from agent.trial.checkpoint_artifact import CheckpointMirror


@dataclass(frozen=True)
class Launch:
    """This launch, as counted from what earlier launches of its run left."""

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


def begin_launch(folder: Path) -> Launch:
    """Record a new launch as running and return what earlier launches left."""
    history = read_launches(folder)
    failures = [a for a in history if a["outcome"] in (RunState.RUNNING, RunState.FAILED)]
    last_failure = (failures[-1].get("reason") or "killed without warning (no exit recorded)") if failures else ""
    launch = Launch(number=len(history) + 1, failures_before=len(failures), last_failure=last_failure)
    write_launches(folder, [*history, {"number": launch.number, "outcome": RunState.RUNNING.value}])
    return launch


def end_launch(folder: Path, outcome: RunState, reason: str = "") -> None:
    history = read_launches(folder)
    if not history:
        return
    history[-1].update({"outcome": RunState(outcome).value, **({"reason": reason} if reason else {})})
    write_launches(folder, history)


@dataclass
class LaunchLedger:
    """The launch under way, from its count to its outcome.

    Each way a launch ends (it gave up, was preempted, failed, or ended) records the outcome in
    `launches.json` first (a local write, which never waits on W&B), then pushes the run folder to
    the checkpoint mirror, then writes `launch/outcome` to the run's summary: once, in `_close`.
    """

    folder: Path
    run: Any
    mirror: CheckpointMirror
    launch: Launch
    max_attempts: int

    @classmethod
    def begin(cls, folder: Path, run: Any, mirror: CheckpointMirror, max_attempts: int) -> LaunchLedger:
        launch = begin_launch(folder)
        mirror.push(folder)
        run.summary[LAUNCH_NUMBER_KEY] = launch.number
        return cls(folder, run, mirror, launch, max_attempts)

    @property
    def exhausted(self) -> bool:
        """A controller relaunched a run that already failed max_attempts times."""
        return self.launch.exhausted(self.max_attempts)

    @property
    def is_last(self) -> bool:
        return self.launch.is_last(self.max_attempts)

    def give_up(self) -> None:
        """End an exhausted run failed, with its reason, having trained nothing."""
        reason = (
            f"gave up after {self.launch.failures_before} failed launches (max_attempts={self.max_attempts}); "
            f"last: {self.launch.last_failure}"
        )
        print(f"error: {reason}", file=sys.stderr)
        self._close(RunState.FAILED, reason, {LAUNCH_OUTCOME_KEY: GAVE_UP, FAILURE_REASON_KEY: reason})

    def preempted(self, seconds_left: Callable[[], float]) -> None:
        """Marked preempting, so that W&B requeues the run once it exits non-zero. The push goes to the
        mirror too, but never past the grace (`seconds_left`, asked each time): one still under way
        then is abandoned."""
        self.run.mark_preempting()
        self._close(RunState.PREEMPTED, "", {LAUNCH_OUTCOME_KEY: str(RunState.PREEMPTED)}, within=seconds_left)

    def failed(self, error: BaseException) -> None:
        reason = one_line(error)
        told = reason
        if self.is_last:
            told = f"failed on launch {self.launch.number}, the last of max_attempts={self.max_attempts}: {reason}"
        self._close(RunState.FAILED, reason, {LAUNCH_OUTCOME_KEY: str(RunState.FAILED), FAILURE_REASON_KEY: told})

    def ended(self, stopped: bool) -> None:
        """Trained to the end, or stopped early on request: either way the run is over."""
        outcome = RunState.STOPPED if stopped else RunState.FINISHED
        self._close(outcome, "", {LAUNCH_OUTCOME_KEY: str(outcome)})

    def _close(
        self, outcome: RunState, reason: str, summary: dict[str, str], within: Callable[[], float] | None = None
    ) -> None:
        """`outcome` and `reason` to launches.json, the folder to the mirror (within `within()` seconds,
        when given), then `summary` to the run's summary."""
        end_launch(self.folder, outcome, reason)
        if within is None:
            self.mirror.push(self.folder)
            self.mirror.wait()
        elif self.mirror.wait(max(within(), 0.0)):  # `push` would wait for the push under way
            self.mirror.push(self.folder)
            self.mirror.wait(max(within(), 0.0))
        self.run.summary.update(summary)
