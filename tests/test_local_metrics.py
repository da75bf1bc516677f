"""What W&B's public CLI prints about a run, which is how metrics reach the controller.

These tests run a real offline run and read it back with `wandb leet inspect`; they pin the
output shape we rely on, and that the wandb-core command we start ourselves prints what W&B's
public `wandb leet inspect` prints (see docs/internals.md).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import PROGRAMS, agent_env, inspect_summary

from agent.local import metrics
from agent.local.launch import find_run_file, prepare_launch
from agent.records import Objective

pytestmark = pytest.mark.usefixtures("no_leaked_processes")


def run_scorer(tmp_path, **params):
    plan = prepare_launch(
        {"program": str(PROGRAMS / "scorer.py")},
        "swp",
        "run1",
        {"marker_dir": str(tmp_path), **params},
        base_env=agent_env(WANDB_DIR=str(tmp_path)),
    )
    result = subprocess.run(plan.argv, env=plan.env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    run_file = find_run_file(tmp_path / "wandb", "run1", earlier=frozenset())
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


def json_lines(text: str) -> list:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("flags, parse", [(("--summary", "--json"), json.loads), (("--json",), json_lines)])
def test_our_inspector_command_prints_what_wandb_leet_inspect_prints(tmp_path, flags, parse):
    """`inspect_command` repeats the argv `wandb leet` builds for wandb-core: if W&B changes that
    argv (a flag renamed, the folder argument dropped), the two outputs part ways here."""
    _, run_file = run_scorer(tmp_path, steps=3, slope=2.0)
    env = metrics.inspector_env(agent_env())
    ours = subprocess.run(
        metrics.inspect_command(run_file, *flags), env=env, capture_output=True, text=True, timeout=60
    )
    public = [sys.executable, "-m", "wandb", "leet", "inspect", *flags, str(run_file.parent)]
    theirs = subprocess.run(public, env=env, capture_output=True, text=True, timeout=60)
    assert ours.returncode == theirs.returncode == 0, ours.stderr + theirs.stderr
    assert parse(ours.stdout) == parse(theirs.stdout)
    assert parse(ours.stdout)  # and there was something to compare
