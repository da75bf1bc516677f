"""Signals to this process, recorded as they arrive and read later, in the program's own flow.

The trial program, the local agent and the fleet's supervisor each answer SIGINT and SIGTERM at
points of their own choosing, never from inside whatever code a signal interrupted (W&B's, json's, a
half-done import). Each installs a `SignalLatch`: its handler appends the signal and when it came to
`arrivals`, and that is all. The list is append-only: a reader keeps its own count of what it has
read (or looks at the whole list), so no signal is lost between reading and acting on it, however
close together two arrive.

Python runs signal handlers on the main thread only, and lets only the main thread set them: a
latch installed from any other thread refuses with `SignalLatchError`, before it changes anything.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType
from typing import Any, NamedTuple


class Arrival(NamedTuple):
    """One signal received: which, and when (`time.monotonic()` for durations, `time.time()` to
    compare with another process's clock)."""

    signum: int
    monotonic: float
    wall: float


class SignalLatchError(RuntimeError):
    """A latch installed where Python cannot set signal handlers (off the main thread), or twice."""


class SignalLatch:
    """Records `signums` while installed: a context manager, or `install` then `restore`, which puts back
    the handlers it replaced.

    The handlers it replaces are restored, not chained: they are Python's defaults (KeyboardInterrupt,
    the end of the process on SIGTERM) or another latch's, and running them would answer the signal at
    once, which is what the latch is there to put off. With `interrupt_on_second_sigint`, a SIGINT that comes after any
    earlier signal of the latch is recorded and then raises KeyboardInterrupt from the handler: a
    person pressing Ctrl-C again means it.
    """

    def __init__(
        self, signums: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM), *, interrupt_on_second_sigint: bool = False
    ) -> None:
        self.signums = signums
        self.interrupt_on_second_sigint = interrupt_on_second_sigint
        self.arrivals: list[Arrival] = []
        """Every signal received while installed, in order of arrival. Only the handler changes it,
        and only by appending."""
        self._previous: dict[int, Any] = {}

    def install(self) -> SignalLatch:
        if threading.current_thread() is not threading.main_thread():
            raise SignalLatchError("signal handlers can only be installed from the main thread")
        if self._previous:
            raise SignalLatchError("this latch is installed already")
        self._previous = {signum: signal.signal(signum, self._handle) for signum in self.signums}
        return self

    def restore(self) -> None:
        """Put back the handlers `install` replaced; what arrived stays in `arrivals`."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def __enter__(self) -> SignalLatch:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        again = bool(self.arrivals)
        self.arrivals.append(Arrival(signum, time.monotonic(), time.time()))
        if self.interrupt_on_second_sigint and again and signum == signal.SIGINT:
            raise KeyboardInterrupt
