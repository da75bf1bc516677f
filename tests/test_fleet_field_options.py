"""Options written from a dataclass's fields: `pods up` from PodPlan, the supervisor's from SupervisorOptions."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Literal

import click
from click.testing import CliRunner

from agent.fleet.cli import agent_command, pods_up_command
from agent.fleet.field_options import field_options, from_params
from agent.fleet.pods import PodPlan
from agent.fleet.supervisor import SupervisorOptions


@dataclass(frozen=True)
class Plan:
    name: str
    """No help: no option (an argument, say)."""
    count: int = field(metadata={"help": "How many.", "min": 1})
    wait_s: float = field(default=2.5, metadata={"help": "Seconds.", "min": 0, "min_open": True, "envvar": "X_WAIT"})
    fast: bool = field(default=False, metadata={"help": "Go fast."})
    kind: Literal["a", "b"] = field(default="a", metadata={"help": "Which kind."})
    volume: str | None = field(default=None, metadata={"help": "A volume.", "metavar": "ID"})
    tags: tuple[str, ...] = field(default=(), metadata={"help": "Repeatable."})


@click.command()
@click.argument("name")
@field_options(Plan)
def plan_command(**params) -> None:
    click.echo(json.dumps(dataclasses.asdict(Plan(**from_params(Plan, params)))))


def invoke(*args: str, env: dict | None = None) -> click.testing.Result:
    return CliRunner().invoke(plan_command, list(args), env=env)


def test_each_field_with_help_is_an_option_of_its_type_and_default():
    done = invoke(
        "x", "--count", "3", "--wait=0.5", "--fast", "--kind", "b", "--volume", "v1", "--tags", "p", "--tags", "q"
    )
    assert done.exit_code == 0, done.output
    assert json.loads(done.output) == {
        "name": "x",
        "count": 3,
        "wait_s": 0.5,
        "fast": True,
        "kind": "b",
        "volume": "v1",
        "tags": ["p", "q"],
    }
    defaults = json.loads(invoke("x", "--count", "1").output)
    assert defaults == {**dataclasses.asdict(Plan("x", 1)), "tags": []}


def test_a_field_without_a_default_is_required_and_bounds_and_choices_are_checked():
    assert "Missing option '--count'" in invoke("x").output
    for args in (["--count", "0"], ["--count", "1", "--wait", "0"], ["--count", "1", "--kind", "c"]):
        assert invoke("x", *args).exit_code == 2, args


def test_an_envvar_sets_the_option_and_help_shows_it_the_default_and_the_unit_less_name():
    assert json.loads(invoke("x", "--count", "1", env={"X_WAIT": "7"}).output)["wait_s"] == 7.0
    help_text = invoke("--help").output
    assert "--wait FLOAT RANGE" in help_text and "env var: X_WAIT; default: 2.5; x>0" in help_text
    assert "--volume ID" in help_text and "--name" not in help_text


def test_pods_up_and_the_supervisor_take_their_defaults_from_their_plans():
    up = pods_up_command.make_context("up", ["me/lora/abc", "--count", "1", "--gpu-type", "X"])
    assert PodPlan(**from_params(PodPlan, up.params)) == PodPlan("me/lora/abc", count=1, gpu_type="X")
    agent = agent_command.make_context("agent", ["abc"])
    assert SupervisorOptions(**from_params(SupervisorOptions, agent.params)) == SupervisorOptions()
    assert "--container-disk" in [opt for param in pods_up_command.params for opt in param.opts]
