"""SIGTERM and SIGINT, recorded when they arrive and answered at the program's safe boundaries.

- A preemption (RunPod, spot VMs) arrives as SIGTERM: save a checkpoint if it fits the grace
  period, then exit 143, marked preempting, so W&B or the local controller requeues the run.
- A stop (Ctrl-C forwarded by an agent, W&B's Stop button, which the W&B client delivers as SIGINT;
  or a controller's SIGTERM, such as hyperband's early termination under `wandb agent`) means "end
  now, keep what you have": training ends at the step, the best adapter is scored and saved, and the
  run exits 0 as finished, never requeued. A second SIGINT interrupts at once.

Which SIGTERM is which: `agent.trial.shutdown_notice`.

The handler only records the request, as Lightning's signal connector does: raising from it would
raise inside whatever code the signal interrupted (W&B's, json's, an import). The program asks at
its boundaries (`StopRequest.boundary`), and the Trainer's loop at the end of every step
(`callbacks.CheckpointKeeper`). docs/preemption.md lists the boundaries and what each one does.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Mapping

from agent.env_vars import SIGTERM_AT_ENV

PREEMPT, STOP = "preempt", "stop"


class Preempted(Exception):
    """Raised by the program itself, at a boundary, once a preemption is recorded: never by the handler."""


class StopRequest:
    """The first stop or preemption received, and when.

    The handler appends the signal and its arrival times to `arrived`, nothing more: which kind it
    is (reading the supervisor's notice, importing psutil) is worked out when the program next asks,
    so no file read or import runs inside whatever code the signal interrupted, such as a half-done
    import of psutil itself.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = environ or {}
        """Where the supervisor's shutdown notice is named, read when a SIGTERM is first asked about."""
        self.arrived: list[tuple[int, float, float]] = []
        """Signals not yet classified: (signum, time.monotonic(), time.time()) at arrival."""
        self._kind: str | None = None
        self.received_at = 0.0
        self.sigterm_at = self.environ.get(SIGTERM_AT_ENV, "")

    @property
    def kind(self) -> str | None:
        self._classify()
        return self._kind

    def _classify(self) -> None:
        """Turn the signals that arrived into the request: a preemption outranks a stop."""
        # Imported here, in the program's own flow: the entry point installs this request before it
        # checks that its python has the project's packages (psutil among them).
        from agent.trial.shutdown_notice import sigterm_is_preemption

        while self.arrived:  # the handler only appends; this runs in the program's own flow
            signum, at, wall = self.arrived.pop(0)
            kind = PREEMPT if signum == signal.SIGTERM and sigterm_is_preemption(self.environ) else STOP
            if self._kind is None or kind == PREEMPT and self._kind != PREEMPT:
                self._kind, self.received_at = kind, at - self._in_flight_s(kind, wall)

    @kind.setter
    def kind(self, kind: str | None) -> None:
        self._kind = kind

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
        self._classify()
        return time.monotonic() - self.received_at

    def time_left(self, grace_s: float) -> float:
        return grace_s - self.seconds_since()

    def fits(self, seconds: float, grace_s: float) -> bool:
        """Whether work taking `seconds` ends within `grace_s` of the signal."""
        return self.seconds_since() + seconds <= grace_s

    def boundary(self, name: str, remaining_s: float = math.inf, grace_s: float = 0.0) -> None:
        """A safe point between two phases: a recorded preemption ends the launch here (raises Preempted),
        unless what is left of the launch (`remaining_s`, measured) fits in the grace."""
        if self.preempted and not self.fits(remaining_s, grace_s):
            raise Preempted(name)
        if self.sigterm_at == name:
            threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGTERM), daemon=True).start()

    def _handle(self, signum: int, frame: object) -> None:
        if signum == signal.SIGINT and (self._kind is not None or self.arrived):
            raise KeyboardInterrupt  # a second Ctrl-C: the person means it
        self.arrived.append((signum, time.monotonic(), time.time()))

    def _in_flight_s(self, kind: str, arrived_wall: float) -> float:
        """How long before this signal arrived the supervisor got the one it passes on (0 when the
        notice does not say)."""
        from agent.trial.shutdown_notice import shutdown_sent_at

        sent_at = shutdown_sent_at(self.environ) if kind == PREEMPT else None
        return min(max(arrived_wall - sent_at, 0.0), 3600.0) if sent_at is not None else 0.0
