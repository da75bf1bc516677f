"""The local agent: claim a run, launch it like `wandb agent`, watch it, record it, repeat.

While a run is alive the agent beats its heartbeat, streams the run's history into the store,
asks the engine's `stop_runs` after every new objective value (hyperband), and stops the run if
the sweep is cancelled. A stop is SIGTERM, then SIGKILL after a grace period, as `wandb agent`
does. Ctrl-C (or SIGTERM to the agent) stops the run the same way and puts it back in the queue,
so the next agent runs it again: an interrupted point is not lost from the sweep.

A run stopped by something other than this agent is preempted, as on W&B: it exited 143 (the
trial program's answer to a SIGTERM it got from its machine), or it died after marking itself
preempting (`run.mark_preempting()`). It is queued again under its own id, and the next launch
resumes from its checkpoint. A run the agent stopped itself is `stopped`, never requeued.

The heartbeat has its own thread and its own store connection, and beats until the run is
recorded, so nothing the agent waits for (a flood of output, the metrics follower, the summary
read) can make a live run look dead. Every write names the claim: an agent that was frozen
past the timeout finds its run taken by another and drops its claim without a write.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from agent import sweep_config
from agent.env_vars import CLAIM_ENV
from agent.local import controller, launch, metrics
from agent.local.options import AgentOptions
from agent.local.processes import end_marked, signal_group
from agent.local.store import Claim, RunRow, RunTaken, Store, StoreError, SweepRow, new_id
from agent.records import (
    FAILED_STATES,
    LOSS_KEY,
    PREEMPTED_EXIT_CODE,
    TAKEN,
    Objective,
    RunState,
    SweepState,
    is_number,
    objective_of,
    objective_value,
)
from agent.signals import SignalLatch

__all__ = ["AgentOptions", "AgentResult", "ClaimOutcome", "run_agent"]

# `wandb agent` gives up once 5 runs failed and none finished (MAX_INITIAL_FAILURES).
MAX_INITIAL_FAILURES = 5
OUTPUT_TAIL_LINES = 40
TAKEN_REASON = "another agent took it over after missed heartbeats; this claim dropped"
OUTPUT_DRAIN_S = 60.0
"""How long a finished program's last output may take to reach us (a grandchild can hold the pipe)."""


@dataclass(frozen=True)
class ClaimOutcome:
    """How one claim of this agent ended, for its one line."""

    run_id: str
    state: RunState | None
    """The state this agent recorded (PENDING: interrupted and put back in the queue; PREEMPTED:
    queued again to resume), or None: another agent took the run over and nothing was recorded."""
    exit_code: int | None
    runtime_s: float
    reason: str | None = None
    value: float | None = None
    """The objective as recorded, if the run logged it."""
    warning: str | None = None

    @property
    def label(self) -> str:
        return self.state or TAKEN


@dataclass(frozen=True)
class AgentResult:
    outcomes: list[ClaimOutcome]
    reason: str
    failed: bool = False
    """True when the agent gave up on failing runs, every run failed, or it was interrupted."""


def run_agent(
    store: Store,
    sweep_id: str,
    options: AgentOptions,
    echo: Callable[[str], None],
    *,
    env: Mapping[str, str],
    program_output: IO[str] | None = None,
) -> AgentResult:
    """Run runs of `sweep_id` until it has no more (or `options.count`). `env` is the environment
    the programs start from (the agent's own, read at the entry point). A fault of the store
    raises StoreError; the program then running is stopped and its run left to be requeued."""
    sweep = store.sweep(sweep_id)  # fails fast on an unknown id
    agent_id = f"{socket.gethostname()}-{os.getpid()}-{new_id(4)}"
    grid_size = sweep_config.grid_size(sweep.config)
    outcomes: list[ClaimOutcome] = []
    last_wait = None
    expiry = controller.Expiry()  # across this agent's claims: a stale run is requeued once confirmed
    # SIGINT/SIGTERM to the agent: the first asks for a clean stop, the second for a kill. Called from
    # another thread, the agent leaves signals to its caller: only the main thread can set handlers.
    interrupts = SignalLatch()
    on_main_thread = threading.current_thread() is threading.main_thread()
    with interrupts if on_main_thread else contextlib.nullcontext(interrupts):
        while options.count is None or len(outcomes) < options.count:
            if interrupts.arrivals:
                return AgentResult(outcomes, "interrupted", failed=True)
            answer = controller.claim_next_run(store, sweep_id, agent_id, options.heartbeat_timeout_s, expiry)
            if isinstance(answer, controller.Done):
                return _when_done(store, sweep_id, outcomes, answer.reason)
            if isinstance(answer, controller.Wait):
                if answer.reason != last_wait:
                    echo(f"agent: {answer.reason}")
                    last_wait = answer.reason
                time.sleep(options.wait_interval_s)
                continue
            last_wait = None

            run = answer.run
            of = f"/{grid_size}" if grid_size else ""
            echo(f"agent: run {run.run_id} (#{run.seq}{of}) {format_params(run.config)}")
            outcome = supervise_run(store, sweep, run, options, interrupts, env, program_output)
            outcomes.append(outcome)
            echo(describe_outcome(objective_of(sweep.config), outcome))
            if outcome.state == RunState.PENDING:  # interrupted and requeued
                return AgentResult(outcomes, "interrupted", failed=True)
            give_up = give_up_reason(outcomes, options)
            if give_up:
                return AgentResult(outcomes, give_up, failed=True)
    return AgentResult(outcomes, f"--count {options.count} reached")


def give_up_reason(outcomes: list[ClaimOutcome], options: AgentOptions) -> str | None:
    """As `wandb agent`: stop after too many failures in a row, or 5 failures and no success."""
    ended = [o for o in outcomes if o.state is not None]
    consecutive = 0
    for outcome in reversed(ended):
        if outcome.state not in FAILED_STATES:
            break
        consecutive += 1
    limit = options.max_consecutive_failed_runs
    if limit is not None and consecutive >= limit:
        return f"{consecutive} consecutive failed runs"
    failed = sum(o.state in FAILED_STATES for o in ended)
    if failed >= MAX_INITIAL_FAILURES and not any(o.state == RunState.FINISHED for o in ended):
        return f"{failed} runs failed and none finished; see `lora-sweep runs` for their errors"
    return None


def _when_done(store: Store, sweep_id: str, outcomes: list[ClaimOutcome], reason: str) -> AgentResult:
    """The sweep gives no more runs. If none of them succeeded, that is a failure, said plainly."""
    runs = store.runs(sweep_id, with_history=False)
    if runs and all(run.state in FAILED_STATES for run in runs):
        return AgentResult(
            outcomes,
            f"every run of sweep {sweep_id} failed ({len(runs)} of {len(runs)}); see `lora-sweep runs {sweep_id}`",
            failed=True,
        )
    return AgentResult(outcomes, reason)


# --- one run ----------------------------------------------------------------------------------
#
# Four threads serve a claim. The agent's thread launches, watches, collects and records it,
# and alone changes `_Watch` and `_Program`. The copier thread moves the program's output to the
# screen and into `_OutputTail`, which has its own lock. The heartbeat thread beats and keeps what
# ended it early under its own lock; the agent's thread asks it with `check()`. The follower's
# reader thread (`metrics.HistoryFollower`) puts the run's history rows in a queue the agent's
# thread empties, and hands over the run's exit code and preempting mark once, through an Event
# that `close()` reads: a reader that has not set it by then has said nothing.


class _Heartbeat:
    """Beats for one claim every `interval_s`, from its own thread and store connection, until
    closed. What ended it early (the run taken, or a store fault) is raised by `check()`."""

    def __init__(self, store_path: Path, claim: Claim, interval_s: float):
        self._ended: RunTaken | StoreError | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(store_path, claim, interval_s), daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def check(self) -> None:
        """Raise RunTaken if the run was requeued under this claim, or the store's fault."""
        with self._lock:
            ended = self._ended
        if ended is not None:
            raise ended

    def _end(self, why: RunTaken | StoreError) -> None:
        with self._lock:
            self._ended = why

    def _beat(self, store_path: Path, claim: Claim, interval_s: float) -> None:
        try:
            store = Store(store_path)
        except StoreError as error:
            self._end(error)
            return
        try:
            while not self._stop.wait(interval_s):
                with store.write() as tx:
                    tx.beat(claim)
        except (RunTaken, StoreError) as error:
            self._end(error)
        finally:
            store.close()


class _OutputTail:
    """The program's last lines: the copier thread adds them while the agent's thread reads."""

    def __init__(self) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=OUTPUT_TAIL_LINES)
        self._lock = threading.Lock()

    def add(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)

    def text(self) -> str:
        with self._lock:
            return "".join(self._lines)

    def last_words(self) -> str | None:
        """The last line that says something: a failed run's reason, for the agent's one line."""
        with self._lock:
            return next((line.strip() for line in reversed(self._lines) if line.strip()), None)


class _Program:
    """The program of one launch, started as `wandb agent` starts it, with its output copied."""

    def __init__(self, plan: launch.Launch, sink: IO[str] | None):
        self.plan = plan
        self.process: subprocess.Popen[bytes] = launch.start_program(plan)  # OSError if it cannot start
        self.launched_at = time.time()
        self.tail = _OutputTail()
        self._copier = threading.Thread(target=_copy_output, args=(self.process.stdout, self.tail, sink), daemon=True)
        self._copier.start()

    @property
    def exit_code(self) -> int | None:
        return self.process.returncode

    def running(self) -> bool:
        return self.process.poll() is None

    def run_file(self, run_id: str) -> Path | None:
        """The W&B log this launch writes, once wandb.init() has created it."""
        return launch.find_run_file(self.plan.wandb_dir, run_id, self.plan.earlier_run_dirs)

    def terminate(self) -> None:
        """SIGTERM to the program itself, as `wandb agent` stops a run."""
        try:
            self.process.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL to its whole process group."""
        signal_group(self.process.pid, signal.SIGKILL)

    def drain_output(self) -> None:
        self._copier.join(timeout=OUTPUT_DRAIN_S)

    def end(self) -> None:
        """Nothing of it outlives the launch: its process group, whether or not the program still
        lives (a child it left runs on in the group), and whatever carries the claim's mark in
        another session (W&B's `wandb-core`)."""
        self.kill()
        self.process.wait()
        end_marked(CLAIM_ENV, self.plan.env[CLAIM_ENV])


class _Watch:
    """One claim of a run, from launch to record, as the agent's thread sees it.

    A stop goes one way: wanted (`stop_reason`, the first reason wins) -> SIGTERM -> SIGKILL to the
    group after the grace. An interrupt of the agent takes over the reason and puts the run back
    in the queue instead of ending it."""

    def __init__(self, run: RunRow, objective: Objective, program: _Program):
        self.run = run
        self.objective = objective
        self.program = program
        self.follower: metrics.HistoryFollower | None = None
        self.stop_reason: str | None = None
        self.requeue = False
        self.interrupted_by: int | None = None
        self._sigterm_at: float | None = None
        self._history_started = False
        """This claim has stored rows; its first ones replace what an earlier claim stored from
        their step on."""
        self.summary: dict[str, Any] = {}
        self.warning: str | None = None

    @property
    def claim(self) -> Claim:
        return self.run.claim

    # -- while it runs

    def want_stop(self, reason: str | None) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason

    def put_back(self, signum: int) -> None:
        """The agent was interrupted: stop the program and queue the run again. A SIGTERM to the agent
        is its machine going away (a scheduler signals every process of a job at once): a program that
        answers it as a preemption is recorded preempted, not merely put back."""
        if not self.requeue:
            self.requeue, self.stop_reason = True, "agent interrupted"
            self.interrupted_by = signum

    def escalate_stop(self, kill_grace_s: float, kill_now: bool) -> None:
        """SIGTERM once a stop is wanted; SIGKILL to the group after the grace, or at once on `kill_now`."""
        if self.stop_reason and self._sigterm_at is None:
            self.program.terminate()
            self._sigterm_at = time.monotonic()
        elif self._sigterm_at is not None and (time.monotonic() - self._sigterm_at >= kill_grace_s or kill_now):
            self.program.kill()

    def follow_history(self, store: Store) -> None:
        """New rows to the store; a new objective value asks the engine whether to stop (hyperband)."""
        if self.follower is None and not self._start_following(store):
            return
        if self._store_rows(store, self.follower.new_rows()) and self.stop_reason is None:
            self.want_stop(controller.should_stop(store, self.run.sweep_id, self.run.run_id))

    def _start_following(self, store: Store) -> bool:
        run_file = self.program.run_file(self.run.run_id)
        if run_file is not None:
            self.follower = metrics.HistoryFollower(run_file, self.program.plan.env)
            with store.write() as tx:
                tx.record_run_log(self.claim, run_file.parent)  # which log is whose, for a later --rescan
        return self.follower is not None

    def _store_rows(self, store: Store, rows: list[dict]) -> bool:
        """Keep the rows that carry the objective (what hyperband and reports read) or the training
        loss (the report's loss curves); True if any carries the objective."""
        metric_name = self.objective.name
        kept = [row for row in rows if metric_name is None or metric_name in row or LOSS_KEY in row]
        if kept:
            with store.write() as tx:
                tx.append_history(self.claim, kept, first=not self._history_started)
            self._history_started = True
        return metric_name is not None and any(metric_name in row for row in kept)

    # -- after the exit

    def collect(self, store: Store) -> None:
        """The last output, the last history rows, and the summary."""
        self.program.drain_output()
        if self.follower is None and not self._start_following(store):  # a short run can end before the first poll
            return  # the program never started a W&B run: nothing to read
        # A program that ended by itself has written its exit record; a killed one never will.
        exited_cleanly = self.program.exit_code >= 0
        self._store_rows(store, self.follower.close(timeout_s=10 if exited_cleanly else 0))
        read = metrics.read_summary(self.follower.run_file, self.program.plan.env)
        error = read.error
        if error is None and exited_cleanly and self.follower.exit_code is None:
            error = f"{self.follower.run_file.parent.name} has no exit record"  # not this program's whole log
        if error is None:
            self.summary = metrics.flatten_summary(read.summary, self.objective)
            return
        # Never an empty summary passed off as the run's: keep what the history showed, and say so.
        self.summary = self._summary_from_history(store)
        self.warning = f"summary not read ({error}); the objective comes from the recorded history"

    def _summary_from_history(self, store: Store) -> dict[str, Any]:
        """The objective's best value in the recorded history, as `objective_value` reads it. The
        stored summary is left out: a requeued run's is an earlier launch's."""
        history_only = replace(store.run(self.run.run_id).record(), summary={})
        value = objective_value(history_only, self.objective)
        return {} if value is None else {self.objective.name: value}

    def record(self, store: Store) -> ClaimOutcome:
        """How the claim ended, into the store: put back, preempted (queued again), or over."""
        exit_code = self.program.exit_code
        tail = self.program.tail.text() + (f"lora-sweep: warning: {self.warning}\n" if self.warning else "")
        with store.write() as tx:
            preempting = self.follower is not None and self.follower.preempting
            if self.requeue and not self._preempted_with_the_agent(exit_code, preempting):
                tx.requeue(self.claim)
                return self.outcome(RunState.PENDING)
            state = final_state(exit_code, None if self.requeue else self.stop_reason, preempting)
            if state == RunState.PREEMPTED:
                tx.preempt(self.claim, exit_code, self.summary, tail or None)
            else:
                tx.finish_run(self.claim, state, exit_code, self.summary, tail or None)
        if state in FAILED_STATES:  # its last words say why, for the agent's one line
            return self.outcome(state, reason=self.program.tail.last_words())
        return self.outcome(state)

    def _preempted_with_the_agent(self, exit_code: int, preempting: bool) -> bool:
        """The agent got SIGTERM and its program, which got one too, ended as a preemption."""
        sigterm = self.interrupted_by == signal.SIGTERM
        return sigterm and final_state(exit_code, None, preempting) == RunState.PREEMPTED

    def outcome(self, state: RunState | None, reason: str | None = None) -> ClaimOutcome:
        value = self.summary.get(self.objective.name) if self.objective.name else None
        return ClaimOutcome(
            self.run.run_id,
            state,
            self.program.exit_code,
            time.time() - self.program.launched_at,
            reason or self.stop_reason,
            value=float(value) if is_number(value) else None,
            warning=self.warning,
        )

    def end(self) -> None:
        """Nothing of this run outlives it: the program's group, then the follower."""
        self.program.end()
        if self.follower is not None:
            self.follower.stop()


def supervise_run(
    store: Store,
    sweep: SweepRow,
    run: RunRow,
    options: AgentOptions,
    interrupts: SignalLatch,
    env: Mapping[str, str],
    program_output: IO[str] | None = None,
) -> ClaimOutcome:
    """Launch, watch, collect and record one run; the heartbeat lasts until it is recorded."""
    objective = objective_of(sweep.config)
    with _Heartbeat(store.path, run.claim, options.heartbeat_interval_s) as heartbeat:
        try:
            watch = _launch(store, sweep, run, objective, env, program_output)
        except OSError as error:
            return _record_launch_failure(store, run, error)
        except RunTaken:
            return ClaimOutcome(run.run_id, None, None, 0.0, TAKEN_REASON)
        try:
            _watch_until_exit(store, watch, options, interrupts, heartbeat)
            watch.collect(store)
            heartbeat.check()
            return watch.record(store)
        except RunTaken:
            return watch.outcome(None, TAKEN_REASON)
        finally:
            watch.end()


def _launch(
    store: Store,
    sweep: SweepRow,
    run: RunRow,
    objective: Objective,
    env: Mapping[str, str],
    program_output: IO[str] | None,
) -> _Watch:
    plan = launch.prepare_launch(
        sweep.config, run.sweep_id, run.run_id, run.config, sweep.project, base_env=env, claim=run.claims
    )
    watch = _Watch(run, objective, _Program(plan, program_output))
    try:
        with store.write() as tx:
            tx.set_pid(run.claim, watch.program.process.pid)
    except BaseException:
        watch.end()
        raise
    return watch


def _record_launch_failure(store: Store, run: RunRow, error: OSError) -> ClaimOutcome:
    """A program that cannot start is the run's failure, not the agent's: record it, go on."""
    reason = f"cannot launch the program: {error}"
    try:
        with store.write() as tx:
            tx.finish_run(run.claim, RunState.FAILED, None, {}, reason + "\n")
    except RunTaken:
        return ClaimOutcome(run.run_id, None, None, 0.0, TAKEN_REASON)
    return ClaimOutcome(run.run_id, RunState.FAILED, None, 0.0, reason)


def _watch_until_exit(
    store: Store, watch: _Watch, options: AgentOptions, interrupts: SignalLatch, heartbeat: _Heartbeat
) -> None:
    """Poll the program until it exits: history to the store, stop checks, stop escalation."""
    last_sweep_check = time.monotonic()
    while watch.program.running():
        time.sleep(options.poll_interval_s)
        heartbeat.check()
        watch.follow_history(store)
        if time.monotonic() - last_sweep_check >= options.heartbeat_interval_s:
            last_sweep_check = time.monotonic()
            if watch.stop_reason is None and store.sweep(watch.run.sweep_id).state == SweepState.CANCELED:
                watch.want_stop("sweep cancelled")
        if interrupts.arrivals:
            watch.put_back(interrupts.arrivals[0].signum)
        watch.escalate_stop(options.kill_grace_s, kill_now=asks_to_kill(interrupts.arrivals))


def asks_to_kill(arrivals) -> bool:
    """A second signal kills the program at once, unless it is another SIGTERM: a scheduler's
    SIGTERM reaches the agent both directly and through its supervisor, and the program's
    checkpoint needs the grace."""
    return len(arrivals) > 1 and any(arrival.signum != signal.SIGTERM for arrival in arrivals)


def final_state(exit_code: int, stop_reason: str | None, preempting: bool) -> RunState:
    """How a claim's launch ended. Whatever follows a stop this agent sent is STOPPED (the trial
    program answers our SIGTERM with 143 too: only the agent knows it sent it)."""
    if stop_reason is not None:
        return RunState.STOPPED
    if exit_code == 0:
        return RunState.FINISHED
    if exit_code == PREEMPTED_EXIT_CODE or preempting:
        return RunState.PREEMPTED
    # A negative code is a signal nobody in the sweep sent (OOM killer, a user's kill): crashed.
    return RunState.CRASHED if exit_code < 0 else RunState.FAILED


def _copy_output(stdout: IO[bytes], tail: _OutputTail, sink: IO[str] | None) -> None:
    """Show the program's output as it comes and keep its last lines for the run record."""
    sink = sink or sys.stdout
    for raw in stdout:
        line = raw.decode("utf-8", errors="replace")
        tail.add(line)
        try:
            sink.write(line)
            sink.flush()
        except (ValueError, OSError):
            pass  # our own stdout went away: keep draining so the program never blocks


def format_params(config: dict) -> str:
    return " ".join(f"{key}={value}" for key, value in config.items())


def describe_outcome(objective: Objective, outcome: ClaimOutcome) -> str:
    """One line about how a run ended, from what the agent holds."""
    text = f"agent: run {outcome.run_id} {outcome.label} in {outcome.runtime_s:.1f}s"
    if outcome.state in FAILED_STATES:
        text += f" (exit code {outcome.exit_code})" if outcome.exit_code is not None else ""
        if outcome.reason:
            text += f": {outcome.reason}"
    elif outcome.reason and outcome.state in (RunState.STOPPED, RunState.PENDING, None):
        text += f" ({outcome.reason})"
    if outcome.state == RunState.PREEMPTED:
        text += f" (exit code {outcome.exit_code}); requeued to resume"
    if outcome.state == RunState.PENDING:
        text += "; requeued"
    if outcome.value is not None:
        text += f", {objective.name}={outcome.value:.4g}"
    if outcome.warning:
        text += f"; warning: {outcome.warning}"
    return text
