"""SIGTERM and SIGINT, recorded when they arrive and answered at the program's safe boundaries.

- A preemption (RunPod, spot VMs) arrives as SIGTERM: save a checkpoint if it fits the grace
  period, then exit 143, marked preempting, so W&B or the local controller requeues the run.
- A stop (Ctrl-C forwarded by an agent, W&B's Stop button, which the W&B client delivers as SIGINT;
  or a controller's SIGTERM, such as hyperband's early termination under `wandb agent`) means "end
  now, keep what you have": training ends at the step, the best adapter is scored and saved, and the
  run exits 0 as finished, never requeued. A second SIGINT interrupts at once.

Which SIGTERM is which: `agent.trial.shutdown_notice`.

The handler only records the signal (`agent.signals.SignalLatch`), as Lightning's signal connector
does: raising from it would raise inside whatever code the signal interrupted (W&B's, json's, an
import). Only the second SIGINT raises, decided in the handler from what arrived before it. The
program asks at its boundaries (`StopRequest.boundary`), and the Trainer's loop at the end of every
step (`callbacks.CheckpointKeeper`); `StopRequest.poll` turns what arrived into a `StopKind` there,
in the program's own flow. docs/preemption.md lists the boundaries and what each one does.
"""

from __future__ import annotations

import enum
import math
import signal
import time
from collections.abc import Mapping

from agent.signals import SignalLatch


class StopKind(enum.Enum):
    """What the signals received ask of the launch."""

    PREEMPT = "preempt"
    """The machine is going away: checkpoint within the grace, exit 143 to be requeued."""
    STOP = "stop"
    """End now and keep what you have: score and save the best adapter, exit 0, never requeued."""


class Preempted(Exception):
    """Raised by the program itself, at a boundary, once a preemption is recorded: never by the handler."""


class StopRequest:
    """The first stop or preemption received, and when.

    Its latch's handler records the signal and its arrival times, nothing more. Which kind it is
    (reading the supervisor's notice, importing psutil) is worked out by `poll`, which the
    boundaries, `fits`, `time_left` and `seconds_since` call first; `kind`, `preempted` and
    `stopped` only say what the last poll found.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = environ or {}
        """Where the supervisor's shutdown notice is named, read when a SIGTERM is first polled."""
        self.latch = SignalLatch(interrupt_on_second_sigint=True)
        self.kind: StopKind | None = None
        self.received_at = 0.0
        """When the signal behind `kind` was sent (`time.monotonic()`): the grace counts from here."""
        self._polled = 0
        """How many of the latch's arrivals `poll` has classified."""

    def install(self) -> StopRequest:
        self.latch.install()
        return self

    def poll(self) -> StopKind | None:
        """Classify the signals that arrived since the last poll: a preemption outranks a stop."""
        arrived = self.latch.arrivals[self._polled :]
        if not arrived:
            return self.kind
        # Imported here, in the program's own flow: the entry point installs this request before it
        # checks that its python has the project's packages (psutil among them).
        from agent.trial.shutdown_notice import sigterm_is_preemption

        for signum, at, wall in arrived:
            preempt = signum == signal.SIGTERM and sigterm_is_preemption(self.environ)
            kind = StopKind.PREEMPT if preempt else StopKind.STOP
            if self.kind is None or kind is StopKind.PREEMPT and self.kind is not StopKind.PREEMPT:
                self.kind, self.received_at = kind, at - self._in_flight_s(kind, wall)
        self._polled += len(arrived)
        return self.kind

    @property
    def preempted(self) -> bool:
        return self.kind is StopKind.PREEMPT

    @property
    def stopped(self) -> bool:
        return self.kind is StopKind.STOP

    def seconds_since(self) -> float:
        self.poll()
        return time.monotonic() - self.received_at

    def time_left(self, grace_s: float) -> float:
        return grace_s - self.seconds_since()

    def fits(self, seconds: float, grace_s: float) -> bool:
        """Whether work taking `seconds` ends within `grace_s` of the signal."""
        return self.seconds_since() + seconds <= grace_s

    def boundary(self, name: str, remaining_s: float = math.inf, grace_s: float = 0.0) -> None:
        """A safe point between two phases, named for the tests that stop a launch there: a recorded
        preemption ends the launch here (raises Preempted), unless what is left of the launch
        (`remaining_s`, measured) fits in the grace."""
        if self.poll() is StopKind.PREEMPT and not self.fits(remaining_s, grace_s):
            raise Preempted(name)

    def _in_flight_s(self, kind: StopKind, arrived_wall: float) -> float:
        """How long before this signal arrived the supervisor got the one it passes on (0 when the
        notice does not say)."""
        from agent.trial.shutdown_notice import shutdown_sent_at

        sent_at = shutdown_sent_at(self.environ) if kind is StopKind.PREEMPT else None
        return min(max(arrived_wall - sent_at, 0.0), 3600.0) if sent_at is not None else 0.0
