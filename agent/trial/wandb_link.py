"""The W&B run as the trial talks to it, surviving the loss of W&B's service under a preemption.

Slurm signals every process of a job at once on a requeue, a preemption or the time limit (SIGCONT
and SIGTERM, then SIGKILL after KillWait), W&B's `wandb-core` service included, though it runs in
a session of its own. The service ends at its SIGTERM (a Go program's handler; neither an ignored
nor a blocked SIGTERM survives into it), and every later call of the run raises
`ConnectionResetError: Connection lost`. Left alone, that error ended the launch `failed` before
its SIGTERM checkpoint was written, and counted it toward max_attempts.

So once this process has received SIGTERM, a W&B call that fails is taken as the service gone with
the same preemption: one warning line, and the launch goes on without W&B (its checkpoint and
`launches.json` are files, and the run was marked preempting when training began, which is what W&B
and the local controller requeue by). Before any SIGTERM, W&B's errors stay errors.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from typing import Any

from agent.errors import one_line
from agent.signals import SignalLatch


class ServiceLoss:
    """Whether W&B's service was lost after a SIGTERM, shared by the run and its summary."""

    def __init__(self, latch: SignalLatch) -> None:
        self.latch = latch
        self.lost = False

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.lost:
            return None
        try:
            return function(*args, **kwargs)
        except Exception as error:
            if not any(arrival.signum == signal.SIGTERM for arrival in self.latch.arrivals):
                raise
            self.lost = True
            print(
                f"warning: W&B's service is gone after SIGTERM ({one_line(error)}): the launch ends without "
                "it; its checkpoint and launches.json are on disk, and the run was marked preempting",
                file=sys.stderr,
            )
            return None


class RunLink:
    """A W&B run whose calls (and its summary's writes) go through `ServiceLoss`; attributes pass through."""

    def __init__(self, run: Any, latch: SignalLatch) -> None:
        self._run = run
        self._loss = ServiceLoss(latch)

    @property
    def service_lost(self) -> bool:
        return self._loss.lost

    @property
    def summary(self) -> SummaryLink:
        return SummaryLink(self._run.summary, self._loss)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._run, name)
        if not callable(value):
            return value
        return lambda *args, **kwargs: self._loss.call(value, *args, **kwargs)


class SummaryLink:
    """The run's summary: reads are local, writes go through `ServiceLoss`."""

    def __init__(self, summary: Any, loss: ServiceLoss) -> None:
        self._summary, self._loss = summary, loss

    def __getitem__(self, key: str) -> Any:
        return self._summary[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._loss.call(self._summary.get, key, default) if not self._loss.lost else default

    def __setitem__(self, key: str, value: Any) -> None:
        self._loss.call(self._summary.__setitem__, key, value)

    def update(self, values: dict[str, Any]) -> None:
        self._loss.call(self._summary.update, values)
