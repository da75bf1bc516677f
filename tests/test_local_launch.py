"""Runs are launched exactly as `wandb agent` launches them: macros, files and environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import agent_env

from agent.local.launch import prepare_launch
from agent.local.metrics import inspect_command

PARAMS = {"lr": 0.001, "use_x": False, "name": "a b"}

pytestmark = pytest.mark.usefixtures("no_leaked_processes")


def test_every_wandb_agent_macro_expands(tmp_path):
    config = {
        "program": "train.py",
        "command": [
            "${env}",
            "${interpreter}",
            "${program}",
            "${args}",
            "${args_no_hyphens}",
            "${args_no_boolean_flags}",
            "${args_json}",
            "${args_json_file}",
            "--fixed",
        ],
    }
    plan = prepare_launch(config, "swp1", "run1", PARAMS, base_env={"WANDB_DIR": str(tmp_path)})
    json_file = tmp_path / "wandb" / "sweep-swp1" / "config-run1.json"
    assert plan.argv == [
        "/usr/bin/env",
        "python",
        "train.py",
        "--lr=0.001",
        "--use_x=False",
        "--name=a b",
        "lr=0.001",
        "use_x=False",
        "name=a b",
        "--lr=0.001",
        "--name=a b",
        json.dumps(PARAMS),
        str(json_file),
        "--fixed",
    ]
    assert json.loads(json_file.read_text()) == PARAMS


def test_a_sweep_without_a_command_runs_its_program_with_the_parameters_as_flags(tmp_path):
    program = tmp_path / "show_args.py"
    program.write_text("import json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    env = {**agent_env(WANDB_DIR=str(tmp_path)), "PATH": "/usr/bin:/bin"}  # `python` must come from the plan
    plan = prepare_launch({"program": str(program)}, "s", "r", PARAMS, base_env=env)
    result = subprocess.run(plan.argv, env=plan.env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["--lr=0.001", "--use_x=False", "--name=a b"]


def test_environment_points_wandb_init_at_the_parameters(tmp_path):
    plan = prepare_launch(
        {"program": "p.py"},
        "swp1",
        "run1",
        PARAMS,
        project="proj",
        base_env={"WANDB_DIR": str(tmp_path), "WANDB_SERVICE": "x", "WANDB_SWEEP_ID": "stale", "PATH": "/usr/bin"},
    )
    param_file = tmp_path / "wandb" / "sweep-swp1" / "config-run1.yaml"
    # No sweep id: `wandb sync` would send it as the run's sweep and a W&B server refuses an
    # id it does not know. The runs are grouped by the local sweep instead.
    assert "WANDB_SWEEP_ID" not in plan.env
    assert plan.env["WANDB_RUN_GROUP"] == "swp1"
    assert plan.env["WANDB_RUN_ID"] == "run1"
    assert plan.env["WANDB_SWEEP_PARAM_PATH"] == str(param_file)
    assert plan.env["WANDB_MODE"] == "offline"
    assert plan.env["WANDB_PROJECT"] == "proj"
    assert "WANDB_SERVICE" not in plan.env
    assert plan.env["WANDB__TRANSACTION_LOG_FLUSH_INTERVAL"] == "1"  # live history for hyperband
    # `${interpreter}` stays the literal `python`, found first in the agent's own interpreter folder.
    assert plan.env["PATH"] == f"{Path(sys.executable).parent}{os.pathsep}/usr/bin"
    # W&B's config-file format: a version line, then {name: {value: v}}.
    data = yaml.safe_load(param_file.read_text())
    assert data == {"wandb_version": 1, **{k: {"value": v} for k, v in PARAMS.items()}}


def test_user_choices_win_over_our_defaults(tmp_path):
    env = {"WANDB_DIR": str(tmp_path), "WANDB_MODE": "online", "WANDB_RUN_GROUP": "mine"}
    plan = prepare_launch({"program": "p.py"}, "s", "r", {}, base_env=env)
    assert plan.env["WANDB_MODE"] == "online"
    assert plan.env["WANDB_RUN_GROUP"] == "mine"


def test_wandb_init_in_the_child_sees_and_locks_the_parameters_without_a_sweep_id(tmp_path):
    # The real offline client: WANDB_SWEEP_PARAM_PATH alone delivers the values and locks them.
    program = tmp_path / "show.py"
    program.write_text(
        "import json, wandb\n"
        "run = wandb.init()\n"
        "run.config.update({'lr': 99.0, 'extra': 1}, allow_val_change=False)\n"
        "print(json.dumps({'config': dict(run.config), 'id': run.id, 'group': run.group,"
        " 'sweep_id': run.sweep_id}))\n"
        "wandb.finish()\n"
    )
    env = {key: value for key, value in agent_env(WANDB_DIR=str(tmp_path)).items() if key != "PATH"}
    env["PATH"] = "/usr/bin:/bin"  # no venv on PATH, as after `make install` without activating
    plan = prepare_launch({"program": str(program)}, "swp1", "run1", {"lr": 0.001, "r": 8}, base_env=env)
    result = subprocess.run(plan.argv, env=plan.env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout.strip().splitlines()[-1])
    # The swept values win over the program's own update; nothing names a sweep W&B would look up.
    assert shown == {"config": {"lr": 0.001, "r": 8, "extra": 1}, "id": "run1", "group": "swp1", "sweep_id": None}
    # And the run's log, which `wandb sync` uploads, holds the swept values as its config.
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*-run1")
    logged = subprocess.run(
        inspect_command(run_dir, "--summary", "--json"), capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(logged.stdout)["config"] == {"lr": 0.001, "r": 8, "extra": 1}
