"""A real local sweep end to end: the tiny model trained offline by the local agent on every grid point,
then `lora-sweep report` on it, then the winner rerun from best.yaml through the trial program.

One sweep (two short runs: a learning rate that barely moves the base model and one that learns)
serves every test in this module.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import plotly_data, run_cli, run_program

from agent.local.store import Store

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_leaked_processes")]

SWEEP_YAML = """
program: agent/train.py
method: grid
metric: {name: eval/rougeL, goal: maximize}
parameters:
  model_name_or_path: {value: "builtin:tiny-llama"}
  dataset: {value: "DIALOGUES"}
  learning_rate: {values: [1.0e-4, 3.0e-3]}
  target_modules: {value: qkvo}
  max_steps: {value: 30}
  eval_steps: {value: 15}
  eval_subset_size: {value: 8}
  max_new_tokens: {value: 16}
  logging_steps: {value: 10}
command: ["${env}", "${interpreter}", -m, agent.train, "${args}"]
"""


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory, dialogues) -> tuple[Path, str, subprocess.CompletedProcess]:
    work = tmp_path_factory.mktemp("sweep")
    (work / "sweep.yaml").write_text(SWEEP_YAML.replace("DIALOGUES", str(dialogues)))
    created = run_cli("sweep", "sweep.yaml", "--local", cwd=work)
    assert created.returncode == 0, created.stderr
    sweep_id = re.search(r"Created local sweep (\w+)", created.stdout).group(1)
    ran = run_cli("agent", sweep_id, cwd=work, timeout=900)
    assert ran.returncode == 0, ran.stderr[-3000:]
    report = run_cli("report", sweep_id, "--out", "review", cwd=work, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    return work, sweep_id, report


def test_terminal_table_lists_every_run_with_its_scores(reviewed):
    work, sweep_id, report = reviewed
    assert f"Sweep {sweep_id}: 2 of 2 runs finished" in report.stdout
    table = report.stdout.split("\n\n")[1].splitlines()
    assert table[0].split()[:3] == ["run", "learning_rate", "eval/rougeL"]
    assert len(table) == 2 + 2 and all(line.rstrip().endswith("finished") for line in table[2:])
    assert "Verdicts:" in report.stdout and "learning_rate: " in report.stdout


def test_every_grid_point_ran_once_and_kept_its_best_rouge(reviewed):
    work, sweep_id, _ = reviewed
    record = Store(work / ".lora-sweep" / "sweeps.db").sweep_record(sweep_id)
    assert sorted(run.config["learning_rate"] for run in record.runs) == [1.0e-4, 3.0e-3]
    for run in record.runs:
        assert run.state == "finished", run
        evaluations = [row for row in run.history if "eval/rougeL" in row]
        assert [row["train/global_step"] for row in evaluations] == [0, 15, 30]  # the baseline, then every eval_steps
        # the summary holds the best evaluation, as a number, not the last one
        assert run.summary["eval/rougeL"] == max(row["eval/rougeL"] for row in evaluations)


def test_figures_hold_the_runs_values(reviewed):
    work, sweep_id, _ = reviewed
    record = Store(work / ".lora-sweep" / "sweeps.db").sweep_record(sweep_id)
    page = (work / "review" / "report.html").read_text()
    (parcoords,) = plotly_data(page, "figure-parallel_coordinates")
    objective_axis = parcoords["dimensions"][-1]
    assert objective_axis["label"] == "eval/rougeL"
    assert sorted(objective_axis["values"]) == pytest.approx(sorted(run.summary["eval/rougeL"] for run in record.runs))
    curves = {trace["name"].split()[0]: trace for trace in plotly_data(page, "figure-curves")}
    for run in record.runs:
        evaluations = [row for row in run.history if "eval/rougeL" in row]
        assert curves[run.run_id]["x"] == [row["train/global_step"] for row in evaluations]
        assert curves[run.run_id]["y"] == pytest.approx([row["eval/rougeL"] for row in evaluations])
        assert curves[run.run_id]["x"][0] == 0  # the untuned baseline opens every curve
    # The agent keeps the training-loss rows too (logging_steps 10 of 30 steps: steps 10, 20, 30).
    losses = {trace["name"].split()[0]: trace for trace in plotly_data(page, "figure-loss")}
    for run in record.runs:
        logged = [row for row in run.history if "train/loss" in row]
        assert [row["train/global_step"] for row in logged] == [10, 20, 30]
        assert losses[run.run_id]["x"] == [row["train/global_step"] for row in logged]
        assert losses[run.run_id]["y"] == pytest.approx([row["train/loss"] for row in logged])
    for name in ("parallel_coordinates.png", "curves.png", "importance.png", "loss.png", "summary.md"):
        assert (work / "review" / name).stat().st_size > 1000, name


def test_best_yaml_reruns_through_the_trial_program(reviewed):
    work, sweep_id, report = reviewed
    best = yaml.safe_load((work / "review" / "best.yaml").read_text())
    assert set(best) == {
        "model_name_or_path",
        "dataset",
        "learning_rate",
        "target_modules",
        "max_steps",
        "eval_steps",
        "eval_subset_size",
        "max_new_tokens",
        "logging_steps",
    }
    rerun = run_program(["-m", "agent.train", "--config", "review/best.yaml"], cwd=work, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    saved = sorted(work.glob("outputs/*/best_adapter/trial_config.yaml"), key=lambda p: p.stat().st_mtime)[-1]
    assert {key: yaml.safe_load(saved.read_text())[key] for key in best} == best


def test_unknown_local_sweep_is_one_line(reviewed):
    work, _, _ = reviewed
    result = run_cli("report", "nosuchid", cwd=work)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: no local sweep 'nosuchid'") and len(result.stderr.splitlines()) == 1
