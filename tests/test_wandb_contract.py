"""Contract tests: W&B's own client code drives our sweep files and our trial program.

The one fake is W&B's server. wandb 0.31's API client hands every request (GraphQL operations and
the login check) to `ServiceApi.send_api_request`, which passes it to wandb-core, which sends it over
the network to W&B. The fake replaces that one method and answers in W&B's GraphQL response format.
Everything above it is real and unmodified: the `wandb sweep` and `wandb agent` click commands,
W&B's own config checks before upload, the Agent's heartbeat loop, its command macros, the parameter
file it writes, the `python -m agent.train` subprocess it launches, and the offline run that
subprocess writes. So a change in how W&B launches or configures runs breaks these tests, not a
user's first sweep.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from helpers import REPO, inspect_summary, wandb_run_dir

import sweeps
from agent.records import objective_of
from agent.sweep_config import load_sweep_config

SWEEPS = sorted((REPO / "sweeps").glob("*.yaml"))
SWEEP_ID = "abcd1234"
RUN_ID = "contract1"
# The first proposed run of each sweep, made small: the tiny model, a few synthetic rows, two steps.
TINY = {
    "model_name_or_path": "builtin:tiny-llama",
    "max_steps": 2,
    "eval_steps": 2,
    "eval_subset_size": 4,
    "eval_batch_size": 4,
    "max_new_tokens": 4,
    "per_device_train_batch_size": 4,
    "logging_steps": 1,
}


class FakeWandbServer:
    """W&B's server as `wandb sweep` and `wandb agent` see it: a few GraphQL operations, recorded.

    The agent's heartbeats get one `run` command, then nothing while the run is alive, then `exit`.
    """

    def __init__(self, sweep_config: dict | None = None, run_args: dict | None = None):
        self.sweep_config, self.run_args = sweep_config, run_args
        self.requests: list[tuple[str, dict]] = []

    def send_api_request(self, request, timeout=None):
        from wandb.proto.wandb_api_pb2 import ApiResponse, GraphQLResponse

        if request.WhichOneof("request") != "graphql_request":  # the login check: any key is accepted
            self.requests.append((request.WhichOneof("request"), {}))
            return ApiResponse()
        query = request.graphql_request.query
        operation = re.search(r"(?:query|mutation)\s+(\w+)", query).group(1)
        variables = json.loads(request.graphql_request.variables_json)
        self.requests.append((operation, variables))
        data = getattr(self, operation)(variables)
        return ApiResponse(graphql_response=GraphQLResponse(data_json=json.dumps(data)))

    def UpsertSweep(self, variables: dict) -> dict:
        project = {
            "id": "p1",
            "name": variables["projectName"],
            "entity": {"id": "e1", "name": variables["entityName"]},
        }
        return {"upsertSweep": {"sweep": {"name": SWEEP_ID, "project": project}, "configValidationWarnings": []}}

    def SweepWithRuns(self, variables: dict) -> dict:
        sweep = {"id": "s1", "name": SWEEP_ID, "config": yaml.safe_dump(self.sweep_config), "runs": {"edges": []}}
        return {"project": {"sweep": sweep}}

    def CreateAgent(self, variables: dict) -> dict:
        return {"createAgent": {"agent": {"id": "agent1"}}}

    def Heartbeat(self, variables: dict) -> dict:
        beats = sum(operation == "Heartbeat" for operation, _ in self.requests)
        if beats == 1:
            args = {name: {"value": value} for name, value in self.run_args.items()}
            commands = [{"type": "run", "run_id": RUN_ID, "program": self.sweep_config.get("program"), "args": args}]
        elif RUN_ID in json.loads(variables["runState"]):
            commands = []
        else:
            commands = [{"type": "exit"}]
        return {"agentHeartbeat": {"agent": {"id": "agent1"}, "commands": json.dumps(commands)}}

    def operations(self) -> list[str]:
        return [operation for operation, _ in self.requests]


@pytest.fixture
def fake_server(monkeypatch):
    """Install the fake at the network boundary, with credentials and defaults W&B would find."""
    from wandb.apis.public.service_api import ServiceApi

    server = FakeWandbServer()
    monkeypatch.setattr(
        ServiceApi, "send_api_request", lambda api, request, timeout=None: server.send_api_request(request)
    )
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)  # never sent anywhere: the fake accepts any key
    environ = dict(os.environ)
    yield server
    import wandb

    wandb.teardown()  # W&B's process-wide settings (the key, the sweep) must not reach later tests
    # `wandb agent` in this process sets its run's variables (WANDB_SWEEP_PARAM_PATH, WANDB_RUN_ID...)
    # in os.environ itself: a later in-process run would take them for its own.
    os.environ.clear()
    os.environ.update(environ)


def test_wandb_sweep_uploads_each_shipped_file_as_written(fake_server, monkeypatch):
    """`wandb sweep FILE`: W&B's own pre-upload checks pass and the uploaded config equals the file."""
    from wandb.cli.cli import cli

    monkeypatch.setenv("WANDB_ENTITY", "team")
    monkeypatch.setenv("WANDB_PROJECT", "lora")
    for path in SWEEPS:
        fake_server.requests.clear()
        result = CliRunner().invoke(cli, ["sweep", str(path)])
        assert result.exit_code == 0, (path.name, result.output, result.exception)
        [upload] = [variables for operation, variables in fake_server.requests if operation == "UpsertSweep"]
        assert yaml.safe_load(upload["config"]) == load_sweep_config(path), path.name
        assert (upload["entityName"], upload["projectName"]) == ("team", "lora")


def first_run_params(config: dict, dataset: Path) -> dict:
    """The engine's first proposal for the sweep, made tiny (what W&B's controller would send)."""
    proposal = sweeps.next_run(config, [])
    return {**{name: spec["value"] for name, spec in proposal.config.items()}, **TINY, "dataset": str(dataset)}


def write_few_dialogues(path: Path, rows: int = 24) -> Path:
    """The first synthetic rows as a local file: the final scoring of the whole validation split stays short."""
    from agent.trial.synthetic import synthetic_dialogues

    train = synthetic_dialogues()["train"]
    path.write_text("".join(json.dumps(train[i]) + "\n" for i in range(rows)))
    return path


@pytest.mark.e2e
@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_wandb_agent_launches_the_trial_program_of_each_shipped_sweep(path, fake_server, monkeypatch, tmp_path, capfd):
    """`wandb agent SWEEP_ID` runs the sweep's command block; the run records the swept values and the metric.

    The id names no entity or project: the agent finds the sweep through the project in
    wandb/settings, and the run must land in that project too.
    """
    from wandb import wandb_agent
    from wandb.cli.cli import cli

    config = load_sweep_config(path)
    fake_server.sweep_config = config
    fake_server.run_args = first_run_params(config, write_few_dialogues(tmp_path / "dialogues.jsonl"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wandb").mkdir()
    (tmp_path / "wandb" / "settings").write_text("[default]\nproject = team-project\n")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    # ${interpreter} is the literal `python` on PATH: make it this environment's python.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    for name in ("WANDB_SWEEP_ID", "WANDB_RUN_ID", "WANDB_SWEEP_PARAM_PATH"):  # the agent sets these itself
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    # Not the transport: the agent's pause between heartbeats, 5 s by default, shortened to keep the test fast.
    monkeypatch.setattr(wandb_agent.Agent, "POLL_INTERVAL", 0.2)

    result = CliRunner().invoke(cli, ["agent", SWEEP_ID])
    output = capfd.readouterr()
    assert result.exit_code == 0, (result.output, result.exception, output.err[-3000:])
    assert fake_server.operations()[-1] == "Heartbeat" and "CreateAgent" in fake_server.operations()

    # W&B wrote the parameter file the run read its values from
    param_file = tmp_path / "wandb" / f"sweep-{SWEEP_ID}" / f"config-{RUN_ID}.yaml"
    written = yaml.safe_load(param_file.read_text())
    assert {k: written[k] for k in fake_server.run_args} == {k: {"value": v} for k, v in fake_server.run_args.items()}

    summary = inspect_summary(wandb_run_dir(tmp_path))
    assert summary["state"] == "finished" and summary["exit_code"] == 0, output.err[-3000:]
    assert summary["run_id"] == RUN_ID
    assert summary["project"] == "team-project"
    assert {name: summary["config"][name] for name in fake_server.run_args} == fake_server.run_args
    metric = objective_of(config).name
    assert isinstance(summary["summary"][metric], (int, float)) and not isinstance(summary["summary"][metric], bool)
    assert "was locked" not in output.out + output.err
    assert "Traceback" not in output.err


SHOW_LAUNCH = """import json, os, sys
param_path = os.environ["WANDB_SWEEP_PARAM_PATH"]
json_file = sys.argv[-1]
seen = {"argv": sys.argv, "run_id": os.environ["WANDB_RUN_ID"], "param_path": param_path,
        "params": open(param_path).read(), "args_json_file": open(json_file).read()}
with open(os.environ["LAUNCH_LOG"], "a") as log:
    log.write(json.dumps(seen) + "\\n")
"""


@pytest.mark.e2e
def test_the_local_launch_gives_a_program_what_wandb_agent_gives_it(fake_server, monkeypatch, tmp_path):
    """`prepare_launch` repeats the macro splice inside `wandb agent` (`Agent._command_run`, not
    exposed): every macro, the parameter file and the run id must reach the program as they do there."""
    from wandb import wandb_agent
    from wandb.cli.cli import cli

    from agent.local.launch import prepare_launch

    program = tmp_path / "show_launch.py"
    program.write_text(SHOW_LAUNCH)
    macros = ["${args}", "${args_no_hyphens}", "${args_no_boolean_flags}", "${args_json}", "${args_json_file}"]
    config = {"program": str(program), "command": ["${env}", "${interpreter}", "${program}", "--fixed", *macros]}
    params = {"lr": 0.001, "use_x": False, "flag": True, "name": "a b", "n": 3}
    fake_server.sweep_config, fake_server.run_args = config, params
    log = tmp_path / "launches.jsonl"
    for name, value in {"LAUNCH_LOG": str(log), "WANDB_DIR": str(tmp_path), "WANDB_ENTITY": "team"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WANDB_PROJECT", "lora")
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(wandb_agent.Agent, "POLL_INTERVAL", 0.2)  # not the transport: the pause between beats

    # `wandb agent` sets WANDB_RUN_ID, WANDB_SWEEP_ID and WANDB_SWEEP_PARAM_PATH in os.environ: our
    # launch starts from the environment before it, so that it must set them itself.
    before = dict(os.environ)
    assert not {"WANDB_RUN_ID", "WANDB_SWEEP_PARAM_PATH"} & before.keys()
    result = CliRunner().invoke(cli, ["agent", SWEEP_ID])
    assert result.exit_code == 0, (result.output, result.exception)
    plan = prepare_launch(config, SWEEP_ID, RUN_ID, params, base_env=before)
    subprocess.run(plan.argv, env=plan.env, check=True, timeout=60, cwd=tmp_path)

    under_wandb, under_ours = [json.loads(line) for line in log.read_text().splitlines()]
    assert under_ours == under_wandb
    assert under_wandb["argv"][1:3] == ["--fixed", "--lr=0.001"]  # the macros did expand
