"""`lora-sweep runs SWEEP_ID --rescan` reads a finished run's result again from its own W&B folder:
the way back for runs recorded with another launch's log before the store kept each claim's."""

from __future__ import annotations

import json
import sqlite3

import pytest
from helpers import PROGRAMS, create_sweep, run_cli, run_program

from agent.local.store import Store

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_leaked_processes")]


def test_a_run_recorded_from_the_wrong_launch_gets_its_own_summary_back(tmp_path):
    store_path = tmp_path / "sweeps.db"
    config = {"method": "grid", "metric": {"name": "score", "goal": "maximize"}, "parameters": {"x": {"values": [1]}}}
    sweep_id = create_sweep(store_path, config)
    store = Store(store_path)
    with store.write() as tx:
        run = tx.add_run(sweep_id, {"x": 1}, "agent-a")
    with store.write() as tx:  # as recorded from the first launch's log, which an orphan kept fresh
        tx.finish_run(run.claim, "finished", 0, {"score": 1}, None)
    store.close()
    db = sqlite3.connect(store_path)  # a store from before it kept each claim's folder: schema 1
    db.executescript("DROP TABLE run_logs; ALTER TABLE runs RENAME COLUMN claims TO attempts; PRAGMA user_version = 1;")
    db.close()
    # The launch that finished: its log, with its summary (score max 3) and an exit record.
    done = run_program([str(PROGRAMS / "flood.py")], cwd=tmp_path, env={"WANDB_RUN_ID": run.run_id})
    assert done.returncode == 0, done.stderr

    rescanned = run_cli("runs", sweep_id, "--store", str(store_path), "--rescan", "--format", "json", cwd=tmp_path)

    assert rescanned.returncode == 0, rescanned.stderr
    assert f"run {run.run_id}: score 1 -> 3" in rescanned.stderr
    assert [r["objective"] for r in json.loads(rescanned.stdout)["runs"]] == [3]
    again = run_cli("runs", sweep_id, "--store", str(store_path), "--rescan", cwd=tmp_path)
    assert again.returncode == 0 and again.stderr == ""  # nothing left to change
