"""Store faults through the commands a user runs: one line on stderr, no traceback, and a file
that is not our store is never changed. Full and read-only disks are real small tmpfs mounts
(skipped where this process may not mount)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import uuid
from pathlib import Path

import pytest
from helpers import (
    assert_one_line,
    create_sweep,
    exited,
    logged_points,
    record_args_sweep,
    run_cli,
    runs_of,
    start_agent,
    wait_for,
)

from agent.local import controller
from agent.local.store import APPLICATION_ID, SCHEMA_VERSION, Store

pytestmark = pytest.mark.usefixtures("no_leaked_processes")

GRID = {"method": "grid", "parameters": {"x": {"values": [1, 2]}}}


def every_command(store: Path, tmp_path: Path) -> list[subprocess.CompletedProcess]:
    sweep_yaml = tmp_path / "grid.yaml"
    sweep_yaml.write_text("method: grid\nprogram: train.py\nparameters:\n  x:\n    values: [1, 2]\n")
    return [
        run_cli("runs", "abc", "--store", str(store)),
        run_cli("report", "abc", "--store", str(store)),
        run_cli("agent", "abc", "--store", str(store)),
        run_cli("sweep", "--pause", "abc", "--store", str(store)),
        run_cli("sweep", str(sweep_yaml), "--local", "--store", str(store)),
    ]


def folder_snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def make_store_with_a_sweep(path: Path) -> str:
    store = Store(path)
    with store.write() as tx:
        sweep_id = tx.create_sweep(GRID, None, None)
    store.close()
    return sweep_id


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path):
    store = tmp_path / "notes.db"
    store.write_text("my notes, not a database\n" * 20)
    before = folder_snapshot(tmp_path)
    for result in every_command(store, tmp_path):
        assert_one_line(result, "is not a lora-sweep store")
    assert folder_snapshot(tmp_path) == {**before, "grid.yaml": (tmp_path / "grid.yaml").read_bytes()}


def test_another_programs_sqlite_database_is_refused_and_left_alone(tmp_path):
    store = tmp_path / "app.db"
    db = sqlite3.connect(store)
    db.execute("CREATE TABLE users (name TEXT)")
    db.execute("INSERT INTO users VALUES ('ada')")
    db.commit()
    db.close()
    before = store.read_bytes()
    for result in every_command(store, tmp_path):
        assert_one_line(result, "another program's SQLite database (users)")
    assert store.read_bytes() == before  # not switched to WAL, no table of ours added
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db", "grid.yaml"]


@pytest.mark.parametrize("damage", ["truncated", "overwritten"])
def test_a_damaged_store_is_one_line(tmp_path, damage):
    store = tmp_path / "sweeps.db"
    sweep_id = make_store_with_a_sweep(store)
    Store(store).close()  # the last connection checkpoints the log into the file
    data = bytearray(store.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data[100:4096] = os.urandom(3996)  # the first page after the header: the schema
    store.write_bytes(bytes(data))
    for args in (["runs", sweep_id], ["report", sweep_id], ["agent", sweep_id]):
        assert_one_line(run_cli(*args, "--store", str(store)), str(store))


def test_a_store_of_another_schema_version_is_refused(tmp_path):
    store = tmp_path / "sweeps.db"
    make_store_with_a_sweep(store)
    db = sqlite3.connect(store)
    db.execute("PRAGMA user_version = 99")
    db.close()
    assert_one_line(
        run_cli("runs", "abc", "--store", str(store)), "schema version 99", f"reads version {SCHEMA_VERSION}"
    )


def test_a_store_from_before_the_schema_version_is_still_read(tmp_path):
    store = tmp_path / "sweeps.db"
    sweep_id = make_store_with_a_sweep(store)
    db = sqlite3.connect(store)
    db.execute("DROP TABLE run_logs")  # a store from before the stamp has only the first tables,
    db.execute("ALTER TABLE runs RENAME COLUMN claims TO attempts")  # as they were then
    db.execute("PRAGMA application_id = 0")
    db.execute("PRAGMA user_version = 0")
    db.close()
    result = run_cli("runs", sweep_id, "--store", str(store))
    assert result.returncode == 0, result.stderr
    sqlite3.connect(store).execute("PRAGMA application_id").fetchone()  # still a plain SQLite file
    Store(store).close()  # opened for writing, it is stamped as ours, at the current version
    assert sqlite3.connect(store).execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert sqlite3.connect(store).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_store_path_under_a_file_is_one_line(tmp_path):
    (tmp_path / "taken").write_text("a file, not a folder")
    yaml = tmp_path / "grid.yaml"
    yaml.write_text("method: grid\nprogram: train.py\nparameters:\n  x:\n    values: [1]\n")
    result = run_cli("sweep", str(yaml), "--local", "--store", str(tmp_path / "taken" / "sweeps.db"))
    assert_one_line(result, "part of its folder path is a file")


@contextlib.contextmanager
def tmpfs(tmp_path: Path, size: str):
    mount_point = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)])
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(folder: Path) -> None:
    with open(folder / "filler", "wb") as filler, contextlib.suppress(OSError):
        while True:
            filler.write(b"\0" * 65536)
            filler.flush()


def test_a_read_only_location_still_serves_runs_and_refuses_writes_in_one_line(tmp_path):
    with tmpfs(tmp_path, "4m") as disk:
        store = disk / "sweeps.db"
        sweep_id = make_store_with_a_sweep(store)
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        listed = run_cli("runs", sweep_id, "--store", str(store))
        assert listed.returncode == 0, listed.stderr
        assert run_cli("runs", sweep_id, "--store", str(store), "--format", "json").returncode == 0
        assert_one_line(run_cli("agent", sweep_id, "--store", str(store)), "read-only")


def test_a_full_disk_is_one_line(tmp_path):
    with tmpfs(tmp_path, "256k") as disk:
        fill(disk)
        yaml = tmp_path / "grid.yaml"
        yaml.write_text("method: grid\nprogram: train.py\nparameters:\n  x:\n    values: [1]\n")
        result = run_cli("sweep", str(yaml), "--local", "--store", str(disk / "sweeps.db"))
        assert_one_line(result, "full")


@pytest.mark.e2e
def test_a_disk_filling_mid_run_stops_the_program_and_leaves_the_run_requeueable(tmp_path):
    with tmpfs(tmp_path, "1m") as disk:
        store = disk / "sweeps.db"
        filler = disk / "filler"
        code = (
            "import os, sys, time\n"
            f"with open({str(filler)!r}, 'wb') as f:\n"
            "    try:\n"
            "        while True: f.write(b'0' * 65536); f.flush()\n"
            "    except OSError: pass\n"
            "time.sleep(120)\n"
        )
        config = {
            "method": "grid",
            "command": ["${env}", "${interpreter}", "-c", code],
            "parameters": {"x": {"value": 1}},
        }
        sweep_id = create_sweep(store, config)
        agent = start_agent(sweep_id, store, tmp_path)
        out, err = agent.communicate(timeout=120)
        assert agent.returncode == 1
        assert err.strip().splitlines()[-1].startswith("Error: the disk holding the store"), err
        assert "Traceback" not in err
        filler.unlink()  # space again: the run was left as a dead agent's run, for the next agent
        (run,) = runs_of(store, sweep_id)
        assert run.state == "running"
        live = Store(store)
        with live.write() as tx:
            assert controller.requeue_expired_runs(tx, sweep_id, heartbeat_timeout_s=0) == [run.run_id]
        assert live.runs(sweep_id)[0].state == "pending"
        live.close()


@pytest.mark.e2e
def test_a_store_deleted_while_an_agent_runs_is_loud(tmp_path):
    store = tmp_path / "sweeps.db"
    sweep_id = create_sweep(store, record_args_sweep(tmp_path / "log", [1, 2], sleep=60))
    agent = start_agent(sweep_id, store, tmp_path)
    [run] = wait_for(lambda: [r for r in runs_of(store, sweep_id) if r.pid], 60, "the run to start")
    for path in tmp_path.glob("sweeps.db*"):
        path.unlink()
    out, err = agent.communicate(timeout=60)
    assert agent.returncode == 1
    # Found at the next heartbeat, and the program stopped: gone, never woken from its 60 s sleep to log "done".
    wait_for(lambda: exited(run.pid), 10, "the program to end")
    assert logged_points(tmp_path / "log", "start") == [1] and logged_points(tmp_path / "log") == []
    assert err.strip().splitlines()[-1] == f"Error: the store {store} was deleted or replaced while this agent ran:" + (
        " its runs cannot be recorded"
    )
