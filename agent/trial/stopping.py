"""SIGTERM and SIGINT, turned into requests the training loop answers at the end of a step.

- SIGTERM is a preemption (RunPod, spot VMs, a controller's stop): save a checkpoint if it fits the
  grace period, then exit 143, marked preempting, so W&B or the local controller requeues the run.
- SIGINT is a person's "stop now, keep what you have" (Ctrl-C forwarded by an agent, or W&B's Stop
  button, which the W&B client delivers as SIGINT): training ends at the step, the best adapter is
  scored and saved, and the run exits 0 as finished. A second SIGINT interrupts at once.

While the Trainer runs, a handler only records the request: stopping mid-step would leave nothing
consistent to save. Outside training there is nothing to save, so a SIGTERM raises `Preempted`.
"""

from __future__ import annotations

import signal
import time

PREEMPTED_EXIT_CODE = 128 + signal.SIGTERM  # 143: the shell's "terminated by SIGTERM"


class Preempted(Exception):
    """SIGTERM arrived where no checkpoint could be taken (loading, final scoring)."""


class StopRequest:
    """The first stop signal received, and when."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.received_at = 0.0
        self.in_training = False

    def install(self) -> StopRequest:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)
        return self

    @property
    def preempted(self) -> bool:
        return self.signum == signal.SIGTERM

    @property
    def stopped(self) -> bool:
        return self.signum == signal.SIGINT

    def seconds_since(self) -> float:
        return time.monotonic() - self.received_at

    def _handle(self, signum: int, frame: object) -> None:
        if signum == signal.SIGINT and self.signum is not None:
            raise KeyboardInterrupt  # a second Ctrl-C: the person means it
        if self.signum is None or signum == signal.SIGTERM:  # a preemption outranks a stop
            self.signum, self.received_at = signum, time.monotonic()
        if signum == signal.SIGTERM and not self.in_training:
            raise Preempted
