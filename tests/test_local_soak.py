"""benchmarks/controller_soak.py at a small size: real agents on one store, killed, frozen and
crowded, and every point finished exactly once, run_cap exact, the store sound, nothing locked,
nothing left running. Only orders, counts and states are asserted: the figures are printed."""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
import time
from pathlib import Path

import pytest
from helpers import agent_env

from agent.local import controller
from agent.local.store import Store

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("no_leaked_processes")
TIMEOUT_S = 600  # a bound on a hung scenario, never a measure of speed


def load_soak():
    spec = importlib.util.spec_from_file_location("controller_soak", REPO / "benchmarks" / "controller_soak.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while they are made
    spec.loader.exec_module(module)
    return module


soak = load_soak()


def assert_passed(report) -> None:
    assert report.checks, report.lines
    assert report.ok, "\n".join(report.problems + report.lines)
    assert report.runs_per_s > 0, report.lines  # measured from the store's runs


@pytest.mark.e2e
def test_a_grid_survives_a_killed_and_replaced_agent_and_a_frozen_one(tmp_path):
    env = agent_env()  # carries the test session's mark, for no_leaked_processes
    bare_s = soak.bare_startup_s(tmp_path / "bare", soak.soak_env(tmp_path / "bare", env), runs=3)
    report = soak.grid_with_faults(tmp_path / "a", 40, 4, 1, bare_s, base_env=env, timeout_s=TIMEOUT_S)
    assert_passed(report)
    faults = [
        line.split()[0] for line in report.lines if line.split()[0] in ("SIGKILL", "holding", "SIGSTOP", "SIGCONT")
    ]
    assert faults == ["SIGKILL", "holding", "SIGSTOP", "SIGCONT"], report.lines  # every fault, in its order


@pytest.mark.e2e
def test_a_random_sweep_stops_at_exactly_its_run_cap(tmp_path):
    report = soak.random_with_cap(tmp_path / "b", 20, 4, 0.0, base_env=agent_env(), timeout_s=TIMEOUT_S)
    assert_passed(report)


@pytest.mark.e2e
def test_six_agents_share_one_store_and_run_each_point_once(tmp_path):
    report = soak.crowded_grid(tmp_path / "c", 40, 6, 0.0, base_env=agent_env(), timeout_s=TIMEOUT_S)
    assert_passed(report)


def test_a_stale_heartbeat_is_requeued_only_once_a_later_claim_finds_it_unchanged(tmp_path):
    """While the store's write lock is held past the timeout (an agent frozen inside a transaction)
    no agent can beat: the first claim after it finds every live run stale. Those beat as soon as
    the lock is free, and must not be taken for dead; a run whose agent really died still is."""
    store = Store(tmp_path / "sweeps.db")
    grid = {"method": "grid", "command": ["true"], "parameters": {"x": {"values": [1, 2, 3]}}}
    with store.write() as tx:
        sweep_id = tx.create_sweep(grid, None, None)
    live = controller.claim_next_run(store, sweep_id, "live", 10).run
    now = [0.0]
    expiry = controller.Expiry(clock=lambda: now[0])

    def beats_stop() -> None:
        db = sqlite3.connect(store.path, isolation_level=None, timeout=30)
        db.execute("UPDATE runs SET heartbeat_at = ? WHERE run_id = ?", (time.time() - 60, live.run_id))
        db.close()

    def claim():
        return controller.claim_next_run(store, sweep_id, "other", 10, expiry)

    beats_stop()
    assert claim().run.config == {"x": 2}  # found stale, not requeued
    with store.write() as tx:
        tx.beat(live.claim)  # the live agent's beat, once the lock is free: it still owns its run
    now[0] += expiry.grace_s
    assert claim().run.config == {"x": 3}
    assert store.run(live.run_id).claims == 1

    beats_stop()  # now its agent is gone
    assert isinstance(claim(), controller.Wait)
    now[0] += expiry.grace_s / 2
    assert isinstance(claim(), controller.Wait)  # not yet a whole grace without a beat
    now[0] += expiry.grace_s / 2
    taken = claim()
    assert (taken.run.run_id, taken.run.claims, taken.run.agent_id) == (live.run_id, 2, "other")
    store.close()
