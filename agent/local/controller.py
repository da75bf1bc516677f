"""The local controller: W&B's own `sweeps` engine deciding over the runs in our store.

The engine is a set of stateless functions of (sweep config, runs). This module turns our runs
into the engine's `SweepRun`s, asks it for the next run or for runs to stop, and applies W&B's
sweep semantics around it: run_cap, sweep states, and requeueing runs whose agent died.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

import sweeps  # its pydantic warning on import is silenced once, in agent/__init__.py
from agent.env_vars import CLAIM_ENV
from agent.local.options import HEARTBEAT_INTERVAL_S
from agent.local.processes import claim_mark, end_marked, signal_group
from agent.local.store import RunRow, Store, Transaction
from agent.records import QUEUED_STATES, RunState, SweepState

# Our run states in the engine's vocabulary. STOPPED (early-terminated or cancelled) is what
# W&B's engine calls killed; hyperband and Bayes both treat it as a terminal run. PREEMPTED is
# the engine's own, not terminal: Bayes counts it as a point under way, as it counts pending.
_ENGINE_STATE = {
    RunState.PENDING: sweeps.RunState.pending,
    RunState.RUNNING: sweeps.RunState.running,
    RunState.PREEMPTED: sweeps.RunState.preempted,
    RunState.FINISHED: sweeps.RunState.finished,
    RunState.FAILED: sweeps.RunState.failed,
    RunState.CRASHED: sweeps.RunState.crashed,
    RunState.STOPPED: sweeps.RunState.killed,
}


@dataclass(frozen=True)
class Claimed:
    run: RunRow


@dataclass(frozen=True)
class Wait:
    """No run to give now, but one may come (other runs still running, or the sweep paused)."""

    reason: str


@dataclass(frozen=True)
class Done:
    """The sweep will give no more runs."""

    reason: str


def to_engine_run(run: RunRow) -> sweeps.SweepRun:
    return sweeps.SweepRun(
        name=run.run_id,
        state=_ENGINE_STATE[run.state],
        config={key: {"value": value} for key, value in run.config.items()},
        history=run.history,
        summary_metrics=run.summary,
    )


def claim_next_run(
    store: Store, sweep_id: str, agent_id: str, heartbeat_timeout_s: float, expiry: Expiry | None = None
) -> Claimed | Wait | Done:
    """Give `agent_id` its next run, atomically: one write transaction around every decision.
    `expiry`: the agent's own, kept across its claims (see `Expiry`); None requeues at once."""
    with store.write() as tx:
        requeue_expired_runs(tx, sweep_id, heartbeat_timeout_s, expiry)
        sweep = store.sweep(sweep_id)
        if sweep.state in (SweepState.FINISHED, SweepState.CANCELED):
            return Done(f"sweep {sweep_id} is {sweep.state.lower()}")
        if sweep.state == SweepState.PAUSED:
            return Wait(f"sweep {sweep_id} is paused")

        runs = store.runs(sweep_id)
        pending = [run for run in runs if run.state in QUEUED_STATES]
        if pending:
            return Claimed(tx.claim_pending(pending[0].run_id, agent_id))

        running = [run for run in runs if run.state == RunState.RUNNING]
        run_cap = sweep.config.get("run_cap")
        if run_cap is not None and len(runs) >= run_cap:
            return _wait_or_finish(tx, sweep_id, running, f"run_cap {run_cap} reached")

        proposal = sweeps.next_run(sweep.config, [to_engine_run(run) for run in runs])
        if proposal is None:  # only a grid runs out
            return _wait_or_finish(tx, sweep_id, running, "every grid point is taken")
        config = {key: spec["value"] for key, spec in proposal.config.items()}
        return Claimed(tx.add_run(sweep_id, config, agent_id))


def _wait_or_finish(tx: Transaction, sweep_id: str, running: list[RunRow], why: str) -> Wait | Done:
    # While a run is still running its agent may yet die and the run come back: wait for it.
    if running:
        return Wait(f"{why}; waiting for {len(running)} running run(s)")
    tx.set_sweep_state(sweep_id, SweepState.FINISHED)
    return Done(f"{why} and done; sweep {sweep_id} finished")


@dataclass
class Expiry:
    """The runs one agent found past the heartbeat timeout, and when. A stale heartbeat alone does
    not prove its agent dead: while another process holds the store's write lock (an agent frozen
    inside a transaction) no agent can beat, and when a whole machine sleeps every beat goes stale
    at once. Either way the live agents' beats land as soon as the lock is free. So a run is
    requeued only when a claim at least `grace_s` after the one that found it stale finds the same
    heartbeat: its agent had the store and did not beat."""

    grace_s: float = 2 * HEARTBEAT_INTERVAL_S
    clock: Callable[[], float] = time.monotonic
    """Monotonic: a machine's sleep does not count as time in which a run could beat."""
    found: dict[tuple[str, int], tuple[float | None, float]] = field(default_factory=dict)
    """(run id, claim number) -> (its heartbeat then, when this agent found it stale)."""

    def confirmed(self, stale: list[RunRow]) -> list[RunRow]:
        """Of the runs stale now, those stale since a claim `grace_s` ago with no beat since."""
        now = self.clock()
        earlier, self.found = self.found, {}
        confirmed = []
        for run in stale:
            key = (run.run_id, run.claims)
            heartbeat, since = earlier.get(key, (run.heartbeat_at, now))
            if heartbeat != run.heartbeat_at:  # it beat meanwhile, and is stale again: start over
                heartbeat, since = run.heartbeat_at, now
            if now - since >= self.grace_s:
                confirmed.append(run)
            else:
                self.found[key] = (heartbeat, since)
        return confirmed


def requeue_expired_runs(
    tx: Transaction, sweep_id: str, heartbeat_timeout_s: float, expiry: Expiry | None = None
) -> list[str]:
    """Runs whose agent stopped beating (killed, frozen) go back to pending, history kept: the next
    claim's launch resumes from the run's checkpoint if it left one. With `expiry`, only once a later
    claim confirms it (`Expiry`)."""
    deadline = time.time() - heartbeat_timeout_s
    expired = [
        run
        for run in tx.store.runs(sweep_id, with_history=False)
        if run.state == RunState.RUNNING and (run.heartbeat_at or 0) < deadline
    ]
    if expiry is not None:
        expired = expiry.confirmed(expired)
    for run in expired:
        kill_orphan(run)
        tx.requeue(run.claim)
    return [run.run_id for run in expired]


def kill_orphan(run: RunRow) -> None:
    """The dead agent's launch may still be running: its program in its own process group, and
    W&B's `wandb-core` in a session of its own, writing that launch's log. End both, so two
    processes never write the same run and the next launch never reads the old one's log. Only
    processes that carry this run's id or this claim's mark are touched."""
    if run.pid is not None and _environ(run.pid).get("WANDB_RUN_ID") == run.run_id:
        signal_group(run.pid, signal.SIGKILL)
    end_marked(CLAIM_ENV, claim_mark(run.run_id, run.claims))


def _environ(pid: int) -> dict[str, str]:
    try:
        return psutil.Process(pid).environ()
    except psutil.Error:
        return {}  # gone already, or not ours to read


def should_stop(store: Store, sweep_id: str, run_id: str) -> str | None:
    """Why this running run must stop now (cancelled sweep, hyperband), or None."""
    sweep = store.sweep(sweep_id)
    if sweep.state == SweepState.CANCELED:
        return "sweep cancelled"
    if "early_terminate" not in sweep.config:
        return None
    runs = store.runs(sweep_id)
    to_stop = sweeps.stop_runs(sweep.config, [to_engine_run(run) for run in runs])
    for engine_run in to_stop:
        if engine_run.name == run_id:
            lines = (engine_run.early_terminate_info or {}).get("lines", [])
            mine = [line for line in lines if run_id in line]
            return "early_terminate: " + (mine[-1].strip() if mine else "hyperband")
    return None
