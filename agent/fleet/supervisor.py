"""Supervise one agent process per GPU: logs, signal forwarding, restarts with backoff, one verdict.

Children run in their own process groups, so a Ctrl-C in the terminal reaches them once, through
us, and never twice (a second SIGINT makes `wandb agent` kill its run without grace). They get
SIGTERM if the supervisor dies, however it dies, so no agent outlives it. Before forwarding a
signal it says so in its shutdown notice, so a run can tell a preemption from its controller's stop.

The supervisor is one thread: its loop copies the agents' output too. The kernel sends the
parent-death signal again each time a dying parent's thread hands the child on to another of its
threads, and `wandb agent` takes a second SIGTERM for "terminate the runs" and a third for "kill
them". With one thread, a killed supervisor's agents get one SIGTERM each, and their runs keep the
grace to checkpoint and be requeued.

`wandb agent` starts its run in a process group of its own, with no parent-death signal: a crashed
agent leaves its run running on the GPU. Every child carries its slot's mark (`SLOT_ENV`) in its
environment, which whatever it starts inherits; when an agent crashes, every process with its mark
is ended before anything else starts on that GPU, and when supervision ends, every marked process
still alive after a short grace is ended.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import selectors
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil

from agent.env_vars import MAX_RESTARTS_ENV, NOTICE_ENV, RESTART_BACKOFF_ENV, SLOT_ENV, STAGGER_ENV
from agent.fleet.field_options import option
from agent.local.processes import end_marked, start_child
from agent.signals import SignalLatch
from agent.trial import shutdown_notice

POLL_S = 0.1
OUTPUT_DRAIN_S = 5.0
"""How long an exited agent's last output may take to arrive (a run it started can hold the pipe)."""
LEFTOVER_GRACE_S = 5.0
"""At the end, how long runs that outlived their agents get to finish saving before they are ended."""


@dataclass(frozen=True)
class AgentChild:
    """One agent process to keep running: what to start, with which environment, logging where."""

    label: str
    """How its lines are prefixed on the console, e.g. `gpu 0`."""
    argv: tuple[str, ...]
    env: Mapping[str, str]
    log_path: Path


RESTART_BACKOFF_MAX_S = 60.0


@dataclass(frozen=True)
class SupervisorOptions:
    """How agents are started and restarted; each field with help is an option of `lora-sweep agent`."""

    stagger_s: float = option(
        5.0, help="Supervised agents: seconds between one agent's start and the next.", min=0, envvar=STAGGER_ENV
    )
    """Two agents asking W&B at the same moment can both be handed the same requeued run."""
    max_restarts: int = option(
        3, help="Supervised agents: restarts of a crashed agent before it is given up.", min=0, envvar=MAX_RESTARTS_ENV
    )
    """A crash loop must not run forever."""
    restart_backoff_s: float = option(
        2.0,
        help="Supervised agents: seconds before the first restart; doubles each time, "
        f"at most {RESTART_BACKOFF_MAX_S:g}.",
        min=0,
        envvar=RESTART_BACKOFF_ENV,
    )
    restart_backoff_max_s: float = RESTART_BACKOFF_MAX_S


@dataclass(frozen=True)
class ChildOutcome:
    label: str
    returncode: int | None
    """The last exit status; None when the agent never started (stopped before its turn)."""
    restarts: int

    @property
    def failed(self) -> bool:
        return self.returncode not in (0, None)

    def describe(self) -> str:
        if self.returncode is None:
            state = "not started"
        else:
            state = "ok" if self.returncode == 0 else f"failed (exit {self.returncode})"
        return f"{self.label} {state}" + (f" after {self.restarts} restart(s)" if self.restarts else "")


@dataclass(frozen=True)
class SupervisionResult:
    outcomes: tuple[ChildOutcome, ...]
    signal_received: int | None

    @property
    def exit_code(self) -> int:
        # Interrupted is its own answer (128 + signal, as a shell reports it); otherwise any agent
        # that ended badly after its restarts makes the whole a failure.
        if self.signal_received is not None:
            return 128 + self.signal_received
        return 1 if any(outcome.failed for outcome in self.outcomes) else 0

    def summary(self) -> str:
        parts = ", ".join(outcome.describe() for outcome in self.outcomes)
        stopped = f"; stopped by {signal.Signals(self.signal_received).name}" if self.signal_received else ""
        verdict = "ok" if self.exit_code == 0 else f"exit {self.exit_code}"
        return f"agents: {parts}{stopped}: {verdict}"


class AgentLog:
    """An agent's log file. What a run its agent left behind writes to the agent's pipe after the
    log was closed is dropped."""

    def __init__(self, path: Path):
        self._file = open(path, "a", encoding="utf-8")  # closed by close()

    def write(self, text: str) -> None:
        if not self._file.closed:
            self._file.write(text)
            self._file.flush()

    def close(self) -> None:
        self._file.close()


@dataclass
class _Output:
    """One agent process's output pipe, read without blocking and cut into whole lines."""

    label: str
    log: AgentLog
    stream: IO[bytes]
    decoder: codecs.IncrementalDecoder = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))
    partial: str = ""

    def read(self) -> tuple[list[str], bool]:
        """The whole lines that arrived, and whether the pipe ended (its unfinished last line then comes too)."""
        data = os.read(self.stream.fileno(), 65536)
        *lines, self.partial = (self.partial + self.decoder.decode(data, final=not data)).split("\n")
        if not data and self.partial:
            lines.append(self.partial)
        return lines, not data


class _Outputs:
    """Every agent's output pipe, copied to its log and, labelled, to the console by the supervisor's loop."""

    def __init__(self, echo: Callable[[str], None]):
        self.echo = echo
        self.selector = selectors.DefaultSelector()

    def add(self, label: str, log: AgentLog, stream: IO[bytes]) -> None:
        os.set_blocking(stream.fileno(), False)
        self.selector.register(stream, selectors.EVENT_READ, _Output(label, log, stream))

    def pump(self, timeout_s: float) -> None:
        """Copy what arrives within `timeout_s` (returns at the first arrival) and close pipes that ended."""
        for key, _ in self.selector.select(timeout_s):
            self._copy(key.data)

    def drain(self, stream: IO[bytes], timeout_s: float) -> None:
        """Copy an exited agent's output until its pipe ends, for at most `timeout_s`. A run it left
        behind may hold the pipe open: what it writes later is copied by the loop meanwhile."""
        deadline = time.monotonic() + timeout_s
        while not stream.closed and (left := deadline - time.monotonic()) > 0:
            self.pump(min(left, POLL_S))

    def close(self) -> None:
        for key in list(self.selector.get_map().values()):
            self._close(key.data)
        self.selector.close()

    def _copy(self, output: _Output) -> None:
        try:
            lines, ended = output.read()
        except BlockingIOError:  # woken, but another read took it first
            return
        for line in lines:
            output.log.write(line + "\n")
            self.echo(f"[{output.label}] {line.rstrip()}")
        if ended:
            self._close(output)

    def _close(self, output: _Output) -> None:
        self.selector.unregister(output.stream)
        output.stream.close()


@dataclass
class _Slot:
    """The mutable state of one supervised child, changed only by the supervisor's loop."""

    child: AgentChild
    start_at: float
    process: subprocess.Popen | None = None
    restarts: int = 0
    returncode: int | None = None
    done: bool = False
    log: AgentLog | None = field(default=None, repr=False)
    mark: str = field(default_factory=lambda: uuid.uuid4().hex)
    """`SLOT_ENV`'s value in this slot's agents, and so in everything they start."""


class Supervisor:
    """Starts the children staggered, keeps them running, and ends when every one has exited."""

    def __init__(
        self, children: list[AgentChild], options: SupervisorOptions, echo: Callable[[str], None], notice: Path
    ):
        self.began = time.monotonic()
        self.slots = [_Slot(child, start_at=self.began + i * options.stagger_s) for i, child in enumerate(children)]
        self.options = options
        self.echo = echo
        self.notice = notice
        self.outputs = _Outputs(echo)
        self.signals = SignalLatch()
        """SIGINT and SIGTERM received while it runs, forwarded by the supervising loop."""
        self.forwarded = 0
        """How many of `signals.arrivals` the loop has forwarded."""
        self.signal_received: int | None = None

    def run(self) -> SupervisionResult:
        """Supervise until every child is done; SIGINT and SIGTERM are forwarded while it runs."""
        self.signals.install()
        shutdown_notice.post(self.notice)
        try:
            while not all(slot.done for slot in self.slots):
                self._forward_signals()
                for slot in self.slots:
                    self._step(slot)
                self.outputs.pump(POLL_S)
        finally:
            self.signals.restore()
            self._kill_leftovers()
            self._end_runs_left_behind()
            self.outputs.close()
            self.notice.unlink(missing_ok=True)
        outcomes = tuple(ChildOutcome(s.child.label, s.returncode, s.restarts) for s in self.slots)
        return SupervisionResult(outcomes, self.signal_received)

    def _forward_signals(self) -> None:
        while self.forwarded < len(self.signals.arrivals):
            signum, _, received_at = self.signals.arrivals[self.forwarded]
            self.forwarded += 1
            self.signal_received = self.signal_received or signum
            # Before the signal: runs read it when it arrives, and count their grace from `received_at`.
            shutdown_notice.announce_shutdown(self.notice, sent_at=received_at)
            self._say(None, f"got {signal.Signals(signum).name}: forwarding it to every agent")
            for slot in self.slots:
                if slot.process is not None and slot.process.poll() is None:
                    slot.process.send_signal(signum)
                elif not slot.done:
                    # Waiting for its turn or for a restart: it never starts now.
                    self._mark_done(slot)

    def _step(self, slot: _Slot) -> None:
        if slot.done:
            return
        if slot.process is None:
            if time.monotonic() >= slot.start_at:
                self._start(slot)
            return
        returncode = slot.process.poll()
        if returncode is None:
            return
        if returncode != 0 and self.signal_received is None:
            self._end_leftovers(slot)
        self._finish_process(slot, returncode)
        if returncode == 0 or self.signal_received is not None:
            self._say(slot, f"exited with {returncode}")
            self._mark_done(slot)
        elif slot.restarts < self.options.max_restarts:
            slot.restarts += 1
            delay = min(self.options.restart_backoff_s * 2 ** (slot.restarts - 1), self.options.restart_backoff_max_s)
            slot.start_at = time.monotonic() + delay
            self._say(
                slot, f"exited with {returncode}; restart {slot.restarts}/{self.options.max_restarts} in {delay:g}s"
            )
        else:
            self._say(slot, f"exited with {returncode}; giving up after {slot.restarts} restart(s)")
            self._mark_done(slot)

    def _end_leftovers(self, slot: _Slot) -> None:
        """A crashed agent's runs go on without it: end them before a new agent starts a second run on
        the GPU (and before waiting for the agent's output, which they may hold open)."""
        ended = end_marked(SLOT_ENV, slot.mark)
        if ended:
            self._say(slot, f"ended {ended} process(es) the crashed agent left running")

    def _start(self, slot: _Slot) -> None:
        child = slot.child
        child.log_path.parent.mkdir(parents=True, exist_ok=True)
        if slot.log is None:
            slot.log = AgentLog(child.log_path)  # closed in _mark_done
        try:
            # Its own process group keeps a terminal's Ctrl-C from reaching it twice; SIGTERM when
            # the supervisor dies (even by SIGKILL) lets it stop its runs rather than run on unwatched.
            slot.process = start_child(
                child.argv,
                signal.SIGTERM,
                env={**child.env, NOTICE_ENV: str(self.notice.resolve()), SLOT_ENV: slot.mark},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        except OSError as error:
            # A program that cannot start will not start on retry either.
            self._say(slot, f"cannot start {child.argv[0]}: {error}")
            slot.returncode = 127
            self._mark_done(slot)
            return
        # When, counted from the start of supervision: the stagger and the backoff as they were kept.
        started_at = time.monotonic() - self.began
        self._say(slot, f"started at +{started_at:.2f}s (pid {slot.process.pid}): {' '.join(child.argv)}")
        self.outputs.add(child.label, slot.log, slot.process.stdout)

    def _finish_process(self, slot: _Slot, returncode: int) -> None:
        # Its last lines come before the word that it exited.
        self.outputs.drain(slot.process.stdout, OUTPUT_DRAIN_S)
        slot.returncode = returncode
        slot.process = None

    def _mark_done(self, slot: _Slot) -> None:
        slot.done = True
        if slot.log is not None:
            slot.log.close()

    def _say(self, slot: _Slot | None, message: str) -> None:
        if slot is not None and slot.log is not None:
            slot.log.write(f"[supervisor] {message}\n")
        self.echo(f"[{slot.child.label if slot else 'supervisor'}] {message}")

    def _end_runs_left_behind(self) -> None:
        """A `wandb agent` that exits before its run (after a forwarded stop) leaves the run on the GPU:
        once every agent is done, runs still marked get a short grace to finish saving, then are ended.
        A normal exit, with nothing marked alive, waits for nothing."""
        marks = {slot.mark for slot in self.slots}
        deadline = time.monotonic() + LEFTOVER_GRACE_S
        while (alive := marked_alive(marks)) and time.monotonic() < deadline:
            self.outputs.pump(POLL_S)
        for slot in self.slots:
            if slot.mark in alive:
                ended = end_marked(SLOT_ENV, slot.mark)
                self._say(slot, f"ended {ended} process(es) its agent left running")

    def _kill_leftovers(self) -> None:
        """Only reached with children alive when the loop itself failed: never leave them orphaned."""
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is None:
                slot.process.kill()
                slot.process.wait()


def marked_alive(marks: set[str]) -> set[str]:
    """Which of the slot marks a live process of ours still carries (a zombie's environment cannot be read)."""
    found = set()
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):  # gone meanwhile, a zombie, or not ours to read
            if process.pid != os.getpid() and process.environ().get(SLOT_ENV) in marks:
                found.add(process.environ()[SLOT_ENV])
    return found
