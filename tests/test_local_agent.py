"""Agents as real processes over one store: concurrency, dead agents, hyperband, Ctrl-C, failures."""

from __future__ import annotations

import signal

import pytest
from helpers import (
    PROGRAMS,
    PYTHON_COMMAND,
    create_sweep,
    exited,
    logged_points,
    record_args_sweep,
    runs_of,
    start_agent,
    wait_for,
)

from agent.local.store import Store
from agent.records import SweepState

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_leaked_processes")]


def test_four_agents_run_a_50_point_grid_with_no_point_twice_or_missing(tmp_path):
    store_path, log = tmp_path / "sweeps.db", tmp_path / "ran.jsonl"
    sweep_id = create_sweep(store_path, record_args_sweep(log, list(range(50))))
    agents = [start_agent(sweep_id, store_path, tmp_path) for _ in range(4)]
    for agent in agents:
        out, err = agent.communicate(timeout=240)
        assert agent.returncode == 0, err

    assert sorted(logged_points(log)) == list(range(50))  # each program ran exactly once
    runs = runs_of(store_path, sweep_id)
    assert sorted(run.config["point"] for run in runs) == list(range(50))
    assert {run.state for run in runs} == {"finished"}
    assert len({run.agent_id for run in runs}) > 1  # the work really was shared


def test_a_killed_agents_run_is_requeued_and_finished_by_another(tmp_path):
    store_path, log = tmp_path / "sweeps.db", tmp_path / "ran.jsonl"
    sweep_id = create_sweep(store_path, record_args_sweep(log, [7], sleep=60.0))
    doomed = start_agent(sweep_id, store_path, tmp_path)
    run = wait_for(lambda: [r for r in runs_of(store_path, sweep_id) if r.pid], 60, "the run to start")[0]
    # The program dies with its agent: let it log its start first, so the first launch is on record.
    wait_for(lambda: logged_points(log, "start") == [7], 60, "the program to start")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    assert runs_of(store_path, sweep_id)[0].state == "running"  # nobody knows yet that it died

    rescuer = start_agent(sweep_id, store_path, tmp_path, "--heartbeat-timeout", "10")
    out, err = rescuer.communicate(timeout=120)
    assert rescuer.returncode == 0, err
    (final,) = runs_of(store_path, sweep_id)
    assert final.run_id == run.run_id
    assert final.state == "finished"
    assert final.claims == 2
    assert final.agent_id != run.agent_id
    # Two launches started; the dead agent's program died with it (its first launch sleeps 60 s),
    # so the point ran to completion once, in the second launch.
    assert logged_points(log, "start") == [7, 7]
    assert logged_points(log) == [7]


def test_hyperband_stops_the_run_whose_metric_plateaus(tmp_path):
    store_path = tmp_path / "sweeps.db"
    config = {
        "method": "grid",
        "program": str(PROGRAMS / "scorer.py"),
        "command": PYTHON_COMMAND,
        "metric": {"name": "score", "goal": "maximize"},
        "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 2, "strict": True},
        "parameters": {
            "slope": {"values": [2.0, 1.5, 0.0]},  # the last one never improves
            "steps": {"value": 12},
            "sleep": {"value": 0.3},
            "ignore_sigterm": {"value": True},  # so the stop has to escalate to SIGKILL
            "marker_dir": {"value": str(tmp_path)},
        },
    }
    sweep_id = create_sweep(store_path, config)
    agent = start_agent(sweep_id, store_path, tmp_path, WANDB_AGENT_KILL_DELAY="1")
    out, err = agent.communicate(timeout=240)
    assert agent.returncode == 0, err

    good1, good2, plateau = runs_of(store_path, sweep_id)
    assert (good1.state, good2.state) == ("finished", "finished")
    assert [row["score"] for row in good1.history] == [2.0 * step for step in range(1, 13)]
    assert plateau.state == "stopped", err
    assert len(plateau.history) < 12  # stopped early, not at the end
    assert (tmp_path / f"{plateau.run_id}.sigterm").exists()  # SIGTERM first ...
    assert plateau.exit_code == -signal.SIGKILL  # ... then SIGKILL after the grace period
    assert "early_terminate" in err


def test_ctrl_c_stops_the_run_and_puts_it_back_in_the_queue(tmp_path):
    store_path, log = tmp_path / "sweeps.db", tmp_path / "ran.jsonl"
    sweep_id = create_sweep(store_path, record_args_sweep(log, [1, 2], sleep=60.0))
    agent = start_agent(sweep_id, store_path, tmp_path)
    [running] = wait_for(lambda: [r for r in runs_of(store_path, sweep_id) if r.pid], 60, "the run to start")
    agent.send_signal(signal.SIGINT)
    out, err = agent.communicate(timeout=60)

    assert agent.returncode == 130
    (run,) = runs_of(store_path, sweep_id)
    assert run.state == "pending" and run.pid is None and run.agent_id is None
    assert "requeued" in err
    # The program got SIGTERM and died: gone, never woken from its 60 s sleep to log "done".
    wait_for(lambda: exited(running.pid), 10, "the program to end")
    assert logged_points(log, "start") == [1] and logged_points(log) == []


def failing_sweep(code: str, values: list) -> dict:
    return {
        "method": "grid",
        "command": ["${env}", "${interpreter}", "-c", code, "${args}"],
        "parameters": {"x": {"values": values}},
    }


def test_a_failed_run_keeps_its_exit_code_and_output_tail(tmp_path):
    store_path = tmp_path / "sweeps.db"
    code = "import sys; print('boom at', sys.argv[1:]); sys.exit(3 if '--x=1' in sys.argv else 0)"
    sweep_id = create_sweep(store_path, failing_sweep(code, [1, 2]))
    agent = start_agent(sweep_id, store_path, tmp_path)
    out, err = agent.communicate(timeout=60)
    assert agent.returncode == 0, err  # one failed run is the sweep's business, not the agent's
    failed, finished = runs_of(store_path, sweep_id)
    assert (failed.state, finished.state) == ("failed", "finished")
    assert failed.exit_code == 3
    assert "boom at ['--x=1']" in failed.output_tail
    assert "boom at" in out  # and the program's output was shown as it ran
    assert "failed in" in err and "(exit code 3): boom at ['--x=1']" in err  # its last words, in one line


def test_a_sweep_whose_every_run_failed_says_so_and_the_agent_exits_non_zero(tmp_path):
    store_path = tmp_path / "sweeps.db"
    sweep_id = create_sweep(store_path, failing_sweep("import sys; sys.exit(2)", [1, 2]))
    agent = start_agent(sweep_id, store_path, tmp_path)
    out, err = agent.communicate(timeout=60)
    assert agent.returncode == 1, err
    last = err.strip().splitlines()[-1]
    assert f"every run of sweep {sweep_id} failed (2 of 2)" in last
    assert "finished" not in last


def test_sweep_cancel_stops_running_runs(tmp_path):
    store_path, log = tmp_path / "sweeps.db", tmp_path / "ran.jsonl"
    sweep_id = create_sweep(store_path, record_args_sweep(log, [1, 2], sleep=60.0))
    agent = start_agent(sweep_id, store_path, tmp_path, WANDB_AGENT_KILL_DELAY="1")
    wait_for(lambda: [r for r in runs_of(store_path, sweep_id) if r.pid], 60, "the run to start")
    store = Store(store_path)
    with store.write() as tx:
        tx.set_sweep_state(sweep_id, SweepState.CANCELED)
    store.close()
    out, err = agent.communicate(timeout=60)
    assert agent.returncode == 0, err
    (run,) = runs_of(store_path, sweep_id)
    assert run.state == "stopped"
    assert "cancelled" in err
