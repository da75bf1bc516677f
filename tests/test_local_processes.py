"""No process outlives its run or its agent: the program, its W&B service, and the metrics
follower (`wandb-core leet inspect --follow`) end on every path, counted after each one."""

from __future__ import annotations

import signal

import pytest
from helpers import (
    PROGRAMS,
    PYTHON_COMMAND,
    create_sweep,
    marked_processes,
    runs_of,
    start_agent,
    wait_for,
    wait_until_no_marked_processes,
)

from agent.local.store import Store

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
        store.set_sweep_state(sweep_id, "CANCELED")
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
