"""The `lora-sweep` command line: a root that loads each part's commands, help for every command,
user errors as one line, and validate's verdicts."""

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from agent.cli import COMMANDS, main
from agent.local.cli import agent_flags, agent_options


def all_commands() -> list[list[str]]:
    """Every command path under the root, groups' subcommands included."""
    found = []
    ctx = click.Context(main)
    for name in main.list_commands(ctx):
        command = main.get_command(ctx, name)
        found.append([name])
        if isinstance(command, click.Group):
            found += [[name, sub] for sub in command.list_commands(ctx)]
    return found


@pytest.mark.parametrize("command", [[]] + all_commands())
def test_the_help_of_every_command_shows_its_usage_and_every_option(command):
    result = CliRunner().invoke(main, [*command, "--help"], prog_name="lora-sweep")

    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: lora-sweep {' '.join(command)}".rstrip() + " ")
    ctx = click.Context(main)
    target = main
    for name in command:
        target = target.get_command(ctx, name)
    for param in target.params:
        if isinstance(param, click.Option):
            assert param.opts[-1] in result.output, param.name


def test_the_root_lists_every_command_and_imports_none_of_their_parts():
    listing = CliRunner().invoke(main, ["--help"]).output
    assert all(f"  {name} " in listing for name in COMMANDS)
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, agent.cli; print(sorted(m for m in sys.modules if m.startswith('agent.')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert eval(loaded) == ["agent.cli", "agent.errors"]


def test_a_user_error_from_any_part_is_one_line_and_exit_1(tmp_path):
    store = tmp_path / "notes.db"
    store.write_text("not a database\n" * 100)

    result = CliRunner().invoke(main, ["runs", "abc", "--store", str(store)])

    assert result.exit_code == 1
    assert len(result.output.splitlines()) == 1 and result.output.startswith("Error: ")
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    "given, passed",
    [
        (
            [
                "--count",
                "3",
                "--max-consecutive-failed-runs",
                "2",
                "--heartbeat-timeout",
                "20",
                "--kill-grace",
                "5",
                "--gpu-hourly-usd",
                "0.5",
            ],
            [
                "--count=3",
                "--max-consecutive-failed-runs=2",
                "--heartbeat-timeout=20.0",
                "--kill-grace=5.0",
                "--gpu-hourly-usd=0.5",
            ],
        ),
        ([], ["--heartbeat-timeout=60.0", "--kill-grace=30.0"]),
    ],
)
def test_the_agent_options_a_command_got_reach_its_child_agents(given, passed):
    @click.command()
    @agent_options
    @click.option("--gpus")
    @click.pass_context
    def command(ctx, **_):
        click.echo(" ".join(agent_flags(ctx)))

    result = CliRunner().invoke(command, [*given, "--gpus", "0,1"])

    assert result.exit_code == 0, result.output
    assert result.output.split() == passed


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
