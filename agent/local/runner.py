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
read) can make a live run look dead. Every write names the attempt: an agent that was frozen
past the timeout finds its run taken by another and drops its attempt without a write.
"""

from __future__ import annotations

import collections
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from agent import sweep_config
from agent.local import controller, launch, metrics
from agent.local.options import AgentOptions
from agent.local.processes import signal_group
from agent.local.store import FAILED_STATES, Attempt, RunRow, RunTaken, Store, StoreError, SweepRow, new_id
from agent.records import LOSS_KEY, PREEMPTED_EXIT_CODE, Objective, is_number, objective_of

__all__ = ["AgentOptions", "AgentResult", "RunOutcome", "run_agent"]

# `wandb agent` gives up once 5 runs failed and none finished (MAX_INITIAL_FAILURES).
MAX_INITIAL_FAILURES = 5
OUTPUT_TAIL_LINES = 40
TAKEN = "another agent took it over after missed heartbeats; this attempt dropped"
OUTPUT_DRAIN_S = 60.0
"""How long a finished program's last output may take to reach us (a grandchild can hold the pipe)."""


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    state: str
    """A run state ("preempted": queued again to resume), or "pending" (interrupted and requeued),
    or "taken" (another agent has it)."""
    exit_code: int | None
    runtime_s: float
    reason: str | None = None
    value: float | None = None
    """The objective as recorded, if the run logged it."""
    warning: str | None = None


@dataclass(frozen=True)
class AgentResult:
    outcomes: list[RunOutcome]
    reason: str
    failed: bool = False
    """True when the agent gave up on failing runs, every run failed, or it was interrupted."""


class _Interrupts:
    """SIGINT/SIGTERM to the agent: the first asks for a clean stop, the second for a kill."""

    def __init__(self) -> None:
        self.count = 0
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        self.count += 1

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


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
    outcomes: list[RunOutcome] = []
    last_wait = None
    with _Interrupts() as interrupts:
        while options.count is None or len(outcomes) < options.count:
            if interrupts.count:
                return AgentResult(outcomes, "interrupted", failed=True)
            claim = controller.claim_next_run(store, sweep_id, agent_id, options.heartbeat_timeout_s)
            if isinstance(claim, controller.Done):
                return _when_done(store, sweep_id, outcomes, claim.reason)
            if isinstance(claim, controller.Wait):
                if claim.reason != last_wait:
                    echo(f"agent: {claim.reason}")
                    last_wait = claim.reason
                time.sleep(options.wait_interval_s)
                continue
            last_wait = None

            run = claim.run
            of = f"/{grid_size}" if grid_size else ""
            echo(f"agent: run {run.run_id} (#{run.seq}{of}) {format_params(run.config)}")
            outcome = supervise_run(store, sweep, run, options, interrupts, env, program_output)
            outcomes.append(outcome)
            echo(describe_outcome(objective_of(sweep.config), outcome))
            if outcome.state == "pending":  # interrupted and requeued
                return AgentResult(outcomes, "interrupted", failed=True)
            give_up = _give_up_reason(outcomes, options)
            if give_up:
                return AgentResult(outcomes, give_up, failed=True)
    return AgentResult(outcomes, f"--count {options.count} reached")


def _give_up_reason(outcomes: list[RunOutcome], options: AgentOptions) -> str | None:
    """As `wandb agent`: stop after too many failures in a row, or 5 failures and no success."""
    ended = [o for o in outcomes if o.state != "taken"]
    consecutive = 0
    for outcome in reversed(ended):
        if outcome.state not in FAILED_STATES:
            break
        consecutive += 1
    limit = options.max_consecutive_failed_runs
    if limit is not None and consecutive >= limit:
        return f"{consecutive} consecutive failed runs"
    failed = sum(o.state in FAILED_STATES for o in ended)
    if failed >= MAX_INITIAL_FAILURES and not any(o.state == "finished" for o in ended):
        return f"{failed} runs failed and none finished; see `lora-sweep runs` for their errors"
    return None


def _when_done(store: Store, sweep_id: str, outcomes: list[RunOutcome], reason: str) -> AgentResult:
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


class _Heartbeat:
    """Beats for one attempt every `interval_s`, from its own thread and store connection, until
    closed. Records, rather than raises, what ended it early: the run taken, or a store fault."""

    def __init__(self, store_path: Path, attempt: Attempt, interval_s: float):
        self.taken = False
        self.fault: StoreError | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(store_path, attempt, interval_s), daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self, store_path: Path, attempt: Attempt, interval_s: float) -> None:
        try:
            store = Store(store_path)
        except StoreError as error:
            self.fault = error
            return
        try:
            while not self._stop.wait(interval_s):
                store.beat(attempt)
        except RunTaken:
            self.taken = True
        except StoreError as error:
            self.fault = error
        finally:
            store.close()


@dataclass
class _Watch:
    """What the agent knows about the run it is watching."""

    run: RunRow
    plan: launch.Launch
    objective: Objective
    process: object
    launched_at: float = field(default_factory=time.time)
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=OUTPUT_TAIL_LINES))
    copier: threading.Thread | None = None
    follower: metrics.HistoryFollower | None = None
    stop_reason: str | None = None
    stop_sent_at: float | None = None
    requeue: bool = False
    history_started: bool = False
    """This attempt has stored rows; its first ones replace what an earlier attempt stored from
    their step on."""
    summary: dict = field(default_factory=dict)
    warning: str | None = None

    @property
    def attempt(self) -> Attempt:
        return self.run.attempt

    def outcome(self, state: str, reason: str | None = None) -> RunOutcome:
        value = self.summary.get(self.objective.name) if self.objective.name else None
        return RunOutcome(
            self.run.run_id,
            state,
            self.process.returncode,
            time.time() - self.launched_at,
            reason or self.stop_reason,
            value=float(value) if is_number(value) else None,
            warning=self.warning,
        )

    def end_processes(self) -> None:
        """Nothing of this run outlives it: the program's group, then the follower."""
        if self.process.poll() is None:
            signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self.follower is not None:
            self.follower.stop()


def supervise_run(
    store: Store,
    sweep: SweepRow,
    run: RunRow,
    options: AgentOptions,
    interrupts: _Interrupts,
    env: Mapping[str, str],
    program_output: IO[str] | None = None,
) -> RunOutcome:
    """Launch, watch, collect and record one run; the heartbeat lasts until it is recorded."""
    objective = objective_of(sweep.config)
    with _Heartbeat(store.path, run.attempt, options.heartbeat_interval_s) as heartbeat:
        try:
            watch = _launch(store, sweep, run, objective, env, program_output)
        except OSError as error:
            return _record_launch_failure(store, run, error)
        except RunTaken:
            return RunOutcome(run.run_id, "taken", None, 0.0, TAKEN)
        try:
            _watch_until_exit(store, watch, options, interrupts, heartbeat)
            _collect(store, watch)
            if heartbeat.fault:
                raise heartbeat.fault
            if heartbeat.taken:
                raise RunTaken(run.run_id)
            return _record(store, watch)
        except RunTaken:
            return watch.outcome("taken", TAKEN)
        finally:
            watch.end_processes()


def _launch(store, sweep, run, objective, env, program_output) -> _Watch:
    plan = launch.prepare_launch(sweep.config, run.sweep_id, run.run_id, run.config, sweep.project, base_env=env)
    watch = _Watch(run, plan, objective, process=launch.start_program(plan))
    watch.copier = threading.Thread(target=_copy_output, args=(watch.process, watch.tail, program_output), daemon=True)
    watch.copier.start()
    try:
        store.set_pid(run.attempt, watch.process.pid)
    except BaseException:
        watch.end_processes()
        raise
    return watch


def _record_launch_failure(store: Store, run: RunRow, error: OSError) -> RunOutcome:
    """A program that cannot start is the run's failure, not the agent's: record it, go on."""
    reason = f"cannot launch the program: {error}"
    try:
        with store.write():
            store.finish_run(run.attempt, "failed", None, {}, reason + "\n")
    except RunTaken:
        return RunOutcome(run.run_id, "taken", None, 0.0, TAKEN)
    return RunOutcome(run.run_id, "failed", None, 0.0, reason)


def _watch_until_exit(store: Store, watch: _Watch, options: AgentOptions, interrupts, heartbeat) -> None:
    """Poll the program until it exits: history to the store, stop checks, stop escalation."""
    last_sweep_check = time.monotonic()
    while watch.process.poll() is None:
        time.sleep(options.poll_interval_s)
        if heartbeat.taken:
            raise RunTaken(watch.run.run_id)
        if heartbeat.fault:
            raise heartbeat.fault
        _follow_history(store, watch)
        if time.monotonic() - last_sweep_check >= options.heartbeat_interval_s:
            last_sweep_check = time.monotonic()
            if watch.stop_reason is None and store.sweep(watch.run.sweep_id).state == "CANCELED":
                watch.stop_reason = "sweep cancelled"
        if interrupts.count and not watch.requeue:
            watch.requeue, watch.stop_reason = True, "agent interrupted"
        _escalate_stop(watch, options, interrupts)


def _follow_history(store: Store, watch: _Watch) -> None:
    if watch.follower is None:
        run_file = launch.find_run_file(watch.plan.wandb_dir, watch.run.run_id, watch.launched_at)
        if run_file is None:
            return
        watch.follower = metrics.HistoryFollower(run_file, watch.plan.env)
    if _record_history(store, watch, watch.follower.new_rows()) and watch.stop_reason is None:
        watch.stop_reason = controller.should_stop(store, watch.run.sweep_id, watch.run.run_id)


def _escalate_stop(watch: _Watch, options: AgentOptions, interrupts) -> None:
    """SIGTERM once a stop is wanted; SIGKILL to the group after the grace, or a second Ctrl-C."""
    if watch.stop_reason and watch.stop_sent_at is None:
        try:
            watch.process.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        watch.stop_sent_at = time.monotonic()
    elif watch.stop_sent_at is not None and (
        time.monotonic() - watch.stop_sent_at >= options.kill_grace_s or interrupts.count > 1
    ):
        signal_group(watch.process.pid, signal.SIGKILL)


def _collect(store: Store, watch: _Watch) -> None:
    """After the exit: the last output, the last history rows, and the summary."""
    watch.copier.join(timeout=OUTPUT_DRAIN_S)
    if watch.follower is None:  # a short run can end before the first poll saw its file
        run_file = launch.find_run_file(watch.plan.wandb_dir, watch.run.run_id, watch.launched_at)
        watch.follower = metrics.HistoryFollower(run_file, watch.plan.env) if run_file else None
    if watch.follower is None:
        return  # the program never started a W&B run: nothing to read
    # A program that ended by itself has written its exit record; a killed one never will.
    exited_cleanly = watch.process.returncode >= 0
    _record_history(store, watch, watch.follower.close(timeout_s=10 if exited_cleanly else 0))
    read = metrics.read_summary(watch.follower.run_file, watch.plan.env)
    if read.error is None:
        watch.summary = metrics.flatten_summary(read.summary, watch.objective)
        return
    # Never an empty summary passed off as the run's: keep what the history showed, and say so.
    watch.summary = _summary_from_history(store, watch)
    watch.warning = f"summary not read ({read.error}); the objective comes from the recorded history"


def _summary_from_history(store: Store, watch: _Watch) -> dict:
    name = watch.objective.name
    values = [row[name] for row in store.run(watch.run.run_id).history if name and is_number(row.get(name))]
    if not values:
        return {}
    return {name: max(values) if watch.objective.maximize else min(values)}


def _record(store: Store, watch: _Watch) -> RunOutcome:
    tail = "".join(watch.tail) + (f"lora-sweep: warning: {watch.warning}\n" if watch.warning else "")
    with store.write():
        if watch.requeue:
            store.requeue(watch.attempt)
            return watch.outcome("pending")
        preempting = watch.follower is not None and watch.follower.preempting
        state = _final_state(watch.process.returncode, watch.stop_reason, preempting)
        if state == "preempted":
            store.preempt(watch.attempt, watch.process.returncode, watch.summary, tail or None)
        else:
            store.finish_run(watch.attempt, state, watch.process.returncode, watch.summary, tail or None)
    if state in FAILED_STATES:  # its last words say why, for the agent's one line
        return watch.outcome(state, reason=next((line.strip() for line in reversed(watch.tail) if line.strip()), None))
    return watch.outcome(state)


def _final_state(exit_code: int, stop_reason: str | None, preempting: bool) -> str:
    """How an attempt ended. Whatever follows a stop this agent sent is `stopped` (the trial
    program answers our SIGTERM with 143 too: only the agent knows it sent it)."""
    if stop_reason is not None:
        return "stopped"
    if exit_code == 0:
        return "finished"
    if exit_code == PREEMPTED_EXIT_CODE or preempting:
        return "preempted"
    # A negative code is a signal nobody in the sweep sent (OOM killer, a user's kill): crashed.
    return "crashed" if exit_code < 0 else "failed"


def _record_history(store: Store, watch: _Watch, rows: list[dict]) -> bool:
    """Keep the rows that carry the objective (what hyperband and reports read) or the training loss
    (the report's loss curves); True if any carries the objective."""
    metric_name = watch.objective.name
    kept = [row for row in rows if metric_name is None or metric_name in row or LOSS_KEY in row]
    if kept:
        store.append_history(watch.attempt, kept, first=not watch.history_started)
        watch.history_started = True
    return metric_name is not None and any(metric_name in row for row in kept)


def _copy_output(process, tail: collections.deque[str], sink: IO[str] | None) -> None:
    """Show the program's output as it comes and keep its last lines for the run record."""
    sink = sink or sys.stdout
    for raw in process.stdout:
        line = raw.decode("utf-8", errors="replace")
        tail.append(line)
        try:
            sink.write(line)
            sink.flush()
        except (ValueError, OSError):
            pass  # our own stdout went away: keep draining so the program never blocks


def format_params(config: dict) -> str:
    return " ".join(f"{key}={value}" for key, value in config.items())


def describe_outcome(objective: Objective, outcome: RunOutcome) -> str:
    """One line about how a run ended, from what the agent holds."""
    text = f"agent: run {outcome.run_id} {outcome.state} in {outcome.runtime_s:.1f}s"
    if outcome.state in FAILED_STATES:
        text += f" (exit code {outcome.exit_code})" if outcome.exit_code is not None else ""
        if outcome.reason:
            text += f": {outcome.reason}"
    elif outcome.reason and outcome.state in ("stopped", "pending", "taken"):
        text += f" ({outcome.reason})"
    if outcome.state == "preempted":
        text += f" (exit code {outcome.exit_code}); requeued to resume"
    if outcome.state == "pending":
        text += "; requeued"
    if outcome.value is not None:
        text += f", {objective.name}={outcome.value:.4g}"
    if outcome.warning:
        text += f"; warning: {outcome.warning}"
    return text
