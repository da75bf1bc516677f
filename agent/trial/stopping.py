"""SIGTERM and SIGINT, turned into requests the training loop answers at the end of a step.

- A preemption (RunPod, spot VMs) arrives as SIGTERM: save a checkpoint if it fits the grace
  period, then exit 143, marked preempting, so W&B or the local controller requeues the run.
- A stop (Ctrl-C forwarded by an agent, W&B's Stop button, which the W&B client delivers as SIGINT;
  or a controller's SIGTERM, such as hyperband's early termination under `wandb agent`) means "end
  now, keep what you have": training ends at the step, the best adapter is scored and saved, and the
  run exits 0 as finished, never requeued. A second SIGINT interrupts at once.

Which SIGTERM is which: `agent.trial.shutdown_notice`.

While the Trainer runs, a handler only records the request: stopping mid-step would leave nothing
consistent to save. Outside training there is nothing to save, so a preemption raises `Preempted`.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Mapping

from agent.trial.shutdown_notice import sigterm_is_preemption

PREEMPT, STOP = "preempt", "stop"


class Preempted(Exception):
    """SIGTERM arrived where no checkpoint could be taken (loading, final scoring)."""


class StopRequest:
    """The first stop or preemption received, and when."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = environ or {}
        """Where the supervisor's shutdown notice is named, read when a SIGTERM arrives."""
        self.kind: str | None = None
        self.received_at = 0.0
        self.in_training = False

    def install(self) -> StopRequest:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)
        return self

    @property
    def preempted(self) -> bool:
        return self.kind == PREEMPT

    @property
    def stopped(self) -> bool:
        return self.kind == STOP

    def seconds_since(self) -> float:
        return time.monotonic() - self.received_at

    def _handle(self, signum: int, frame: object) -> None:
        if signum == signal.SIGINT and self.kind is not None:
            raise KeyboardInterrupt  # a second Ctrl-C: the person means it
        kind = PREEMPT if signum == signal.SIGTERM and sigterm_is_preemption(self.environ) else STOP
        if self.kind is None or kind == PREEMPT:  # a preemption outranks a stop
            self.kind, self.received_at = kind, time.monotonic()
        if kind == PREEMPT and not self.in_training:
            raise Preempted
