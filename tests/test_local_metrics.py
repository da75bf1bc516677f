"""What W&B's public CLI prints about a run, which is how metrics reach the controller.

These tests run a real offline run and read it back with `wandb leet inspect`; they pin the
output shape we rely on for the wandb versions setup.cfg allows.
"""

from __future__ import annotations

import subprocess

import pytest
import wandb
from helpers import PROGRAMS, agent_env, inspect_summary
from packaging.version import Version

from agent.local import metrics
from agent.local.launch import find_run_file, prepare_launch
from agent.records import Objective

pytestmark = pytest.mark.usefixtures("no_leaked_processes")


def test_installed_wandb_is_the_tested_one():
    # `wandb leet inspect --follow/--summary --json` is what we read; it was checked on 0.31.
    assert Version("0.31") <= Version(wandb.__version__) < Version("0.32")


def run_scorer(tmp_path, **params):
    plan = prepare_launch(
        {"program": str(PROGRAMS / "scorer.py")},
        "swp",
        "run1",
        {"marker_dir": str(tmp_path), **params},
        base_env=agent_env(WANDB_DIR=str(tmp_path)),
    )
    result = subprocess.run(plan.argv, env=plan.env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    run_file = find_run_file(tmp_path / "wandb", "run1", not_before=0)
    assert run_file is not None, result.stdout + result.stderr
    return result, run_file


def test_follow_streams_history_rows_and_the_exit_code(tmp_path):
    result, run_file = run_scorer(tmp_path, steps=3, slope=2.0, exit_code=0)
    follower = metrics.HistoryFollower(run_file, agent_env())
    rows = follower.close(timeout_s=60)
    assert [row["score"] for row in rows] == [2.0, 4.0, 6.0]
    assert [row["train/global_step"] for row in rows] == [10, 20, 30]
    assert follower.exit_code == 0


def test_summary_gives_state_summary_and_console(tmp_path):
    result, run_file = run_scorer(tmp_path, steps=3, slope=2.0, exit_code=3)
    assert result.returncode == 3
    printed = inspect_summary(run_file.parent)  # the document `read_summary` reads
    assert printed["state"] == "failed"
    assert printed["exit_code"] == 3
    assert any("scorer done" in entry["line"] for entry in printed["console"])
    read = metrics.read_summary(run_file, agent_env())
    assert read.error is None
    assert read.summary == printed["summary"]
    assert read.summary["score"] == {"max": 6}  # define_metric(summary="max")
    assert read.summary["train/global_step"] == 30


def test_flatten_summary_reads_the_objective_as_its_extremum():
    raw = {"score": {"max": 6, "last": 4}, "loss": {"min": 0.1}, "acc": {"last": 0.5, "max": 0.9}, "n": 3}
    assert metrics.flatten_summary(raw, Objective("score", "maximize")) == {"score": 6, "loss": 0.1, "acc": 0.5, "n": 3}
    assert metrics.flatten_summary({"loss": {"min": 0.1, "last": 0.3}}, Objective("loss", "minimize")) == {"loss": 0.1}


def test_close_after_a_kill_reads_the_rest_of_the_log_once(tmp_path):
    result, run_file = run_scorer(tmp_path, steps=4, slope=1.0)
    follower = metrics.HistoryFollower(run_file, agent_env())
    follower._process.kill()  # as if it were stopped before reaching the exit record
    follower._process.wait()
    rows = follower.close(timeout_s=0)
    assert [row["score"] for row in rows] == [1.0, 2.0, 3.0, 4.0]  # none lost, none twice
