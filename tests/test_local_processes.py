"""No process outlives its run or its agent: the program, its W&B service, and the metrics
follower (`wandb-core leet inspect --follow`) end on every path, counted after each one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from helpers import (
    PROGRAMS,
    PYTHON_COMMAND,
    agent_env,
    create_sweep,
    marked_processes,
    runs_of,
    start_agent,
    wait_for,
    wait_until_no_marked_processes,
)

from agent.local.processes import start_child
from agent.local.store import Store
from agent.records import SweepState

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_leaked_processes")]


def scorer_sweep(tmp_path, exit_codes, steps, ignore_sigterm):
    return {
        "method": "grid",
        "program": str(PROGRAMS / "scorer.py"),
        "command": PYTHON_COMMAND,
        "metric": {"name": "score", "goal": "maximize"},
        "parameters": {
            "exit_code": {"values": exit_codes},
            "steps": {"value": steps},
            "sleep": {"value": 0.4},
            # A program that ignores SIGTERM is ended by SIGKILL and never writes its exit
            # record, so its follower cannot end by itself: the hard case.
            "ignore_sigterm": {"value": ignore_sigterm},
            "marker_dir": {"value": str(tmp_path)},
        },
    }


def follower_running() -> bool:
    return any("leet inspect" in args for args in marked_processes())


@pytest.mark.parametrize("path", ["finished and failed", "cancelled", "agent ctrl-c", "agent sigkill"])
def test_nothing_outlives_its_run_or_its_agent(tmp_path, path):
    store_path = tmp_path / "sweeps.db"
    ends_by_itself = path == "finished and failed"
    # Interrupted paths get a program that would run on for 40 s: long past the check below.
    config = scorer_sweep(tmp_path, [0, 3], steps=10 if ends_by_itself else 100, ignore_sigterm=not ends_by_itself)
    sweep_id = create_sweep(store_path, config)
    agent = start_agent(sweep_id, store_path, tmp_path, WANDB_AGENT_KILL_DELAY="2")
    wait_for(follower_running, 60, "the metrics follower to start")  # so there is something to leak

    if path == "cancelled":
        store = Store(store_path)
        with store.write() as tx:
            tx.set_sweep_state(sweep_id, SweepState.CANCELED)
        store.close()
    elif path == "agent ctrl-c":
        agent.send_signal(signal.SIGINT)
    elif path == "agent sigkill":
        agent.send_signal(signal.SIGKILL)
    agent.communicate(timeout=120)

    wait_until_no_marked_processes(timeout_s=15)
    states = [run.state for run in runs_of(store_path, sweep_id)]
    expected = {
        "finished and failed": ["finished", "failed"],
        "cancelled": ["stopped"],
        "agent ctrl-c": ["pending"],
        "agent sigkill": ["running"],  # until the next agent finds its heartbeat stale
    }[path]
    assert states == expected


def test_a_child_the_program_left_behind_ends_with_its_run(tmp_path):
    store_path = tmp_path / "sweeps.db"
    config = {
        "method": "grid",
        "program": str(PROGRAMS / "leaves_child.py"),
        "command": PYTHON_COMMAND,
        "parameters": {"pid_file": {"value": str(tmp_path / "child.pid")}, "child_s": {"values": [60]}},
    }
    sweep_id = create_sweep(store_path, config)
    agent = start_agent(sweep_id, store_path, tmp_path)
    out, err = agent.communicate(timeout=60)

    assert agent.returncode == 0, err
    assert [run.state for run in runs_of(store_path, sweep_id)] == ["finished"]
    assert (tmp_path / "child.pid").exists()
    wait_until_no_marked_processes(timeout_s=5)  # the program's exit ended its group, child included


PARENT = """
import subprocess, sys, threading, time
from agent.local.processes import start_child

threading.Thread(target=time.sleep, args=(60,), daemon=True).start()  # threads run, as in the agent
child = start_child([sys.executable, "-c", "import time; time.sleep(60)"], stdin=subprocess.DEVNULL)
print(child.pid, flush=True)
time.sleep(60)
"""


def test_a_child_leads_its_own_process_group_and_dies_with_the_parent_that_started_it():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], env=agent_env(), stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert os.getpgid(child) == child  # a terminal's Ctrl-C reaches the agent, never the run directly

    parent.kill()  # SIGKILL: nothing of the parent's runs, the kernel alone ends the child
    parent.wait()
    wait_until_no_marked_processes(timeout_s=5)


def test_a_program_that_cannot_start_raises_what_popen_raises(tmp_path):
    not_executable = tmp_path / "train.py"
    not_executable.write_text("print('never runs')\n")
    with pytest.raises(FileNotFoundError, match="/nonexistent/python"):
        start_child(["/nonexistent/python"])
    with pytest.raises(PermissionError, match="train.py"):
        start_child([str(not_executable)])
    with pytest.raises(FileNotFoundError, match="no-such-program"):
        start_child(["no-such-program"], env={"PATH": str(tmp_path)})
