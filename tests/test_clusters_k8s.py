"""`lora-sweep k8s job`, run as the real CLI, and its manifest read by Kubernetes' own schemas.

No cluster is involved: the manifest is deserialized into the official `kubernetes` client's `V1Job`
and must come back whole (a field the models do not know would be dropped), and
`kubernetes-validate --strict` checks it against the API's OpenAPI schema. Rules only the API
server enforces (podFailurePolicy needs restartPolicy Never, for one) are asserted here too.
The package index is the boundary, as for `pods up`: the stand-in `pip` of tests/fleet_bin.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml
from helpers import FLEET_BIN
from helpers import STANDIN_INDEX as INDEX
from helpers import run_with_standins as lora_sweep

from agent.clusters.k8s import RUN_SAVE_GRACE_S
from agent.trial.config import PreemptArgs

SWEEP = "me/lora/8f3k2x1q"
JOB = ("k8s", "job", SWEEP, "--package", "lora-sweep==0.1.0")


def manifest(*args: str) -> dict:
    done = lora_sweep(*JOB, *args)
    assert done.exit_code == 0, done.output
    assert "package: lora-sweep==0.1.0 is on the package index" in done.stderr
    return yaml.safe_load(done.stdout)  # the manifest alone: every note went to stderr


def test_an_indexed_job_of_gpu_pods_that_take_the_key_from_a_secret():
    job = manifest("--gpus-per-pod", "2", "--parallelism", "4", "--namespace", "ml")

    assert job["metadata"]["name"] == "lora-sweep-me-lora-8f3k2x1q" and job["metadata"]["namespace"] == "ml"
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 4, 4)
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"  # the API server refuses a podFailurePolicy without it
    assert pod["terminationGracePeriodSeconds"] == 30
    (container,) = pod["containers"]
    assert container["resources"] == {"limits": {"nvidia.com/gpu": "2"}}
    env = {each["name"]: each for each in container["env"]}
    assert env["WANDB_API_KEY"] == {
        "name": "WANDB_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "wandb", "key": "WANDB_API_KEY", "optional": False}},
    }
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert env["LORA_SWEEP_ID"]["value"] == SWEEP and env["LORA_SWEEP_PACKAGE"]["value"] == "lora-sweep==0.1.0"


def test_a_preempted_pod_is_replaced_without_counting_as_a_failure():
    job = manifest("--gpus-per-pod", "1", "--backoff-limit", "5")

    assert job["spec"]["backoffLimit"] == 5
    assert job["spec"]["podFailurePolicy"]["rules"] == [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        {"action": "Ignore", "onExitCodes": {"containerName": "agent", "operator": "In", "values": [143]}},
    ]


def test_the_container_installs_the_package_and_execs_the_supervisor_as_its_main_process(tmp_path):
    """The container's command run by bash, with the strict stand-in pip and a stand-in lora-sweep
    that prints its pid: it is bash's own, so the agent is the process Kubernetes signals."""
    (container,) = manifest("--gpus-per-pod", "1")["spec"]["template"]["spec"]["containers"]
    stand_in = tmp_path / "bin" / "lora-sweep"
    stand_in.parent.mkdir()
    stand_in.write_text('#!/bin/sh\necho "$$ $*"\n')
    stand_in.chmod(0o755)
    record = tmp_path / "record.jsonl"
    env = {**os.environ, **{each["name"]: each["value"] for each in container["env"] if "value" in each}}
    env |= {"PATH": f"{stand_in.parent}{os.pathsep}{FLEET_BIN}{os.pathsep}{os.environ['PATH']}"}
    env |= {"STANDIN_PIP_INDEX": json.dumps(INDEX), "STANDIN_RECORD": str(record)}

    shell = subprocess.Popen(container["command"], env=env, stdout=subprocess.PIPE, text=True)
    output, _ = shell.communicate(timeout=60)

    assert (shell.returncode, output) == (0, f"{shell.pid} agent {SWEEP} --gpus all\n")
    installs = [json.loads(line)["argv"][-1] for line in record.read_text().splitlines()]
    assert installs == ["https://download.pytorch.org/whl/cu128", "lora-sweep==0.1.0"]


def test_a_volume_claim_is_where_the_agents_run():
    pod = manifest("--gpus-per-pod", "1", "--volume-claim", "sweeps")["spec"]["template"]["spec"]

    assert pod["volumes"] == [{"name": "work", "persistentVolumeClaim": {"claimName": "sweeps"}}]
    assert pod["containers"][0]["volumeMounts"] == [{"name": "work", "mountPath": "/workspace"}]
    assert pod["containers"][0]["workingDir"] == "/workspace"


def test_the_grace_holds_the_runs_save_and_the_supervisors_wait():
    assert RUN_SAVE_GRACE_S == PreemptArgs().preempt_grace_s
    assert (
        manifest("--gpus-per-pod", "1", "--grace", "120")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        == 120
    )
    done = lora_sweep(*JOB, "--gpus-per-pod", "1", "--grace", "5")
    assert done.exit_code == 1 and done.stderr.startswith("Error: --grace 5: a pod needs at least 8 s after SIGTERM")


def test_a_local_sweep_is_refused_in_one_line():
    done = lora_sweep("k8s", "job", "3k9x2abc", "--gpus-per-pod", "1", "--parallelism", "2")

    assert done.exit_code == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "work a W&B sweep" in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("--gpus-per-pod", "1"),
        ("--gpus-per-pod", "4", "--parallelism", "3", "--completions", "6", "--namespace", "ml"),
        ("--gpus-per-pod", "8", "--volume-claim", "sweeps", "--secret", "keys", "--torch-index", ""),
    ],
)
def test_kubernetes_own_models_and_schema_take_the_manifest_whole(args):
    client = pytest.importorskip("kubernetes.client")
    validate = pytest.importorskip("kubernetes_validate")
    job = manifest(*args)

    api = client.ApiClient()
    model = api._ApiClient__deserialize(job, "V1Job")  # what the client makes of an API answer

    assert isinstance(model, client.V1Job)
    assert api.sanitize_for_serialization(model) == job  # nothing dropped, nothing renamed
    validate.validate(job, "1.33.0", strict=True)  # rejects a field the API does not define
    validate.validate(job, validate.latest_version(), strict=True)
