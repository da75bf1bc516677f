"""The local agent under faults, with real agents, programs and signals: a frozen agent, a flood
of output, an unreadable summary, programs that cannot start, unsafe settings, the wrong python."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import (
    PROGRAMS,
    PYTHON_COMMAND,
    agent_env,
    assert_one_line,
    create_sweep,
    record_args_sweep,
    runs_of,
    start_agent,
    wait_for,
)

from agent.cli import main
from agent.local.demo import run_demo
from agent.local.store import Claim, Store

pytestmark = pytest.mark.usefixtures("no_leaked_processes")
REPO = Path(__file__).resolve().parents[1]


def stalled_sweep(tmp_path: Path) -> dict:
    """One run of tests/programs/stalled.py: its first launch scores 1 and hangs, leaving an orphan
    that keeps touching that launch's W&B log as `wandb-core` does; a requeued one scores 7."""
    return {
        "method": "grid",
        "program": str(PROGRAMS / "stalled.py"),
        "command": PYTHON_COMMAND,
        "metric": {"name": "score", "goal": "maximize"},
        "parameters": {
            "marker_dir": {"value": str(tmp_path)},
            "first_score": {"value": 1},
            "second_score": {"values": [7]},
            "toucher_s": {"value": 40},
        },
    }


@pytest.mark.e2e
def test_an_agent_frozen_past_the_timeout_cannot_overwrite_the_run_another_agent_finished(tmp_path):
    store_path = tmp_path / "sweeps.db"
    sweep_id = create_sweep(store_path, stalled_sweep(tmp_path))
    frozen = start_agent(sweep_id, store_path, tmp_path)
    first = wait_for(lambda: [r for r in runs_of(store_path, sweep_id) if r.history], 60, "the first score")[0]
    frozen.send_signal(signal.SIGSTOP)
    try:
        rescuer = start_agent(sweep_id, store_path, tmp_path, "--heartbeat-timeout", "10")
        out, err = rescuer.communicate(timeout=120)
        assert rescuer.returncode == 0, err
        (rescued,) = runs_of(store_path, sweep_id)
        assert (rescued.state, rescued.exit_code, rescued.claims) == ("finished", 0, 2)
        # The second claim's own log, not the first one's that an orphan kept fresh.
        assert rescued.summary["score"] == 7.0, (rescued.summary, err)
        assert "warning" not in err
        store = Store(store_path)
        folders = [store.run_log(Claim(rescued.run_id, number)) for number in (1, 2)]
        store.close()
        assert None not in folders and folders[0] != folders[1]  # each claim's own W&B folder, recorded
    finally:
        frozen.send_signal(signal.SIGCONT)
    out, err = frozen.communicate(timeout=60)

    (final,) = runs_of(store_path, sweep_id)
    assert final == rescued, "the stale claim wrote to a run it no longer owns"
    assert final.agent_id != first.agent_id
    assert f"run {first.run_id} taken" in err
    assert frozen.returncode == 0, err


@pytest.mark.e2e
def test_the_heartbeat_goes_on_while_a_flood_of_output_is_drained_and_the_summary_read(tmp_path):
    store_path = tmp_path / "sweeps.db"
    config = {
        "method": "grid",
        "program": str(PROGRAMS / "flood.py"),
        "command": PYTHON_COMMAND,
        "metric": {"name": "score", "goal": "maximize"},
        "parameters": {"megabytes": {"value": 8}},
    }
    sweep_id = create_sweep(store_path, config)
    with open(tmp_path / "agent.out", "w") as sink:  # read by nobody: a pipe would fill and block
        agent = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "agent", sweep_id, "--store", str(store_path)],
            cwd=tmp_path,
            env=agent_env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    oldest_beat = 0.0
    while agent.poll() is None:  # how stale the heartbeat ever got while the run was running
        for run in runs_of(store_path, sweep_id):
            if run.state == "running" and run.heartbeat_at:
                oldest_beat = max(oldest_beat, time.time() - run.heartbeat_at)
        time.sleep(0.25)
    (run,) = runs_of(store_path, sweep_id)
    assert agent.returncode == 0, (tmp_path / "agent.out").read_text()[-2000:]
    assert (run.state, run.claims, run.summary["score"]) == ("finished", 1, 3)
    assert oldest_beat < 5.0  # beats every 2 s; a 10 s timeout would never take it for dead


@pytest.mark.e2e
def test_an_unreadable_summary_is_a_visible_warning_and_the_objective_comes_from_history(tmp_path):
    store_path = tmp_path / "sweeps.db"
    config = {
        "method": "grid",
        "program": str(PROGRAMS / "flood.py"),
        "command": PYTHON_COMMAND,
        "metric": {"name": "score", "goal": "maximize"},
        "parameters": {"delete_log": {"value": True}, "sleep": {"value": 3}},
    }
    sweep_id = create_sweep(store_path, config)
    agent = start_agent(sweep_id, store_path, tmp_path)
    out, err = agent.communicate(timeout=120)
    (run,) = runs_of(store_path, sweep_id)
    assert run.summary == {"score": 3.0}  # from the recorded history, never an empty summary
    assert "warning: summary not read" in err
    assert "warning: summary not read" in run.output_tail


@pytest.mark.e2e
def test_programs_that_cannot_start_are_failed_runs_with_the_reason_and_the_agent_goes_on(tmp_path):
    not_executable = tmp_path / "train.py"
    not_executable.write_text("print('never runs')\n")
    store_path = tmp_path / "sweeps.db"
    config = {
        "method": "grid",
        "command": ["${program}", "${args}"],  # no interpreter: the file itself must be executable
        "program": str(not_executable),
        "parameters": {"x": {"values": [1, 2]}},
    }
    sweep_id = create_sweep(store_path, config)
    missing = create_sweep(store_path, {**config, "command": ["/nonexistent/python", "${program}", "${args}"]})
    for sweep in (sweep_id, missing):
        agent = start_agent(sweep, store_path, tmp_path)
        out, err = agent.communicate(timeout=60)
        assert "Traceback" not in err
        assert agent.returncode == 1  # every run failed: said plainly, and not exit 0
        runs = runs_of(store_path, sweep)
        assert [run.state for run in runs] == ["failed", "failed"]  # the agent went on to the second
        assert all("cannot launch the program" in run.output_tail for run in runs)
    assert "Permission denied" in runs_of(store_path, sweep_id)[0].output_tail
    assert "No such file" in runs_of(store_path, missing)[0].output_tail


def test_an_unsafe_heartbeat_timeout_is_refused_in_one_line(tmp_path):
    store_path = tmp_path / "sweeps.db"
    sweep_id = create_sweep(store_path, record_args_sweep(tmp_path / "ran.jsonl", [7]))
    refused = CliRunner().invoke(main, ["agent", sweep_id, "--store", str(store_path), "--heartbeat-timeout", "1"])
    assert_one_line(refused, "--heartbeat-timeout 1 is too short", "at least 10")
    assert runs_of(store_path, sweep_id) == []  # refused before any run started


@pytest.mark.e2e
@pytest.mark.skipif(not shutil.which("python3", path="/usr/bin"), reason="needs a system python3")
def test_the_trial_entry_point_says_in_one_line_when_its_python_lacks_the_packages(tmp_path):
    bare = "/usr/bin/python3"
    if (
        subprocess.run([bare, "-c", "import wandb"], capture_output=True, cwd=tmp_path).returncode == 0
    ):  # no run folder yet
        pytest.skip("the system python has wandb installed")
    (tmp_path / "wandb").mkdir()  # a W&B run folder, which a bare python imports as `wandb`
    result = subprocess.run(
        [bare, "-m", "agent.train", "--max_steps=1"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "cannot import wandb" in result.stderr and "pip install -e ." in result.stderr
    assert "has no attribute" not in result.stderr


@pytest.mark.e2e
def test_the_demo_says_plainly_when_every_run_failed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = {
        "method": "grid",
        "command": ["${env}", "${interpreter}", "-c", "raise SystemExit(4)", "${args}"],
        "metric": {"name": "score", "goal": "maximize"},
        "parameters": {"x": {"values": [1, 2]}},
    }
    lines: list[str] = []
    store = Store(tmp_path / "sweeps.db")
    _, ok = run_demo(store, config, "inline", echo=lines.append, env=agent_env(WANDB_DIR=str(tmp_path)))
    assert ok is False
    assert any(line.startswith("demo: FAILED: every run of sweep") for line in lines)
    assert not any("finished" in line for line in lines if line.startswith("demo:"))
    assert sys.executable  # the programs ran under our interpreter (PATH set by the agent)
