"""The `lora-sweep` command line: help for every command, and validate's verdicts."""

import pytest
from click.testing import CliRunner

from agent.cli import main


@pytest.mark.parametrize("command", [[]] + [[name] for name in main.commands])
def test_help(command):
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_validate_prints_the_grid_size():
    result = CliRunner().invoke(main, ["validate", "sweeps/lora_rank.yaml"])
    assert result.exit_code == 0
    assert "a grid of 4 runs" in result.output


def test_validate_reports_every_problem_one_line_each(tmp_path):
    sweep = tmp_path / "bad.yaml"
    sweep.write_text(
        "method: grid\nmetric: {name: eval/rougeL, goal: maximize}\n"
        "parameters:\n  lora_rank: {values: [4, 8]}\n  lora_r: {values: [0, 8]}\n"
        "  lora_alpha: {distribution: int_uniform, min: 8, max: 9}\n  target_modules: {values: [qv, 3]}\n"
        "command: ['${env}', python, -m, agent.train, '${args}']\n"
    )
    result = CliRunner().invoke(main, ["validate", str(sweep)])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"error: {sweep}: unknown parameter 'lora_rank': did you mean lora_r?",
        f"error: {sweep}: lora_r=0: must be > 0",
        f"error: {sweep}: target_modules=3 is not a string; for example target_modules=qv",
    ]


def test_validate_other_programs_get_the_schema_check_only(tmp_path):
    sweep = tmp_path / "other.yaml"
    sweep.write_text("program: train.py\nmethod: random\nparameters:\n  anything: {values: [1, 2]}\n")
    assert CliRunner().invoke(main, ["validate", str(sweep)]).exit_code == 0


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "does not exist"),
        ("method: [unclosed", "is not valid YAML"),
        ("- just\n- a list\n", "must be a mapping"),
        ("method: gridd\nparameters: {a: {values: [1]}}\n", "'gridd' is not one of"),
    ],
)
def test_validate_bad_files(tmp_path, content, message):
    sweep = tmp_path / "sweep.yaml"
    if content is not None:
        sweep.write_text(content)
    result = CliRunner().invoke(main, ["validate", str(sweep)])
    assert result.exit_code == 1 and message in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
