"""The real trial program under the local agent: a tiny-model grid, end to end, offline on CPU."""

from __future__ import annotations

import subprocess
import sys

import pytest
from local_sweeps import agent_env, no_leaked_processes  # noqa: F401

from agent.local.store import Store

pytestmark = pytest.mark.usefixtures("no_leaked_processes")


def test_tiny_model_grid_runs_every_point_once_with_rouge_recorded(tmp_path):
    sweep_yaml = tmp_path / "tiny.yaml"
    sweep_yaml.write_text(
        "method: grid\n"
        "metric: {name: eval/rougeL, goal: maximize}\n"
        "parameters:\n"
        "  model_name_or_path: {value: 'builtin:tiny-llama'}\n"
        "  dataset: {value: 'builtin:synthetic'}\n"
        "  learning_rate: {values: [1.0e-4, 3.0e-3]}\n"
        "  max_steps: {value: 20}\n"
        "  eval_steps: {value: 10}\n"
        "  eval_subset_size: {value: 8}\n"
        "  max_new_tokens: {value: 8}\n"
        f"  output_dir: {{value: '{tmp_path / 'outputs'}'}}\n"
        "command: ['${env}', '${interpreter}', '-m', 'agent.train', '${args}']\n"
    )
    store_path = tmp_path / "sweeps.db"
    cli = [sys.executable, "-m", "agent.cli"]
    created = subprocess.run(
        [*cli, "sweep", str(sweep_yaml), "--local", "--store", str(store_path)],
        capture_output=True,
        text=True,
        env=agent_env(),
        cwd=tmp_path,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    sweep_id = created.stdout.split("Created local sweep ")[1].split()[0]

    agent = subprocess.run(
        [*cli, "agent", sweep_id, "--store", str(store_path)],
        capture_output=True,
        text=True,
        env=agent_env(),
        cwd=tmp_path,
        timeout=900,
    )
    assert agent.returncode == 0, agent.stderr[-3000:]

    record = Store(store_path).sweep_record(sweep_id)
    assert sorted(run.config["learning_rate"] for run in record.runs) == [1.0e-4, 3.0e-3]
    for run in record.runs:
        assert run.state == "finished", run
        assert isinstance(run.summary["eval/rougeL"], float)  # the best evaluation, as a number
        steps = [row["train/global_step"] for row in run.history]
        assert steps and steps == sorted(steps)  # evaluations at 10, 20 (and the final one)
        assert all("eval/rougeL" in row for row in run.history)
        assert run.summary["eval/rougeL"] == max(row["eval/rougeL"] for row in run.history)
