"""Whether a run's SIGTERM is its machine going away or a controller stopping it.

`wandb agent` stops a run with SIGTERM when the sweep's controller says so (hyperband's early
termination, a cancelled sweep), and with `--forward-signals` it passes on a preemption's SIGTERM
the same way. The run cannot tell the two apart by the signal, yet they need opposite answers: a
preempted run must be requeued, a stopped one must not (or hyperband would stop it again, forever).

`lora-sweep agent` knows which is which, because a preemption reaches its agents through it. It
keeps a notice file, named to its descendants by `NOTICE_ENV`: its pid and start time while it
runs, and the word `shutdown` written before it forwards a signal. The start time tells the
supervisor from a later process that was given its pid once it was gone. A run that gets SIGTERM
while its supervisor lives and has announced nothing was stopped by its controller. When the
supervisor is gone, or there is no supervisor, the SIGTERM is taken for a preemption: requeuing a
stopped run wastes a little compute, dropping a preempted one loses its training.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

import psutil

from agent.env_vars import NOTICE_ENV
from agent.trial.checkpoint import write_atomically

SHUTDOWN = "shutdown"
SENT_AT = "sent_at="


def post(path: Path) -> None:
    """The supervisor is running: the notice holds its pid and start time."""
    _write_notice(path, f"{_identity()}\n")


def announce_shutdown(path: Path, sent_at: float | None = None) -> None:
    """The supervisor was told to stop (preemption, Ctrl-C): written before it forwards the signal.

    `sent_at` (Unix time) is when the supervisor received that signal: a run's grace counts from
    there, not from its own SIGTERM several hops later.
    """
    when = f"{SENT_AT}{sent_at!r}\n" if sent_at is not None else ""
    _write_notice(path, f"{_identity()}\n{SHUTDOWN}\n{when}")


def shutdown_sent_at(environ: Mapping[str, str]) -> float | None:
    """When the announced shutdown's signal reached the supervisor, if its notice says."""
    try:
        words = Path(environ[NOTICE_ENV]).read_text().split()
        return next(float(w[len(SENT_AT) :]) for w in words if w.startswith(SENT_AT))
    except (KeyError, OSError, ValueError, StopIteration):
        return None


NOTICE_WAIT_S = 1.0
"""How long a SIGTERM that the living supervisor has not announced waits for its announcement. A
scheduler that signals every process of a job at once (Slurm) reaches the run and the supervisor at
the same moment: the supervisor writes `shutdown` within its poll (0.1 s), and the run must not take
the signal for a controller's stop in between. A controller's stop is answered this much later."""


def sigterm_is_preemption(environ: Mapping[str, str], wait_s: float = NOTICE_WAIT_S) -> bool:
    path = environ.get(NOTICE_ENV)
    if not path:
        return True  # no supervisor to ask
    deadline = time.monotonic() + wait_s
    while True:
        try:
            pid, started, *rest = Path(path).read_text().split()
            supervisor_alive = _alive(int(pid), float(started))
        except (OSError, ValueError):
            return True  # no readable notice: nothing says this was a controller's stop
        if SHUTDOWN in rest or not supervisor_alive:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _identity() -> str:
    return f"{os.getpid()} {psutil.Process().create_time()!r}"


def _alive(pid: int, started: float) -> bool:
    """Running, not a zombie (a killed supervisor stays one until its parent reaps it), and the
    process that wrote the notice, not a later one given its pid."""
    try:
        process = psutil.Process(pid)
        same = abs(process.create_time() - started) < 0.01  # the clock's tick; a reused pid starts later
        return same and process.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.Error:
        return False  # gone, or it cannot be told: a preemption is the safe guess


def _write_notice(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, text)  # a run reading it mid-write sees the old notice or the new one
