"""The local agent: claim a run, launch it like `wandb agent`, watch it, record it, repeat.

While a run is alive the agent beats its heartbeat, streams the run's history into the store,
asks the engine's `stop_runs` after every new objective value (hyperband), and stops the run if
the sweep is cancelled. A stop is SIGTERM, then SIGKILL after a grace period, as `wandb agent`
does. Ctrl-C (or SIGTERM to the agent) stops the run the same way and puts it back in the queue,
so the next agent runs it again: an interrupted point is not lost from the sweep.
"""

from __future__ import annotations

import collections
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from agent import sweep_config
from agent.local import controller, launch, metrics
from agent.local.store import RunRow, Store, new_id
from agent.records import LOSS_KEY, objective_of

# `wandb agent` gives up once 5 runs failed and none finished (MAX_INITIAL_FAILURES).
MAX_INITIAL_FAILURES = 5
OUTPUT_TAIL_LINES = 40


@dataclass(frozen=True)
class AgentOptions:
    count: int | None = None
    """Runs this agent executes at most; None: until the sweep has no more."""
    max_consecutive_failed_runs: int | None = None
    heartbeat_interval_s: float = 2.0
    heartbeat_timeout_s: float = 60.0
    """A running run whose heartbeat is older than this is requeued by the next agent that asks."""
    kill_grace_s: float = 30.0
    """Seconds between SIGTERM and SIGKILL (W&B's agent waits 30)."""
    poll_interval_s: float = 0.2
    wait_interval_s: float = 1.0


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    state: str
    exit_code: int | None
    runtime_s: float
    reason: str | None = None


@dataclass(frozen=True)
class AgentResult:
    outcomes: list[RunOutcome]
    reason: str
    failed: bool = False
    """True when the agent gave up on failing runs or was interrupted."""


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
    program_output: IO[str] | None = None,
) -> AgentResult:
    sweep = store.sweep(sweep_id)  # fails fast on an unknown id
    agent_id = f"{socket.gethostname()}-{os.getpid()}-{new_id(4)}"
    grid_size = sweep_config.grid_size(sweep.config)
    outcomes: list[RunOutcome] = []
    consecutive_failures = 0
    last_wait = None
    with _Interrupts() as interrupts:
        while options.count is None or len(outcomes) < options.count:
            if interrupts.count:
                return AgentResult(outcomes, "interrupted", failed=True)
            claim = controller.claim_next_run(store, sweep_id, agent_id, options.heartbeat_timeout_s)
            if isinstance(claim, controller.Done):
                return AgentResult(outcomes, claim.reason)
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
            outcome = supervise_run(store, sweep.config, sweep.project, run, options, interrupts, program_output)
            outcomes.append(outcome)
            echo(describe_outcome(store, sweep.config, outcome))
            if outcome.state == "pending":  # interrupted and requeued
                return AgentResult(outcomes, "interrupted", failed=True)

            if outcome.state in ("failed", "crashed"):
                consecutive_failures += 1
            else:
                consecutive_failures = 0
            finished = sum(o.state == "finished" for o in outcomes)
            failed = sum(o.state in ("failed", "crashed") for o in outcomes)
            limit = options.max_consecutive_failed_runs
            if limit is not None and consecutive_failures >= limit:
                return AgentResult(outcomes, f"{consecutive_failures} consecutive failed runs", failed=True)
            if failed >= MAX_INITIAL_FAILURES and finished == 0:
                return AgentResult(outcomes, f"{failed} failed runs and none finished", failed=True)
    return AgentResult(outcomes, f"--count {options.count} reached")


def supervise_run(
    store: Store,
    sweep_config: dict,
    project: str | None,
    run: RunRow,
    options: AgentOptions,
    interrupts: _Interrupts,
    program_output: IO[str] | None,
) -> RunOutcome:
    objective = objective_of(sweep_config)
    metric_name = objective.name
    plan = launch.prepare_launch(sweep_config, run.sweep_id, run.run_id, run.config, project)
    launched_at = time.time()
    process = launch.start_program(plan)
    store.set_pid(run.run_id, process.pid)
    tail: collections.deque[str] = collections.deque(maxlen=OUTPUT_TAIL_LINES)
    copier = threading.Thread(target=_copy_output, args=(process, tail, program_output), daemon=True)
    copier.start()

    follower: metrics.HistoryFollower | None = None
    stop_reason: str | None = None
    stop_sent_at: float | None = None
    requeue = False
    last_beat = time.monotonic()
    while process.poll() is None:
        time.sleep(options.poll_interval_s)
        if follower is None:
            run_file = launch.find_run_file(plan.wandb_dir, run.run_id, launched_at)
            if run_file is not None:
                follower = metrics.HistoryFollower(run_file)
        if follower is not None and _record_history(store, run.run_id, follower.new_rows(), metric_name):
            stop_reason = stop_reason or controller.should_stop(store, run.sweep_id, run.run_id)
        if time.monotonic() - last_beat >= options.heartbeat_interval_s:
            store.beat(run.run_id)
            last_beat = time.monotonic()
            if stop_reason is None and store.sweep(run.sweep_id).state == "CANCELED":
                stop_reason = "sweep cancelled"
        if interrupts.count and not requeue:
            requeue, stop_reason = True, "agent interrupted"
        if stop_reason and stop_sent_at is None:
            _signal(process, signal.SIGTERM)
            stop_sent_at = time.monotonic()
        elif stop_sent_at is not None and (
            time.monotonic() - stop_sent_at >= options.kill_grace_s or interrupts.count > 1
        ):
            _signal_group(process, signal.SIGKILL)

    exit_code = process.returncode
    copier.join(timeout=5)
    summary: dict = {}
    if follower is None:  # a short run can end before the first poll saw its file
        run_file = launch.find_run_file(plan.wandb_dir, run.run_id, launched_at)
        follower = metrics.HistoryFollower(run_file) if run_file else None
    if follower is not None:
        # A program that ended by itself has written its exit record; a killed one never will.
        _record_history(store, run.run_id, follower.close(timeout_s=10 if exit_code >= 0 else 0), metric_name)
        summary = metrics.flatten_summary(metrics.read_summary(follower.run_file).summary, objective)
    runtime_s = time.time() - launched_at

    with store.write():
        if requeue:
            store.requeue(run.run_id)
            return RunOutcome(run.run_id, "pending", exit_code, runtime_s, stop_reason)
        state = _final_state(exit_code, stop_reason)
        store.finish_run(run.run_id, state, exit_code, summary, "".join(tail) or None)
    return RunOutcome(run.run_id, state, exit_code, runtime_s, stop_reason)


def _final_state(exit_code: int, stop_reason: str | None) -> str:
    if stop_reason is not None:
        return "stopped"
    if exit_code == 0:
        return "finished"
    # A negative code is a signal nobody in the sweep sent (OOM killer, a user's kill): crashed.
    return "crashed" if exit_code < 0 else "failed"


def _record_history(store: Store, run_id: str, rows: list[dict], metric_name: str | None) -> bool:
    """Keep the rows that carry the objective (what hyperband and reports read) or the training loss
    (the report's loss curves); True if any carries the objective."""
    kept = [row for row in rows if metric_name is None or metric_name in row or LOSS_KEY in row]
    if kept:
        store.append_history(run_id, kept)
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


def _signal(process, signum: int) -> None:
    try:
        process.send_signal(signum)
    except ProcessLookupError:
        pass


def _signal_group(process, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def format_params(config: dict) -> str:
    return " ".join(f"{key}={value}" for key, value in config.items())


def describe_outcome(store: Store, sweep_config: dict, outcome: RunOutcome) -> str:
    metric_name = objective_of(sweep_config).name
    text = f"agent: run {outcome.run_id} {outcome.state} in {outcome.runtime_s:.1f}s"
    if outcome.state in ("failed", "crashed"):
        text += f" (exit code {outcome.exit_code})"
    if outcome.reason and outcome.state in ("stopped", "pending"):
        text += f" ({outcome.reason})"
    if outcome.state == "pending":
        text += "; requeued"
    value = store.run(outcome.run_id).summary.get(metric_name) if metric_name else None
    if isinstance(value, (int, float)):
        text += f", {metric_name}={value:.4g}"
    return text
