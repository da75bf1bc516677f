"""The store and the controller's decisions, in process: claims, caps, requeues, sweep states."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from agent.local import controller
from agent.local import store as store_module
from agent.local.store import Claim, Store, UnknownSweep
from agent.records import SweepState
from agent.sweep_config import grid_size

GRID = {
    "method": "grid",
    "metric": {"name": "score", "goal": "maximize"},
    "parameters": {"a": {"values": [1, 2, 3]}, "b": {"values": ["x", "y"]}},
}


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "sweeps.db")
    yield store
    store.close()


def new_sweep(store, config):
    with store.write() as tx:
        return tx.create_sweep(config, None, None)


def claim(store, sweep_id, agent="agent-1", timeout=60.0):
    return controller.claim_next_run(store, sweep_id, agent, heartbeat_timeout_s=timeout)


def finish(store, run, summary=None):
    with store.write() as tx:
        tx.finish_run(run.claim, "finished", 0, summary or {}, None)


def test_grid_gives_every_point_once_and_never_past_its_size(store):
    sweep_id = new_sweep(store, GRID)
    assert grid_size(GRID) == 6
    claimed = [claim(store, sweep_id) for _ in range(6)]
    assert all(isinstance(c, controller.Claimed) for c in claimed)
    points = {(c.run.config["a"], c.run.config["b"]) for c in claimed}
    assert points == {(a, b) for a in (1, 2, 3) for b in ("x", "y")}

    # Every point taken but some still running: another agent waits (a run may come back).
    assert isinstance(claim(store, sweep_id, "agent-2"), controller.Wait)
    for c in claimed:
        finish(store, c.run)
    done = claim(store, sweep_id, "agent-2")
    assert isinstance(done, controller.Done)
    assert store.sweep(sweep_id).state == SweepState.FINISHED
    assert len(store.runs(sweep_id)) == 6


def test_random_search_stops_at_run_cap(store):
    config = {"method": "random", "run_cap": 3, "parameters": {"lr": {"min": 0.0, "max": 1.0}}}
    sweep_id = new_sweep(store, config)
    for _ in range(3):
        run = claim(store, sweep_id).run
        assert 0.0 <= run.config["lr"] <= 1.0
        finish(store, run)
    assert isinstance(claim(store, sweep_id), controller.Done)
    assert len(store.runs(sweep_id)) == 3


def test_bayes_search_proposes_where_finished_runs_scored_best(store):
    # Eleven finished runs across [0, 1] whose score peaks at x = 0.85: the region x > 0.7 holds 30% of
    # the range, so a search that ignored the scores would put about 30% of its proposals there.
    np.random.seed(0)  # the engine samples its candidates with numpy's global generator
    config = {
        "method": "bayes",
        "metric": {"name": "score", "goal": "maximize"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}},
    }
    sweep_id = new_sweep(store, config)
    with store.write() as tx:
        for x in np.linspace(0.0, 1.0, 11):
            run = tx.add_run(sweep_id, {"x": float(x)}, "seeding")
            tx.finish_run(run.claim, "finished", 0, {"score": -((float(x) - 0.85) ** 2)}, None)

    proposals = [claim(store, sweep_id).run.config["x"] for _ in range(12)]
    assert sum(x > 0.7 for x in proposals) >= 2 / 3 * len(proposals), proposals


def test_expired_heartbeat_requeues_the_run_for_another_agent(store):
    sweep_id = new_sweep(store, GRID)
    first = claim(store, sweep_id, "dead-agent").run
    with store.write() as tx:
        tx.append_history(first.claim, [{"score": 1.0}])
    with store.write():  # the dead agent's last beat was long ago
        store._db.execute("UPDATE runs SET heartbeat_at = ? WHERE run_id = ?", (time.time() - 100, first.run_id))

    again = claim(store, sweep_id, "live-agent", timeout=10).run
    assert again.run_id == first.run_id
    assert again.config == first.config
    assert again.agent_id == "live-agent"
    assert again.claims == 2
    assert again.history == [{"score": 1.0}]  # kept: the new claim's launch may resume from a checkpoint


def set_state(store, sweep_id, state):
    with store.write() as tx:
        tx.set_sweep_state(sweep_id, state)


def test_paused_sweep_waits_and_cancelled_sweep_is_done(store):
    sweep_id = new_sweep(store, GRID)
    set_state(store, sweep_id, SweepState.PAUSED)
    assert isinstance(claim(store, sweep_id), controller.Wait)
    set_state(store, sweep_id, SweepState.RUNNING)
    run = claim(store, sweep_id).run
    set_state(store, sweep_id, SweepState.CANCELED)
    assert isinstance(claim(store, sweep_id), controller.Done)
    assert controller.should_stop(store, sweep_id, run.run_id) == "sweep cancelled"


def test_unknown_sweep_is_a_clear_error(store):
    with pytest.raises(UnknownSweep, match="no local sweep 'nope'"):
        store.sweep("nope")


def test_sweep_record_is_what_reports_read(store):
    sweep_id = new_sweep(store, GRID)
    run = claim(store, sweep_id).run
    with store.write() as tx:
        tx.append_history(run.claim, [{"score": 1.0, "train/global_step": 10}])
        tx.finish_run(run.claim, "failed", 3, {"score": 1.0}, "boom\n")
    record = store.sweep_record(sweep_id)
    assert record.objective.name == "score"
    (only,) = record.runs
    assert only.state == "failed"
    assert only.exit_code == 3
    assert only.config == {"a": 1, "b": "x"}
    assert only.history == [{"score": 1.0, "train/global_step": 10}]
    assert only.runtime_s is not None and only.runtime_s >= 0


def test_a_dead_agents_program_is_ended_only_if_it_carries_the_runs_id(store, tmp_path):
    sweep_id = new_sweep(store, GRID)
    run = claim(store, sweep_id).run

    def program(run_id):  # its own process group, as the agent starts programs
        env = {**os.environ, "WANDB_RUN_ID": run_id}
        return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env, start_new_session=True)

    other, mine = program("another"), program(run.run_id)
    try:
        controller.kill_orphan(dataclasses.replace(run, pid=other.pid))
        controller.kill_orphan(dataclasses.replace(run, pid=mine.pid))
        assert mine.wait(timeout=10) == -signal.SIGKILL
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_a_store_at_the_previous_schema_version_is_upgraded_in_place_when_opened(tmp_path, monkeypatch):
    path = tmp_path / "sweeps.db"
    old = Store(path)
    with old.write() as tx:
        sweep_id = tx.create_sweep(GRID, "proj", None)
    old.close()
    # The next version adds a column: a store written at the current version is now the previous one.
    monkeypatch.setattr(store_module, "MIGRATIONS", [*store_module.MIGRATIONS, "ALTER TABLE runs ADD COLUMN note TEXT"])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", store_module.SCHEMA_VERSION + 1)

    Store(path, read_only=True).close()  # a reading command reads it as it stands, writing nothing
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == store_module.SCHEMA_VERSION - 1

    upgraded = Store(path)
    assert upgraded.sweep(sweep_id).project == "proj"
    upgraded.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == store_module.SCHEMA_VERSION
    assert "note" in {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    db.close()


SCHEMA_2 = """
CREATE TABLE sweeps (sweep_id TEXT PRIMARY KEY, config TEXT NOT NULL, state TEXT NOT NULL, project TEXT,
    name TEXT, created_at REAL NOT NULL);
CREATE TABLE runs (run_id TEXT PRIMARY KEY, sweep_id TEXT NOT NULL REFERENCES sweeps(sweep_id),
    seq INTEGER NOT NULL, state TEXT NOT NULL, config TEXT NOT NULL, summary TEXT NOT NULL DEFAULT '{}',
    agent_id TEXT, pid INTEGER, heartbeat_at REAL, started_at REAL, ended_at REAL, exit_code INTEGER,
    output_tail TEXT, attempts INTEGER NOT NULL DEFAULT 0, UNIQUE (sweep_id, seq));
CREATE TABLE history (run_id TEXT NOT NULL REFERENCES runs(run_id), idx INTEGER NOT NULL, row TEXT NOT NULL,
    PRIMARY KEY (run_id, idx));
CREATE TABLE run_logs (run_id TEXT NOT NULL REFERENCES runs(run_id), attempt INTEGER NOT NULL,
    folder TEXT NOT NULL, PRIMARY KEY (run_id, attempt));
INSERT INTO sweeps VALUES ('swp', '{"method": "grid", "parameters": {"a": {"value": 1}}}', 'RUNNING', 'proj',
    NULL, 0);
INSERT INTO runs (run_id, sweep_id, seq, state, config, summary, exit_code, attempts)
    VALUES ('run1', 'swp', 1, 'finished', '{"a": 1}', '{"score": 3}', 0, 2);
INSERT INTO history VALUES ('run1', 0, '{"score": 3}');
INSERT INTO run_logs VALUES ('run1', 1, '/wandb/offline-run-1-run1'), ('run1', 2, '/wandb/offline-run-2-run1');
"""
"""A store as lora-sweep wrote it at schema version 2, when a claim was called an attempt."""


def test_a_store_at_schema_2_keeps_its_claims_read_as_it_stands_and_upgraded_when_written(tmp_path):
    path = tmp_path / "sweeps.db"
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_2 + f"PRAGMA application_id = {store_module.APPLICATION_ID}; PRAGMA user_version = 2;")
    db.close()

    reader = Store(path, read_only=True)  # `lora-sweep runs` reads it without writing a byte
    assert reader.run("run1").claims == 2
    reader.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 2

    writer = Store(path)
    run = writer.run("run1")
    assert (run.state, run.claims, run.summary, run.history) == ("finished", 2, {"score": 3}, [{"score": 3}])
    assert writer.run_log(Claim("run1", 1)) == Path("/wandb/offline-run-1-run1")
    assert writer.run_log(Claim("run1", 2)) == Path("/wandb/offline-run-2-run1")
    assert writer.sweep("swp").project == "proj"
    writer.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == store_module.SCHEMA_VERSION == 3
    assert "claims" in {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    assert "claim" in {row[1] for row in db.execute("PRAGMA table_info(run_logs)")}
    db.close()
