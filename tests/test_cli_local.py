"""The local-controller commands: help, errors as one clear line, runs listing, sweep control."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from helpers import assert_one_line, run_cli

from agent.cli import main
from agent.local.store import Store
from agent.records import SweepState

GRID = {
    "method": "grid",
    "metric": {"name": "score", "goal": "maximize"},
    "parameters": {"lr": {"values": [0.1, 0.2]}},
}

pytestmark = pytest.mark.usefixtures("no_leaked_processes")


@pytest.fixture
def store_with_runs(tmp_path):
    path = tmp_path / "sweeps.db"
    store = Store(path)
    with store.write() as tx:
        sweep_id = tx.create_sweep(GRID, None, None)
        good = tx.add_run(sweep_id, {"lr": 0.1}, "agent-1")
        tx.finish_run(good.claim, "finished", 0, {"score": 42.5}, None)
        tx.add_run(sweep_id, {"lr": 0.2}, "agent-1")
    store.close()
    return path, sweep_id


@pytest.mark.parametrize("command", ["sweep", "agent", "runs", "demo"])
def test_help(command):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output


def lora_sweep(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("command", [["agent"], ["runs"], ["sweep", "--stop"]])
def test_unknown_sweep_id_is_one_clear_line(store_with_runs, command):
    path, _ = store_with_runs
    assert_one_line(lora_sweep(*command, "nosuchid", "--store", str(path)), "no local sweep 'nosuchid'")


def test_missing_store_is_one_clear_line(tmp_path):
    assert_one_line(lora_sweep("runs", "abc", "--store", str(tmp_path / "absent.db")), "no local sweep store at")


def test_a_refusal_reaches_the_terminal_as_one_line_without_traceback(store_with_runs):
    # The one end-to-end case: what a user's terminal shows, interpreter start-up and exit code included.
    path, _ = store_with_runs
    result = run_cli("runs", "nosuchid", "--store", str(path))
    assert result.returncode == 1
    assert_one_line(result, "no local sweep 'nosuchid'")


def test_runs_as_table_and_json(store_with_runs):
    path, sweep_id = store_with_runs
    table = CliRunner().invoke(main, ["runs", sweep_id, "--store", str(path)])
    assert table.exit_code == 0
    header, first, second = table.output.strip().splitlines()
    assert header.split() == ["run", "state", "score", "runtime", "lr"]
    assert first.split()[1:3] == ["finished", "42.5"]
    assert second.split()[1:3] == ["running", "-"]

    as_json = CliRunner().invoke(main, ["runs", sweep_id, "--store", str(path), "--format", "json"])
    data = json.loads(as_json.output)
    assert data["sweep_id"] == sweep_id and data["metric"] == "score"
    assert [(r["state"], r["objective"], r["config"]) for r in data["runs"]] == [
        ("finished", 42.5, {"lr": 0.1}),
        ("running", None, {"lr": 0.2}),
    ]


def test_store_location_from_environment(store_with_runs):
    path, sweep_id = store_with_runs
    result = CliRunner().invoke(main, ["runs", sweep_id], env={"LORA_SWEEP_STORE": str(path)})
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("flag", "state"),
    [
        ("--pause", SweepState.PAUSED),
        ("--resume", SweepState.RUNNING),
        ("--stop", SweepState.FINISHED),
        ("--cancel", SweepState.CANCELED),
    ],
)
def test_sweep_control(store_with_runs, flag, state):
    path, sweep_id = store_with_runs
    result = CliRunner().invoke(main, ["sweep", flag, sweep_id, "--store", str(path)])
    assert result.exit_code == 0, result.output
    assert Store(path).sweep(sweep_id).state == state


def test_sweep_without_local_points_to_wandb(tmp_path):
    assert_one_line(lora_sweep("sweep", "whatever.yaml"), "wandb sweep")


def test_local_sweep_from_yaml_prints_id_and_agent_command(tmp_path):
    yaml_path = tmp_path / "grid.yaml"
    yaml_path.write_text(
        "program: tests/programs/record_args.py\nmethod: grid\nparameters:\n  point:\n    values: [1, 2, 3]\n"
    )
    store = tmp_path / "s.db"
    result = lora_sweep("sweep", str(yaml_path), "--local", "--store", str(store))
    assert result.exit_code == 0, result.output
    sweep_id = result.stdout.split("Created local sweep ")[1].split()[0]
    assert "(3 runs)" in result.stdout
    assert f"lora-sweep agent {sweep_id} --store {store}" in result.stdout


def test_bad_sweep_files_are_refused_one_line_per_problem_before_anything_is_stored(tmp_path):
    store = tmp_path / "s.db"
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: grid\nparameters:\n  lr: {values: [1, 2]\n")  # unclosed brace
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("method: gird\nprogram: train.py\nparameters:\n  lr: {values: [1, 2]}\n")  # schema violation
    for path, problem in ((bad, "is not valid YAML"), (wrong, "'gird' is not one of")):
        result = lora_sweep("sweep", str(path), "--local", "--store", str(store))
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
        assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr
        assert result.stderr.startswith(f"error: {path}: ") and problem in result.stderr
    assert not store.exists()
