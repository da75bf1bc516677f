"""`lora-sweep pods`, run as the real CLI with the real `runpod` SDK.

RunPod's API is the boundary: a fake GraphQL server on loopback (127.0.0.1) stands in for
api.runpod.io, and the SDK is pointed at it through its own RUNPOD_API_BASE_URL setting, so the
SDK's code builds and sends every request over HTTP. The tests read the exact queries it received.
The CLI runs in-process (click's runner, with the keys as its environment): the SDK takes
seconds to import, once here instead of once per command. The package index and git hosts are
boundaries too: the strict stand-ins `pip` and `git` in tests/fleet_bin come first on PATH. W&B's
server, asked whether a sweep ends, is the fake transport of tests/wandb_backend.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers import JsonHandler, serving
from wandb_backend import FakeServer, serve

from agent.cli import main
from agent.env_vars import IMAGE_START_ENV, MUTATION_ENV, TABLE
from agent.fleet.package_check import default_package
from agent.fleet.pods import (
    DEADLINE_GRACE_S,
    RECLAIM_GRACE_S,
    RUNPOD_KILL_AFTER_S,
    START_COMMAND,
    PodPlan,
    Secrets,
    pod_specs,
)
from agent.trial.config import PreemptArgs

SWEEP = "me/lora/8f3k2x1q"
FLEET_BIN = Path(__file__).parent / "fleet_bin"
INDEX = {"torch": ["2.8.0"], "lora-sweep": ["0.0.9", "0.1.0"]}
KEYS = {
    "RUNPOD_API_KEY": "rpa_SECRET_runpod_1",
    "WANDB_API_KEY": "0123456789abcdefSECRETwandb0123456789abcdef",
    "HF_TOKEN": "hf_SECRETtoken",
}
GPU = {
    "id": "NVIDIA GeForce RTX 4090",
    "displayName": "RTX 4090",
    "memoryInGb": 24,
    "lowestPrice": {"minimumBidPrice": 0.2, "uninterruptablePrice": 0.44},
}
LISTED_PODS = [
    {"id": "pod-a1", "name": "lora-sweep-me-lora-8f3k2x1q-1", "desiredStatus": "RUNNING", "gpuCount": 2,
     "costPerHr": 0.88, "uptimeSeconds": 5400, "env": ["WANDB_API_KEY=0123456789abcdefSECRETwandb0123456789abcdef"]},
    {"id": "pod-b1", "name": "lora-sweep-me-lora-other-1", "desiredStatus": "RUNNING", "gpuCount": 1,
     "costPerHr": 0.44, "uptimeSeconds": 60, "env": []},
    {"id": "pod-x", "name": "my-notebook", "desiredStatus": "RUNNING", "gpuCount": 1, "costPerHr": 0.3,
     "uptimeSeconds": 60, "env": []},
]  # fmt: skip


def listed_pods() -> list[dict]:
    return LISTED_PODS  # looked up at each request, so a test can swap the list


class FakeRunPod(JsonHandler):
    """Answers the GraphQL operations the SDK sends, by operation name, and records each request.
    With `refuse_interruptible` (a message) it answers `podRentInterruptable` with that GraphQL error."""

    requests: list[dict] = []
    refuse_interruptible = ""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        query = body["query"]
        self.requests.append({"path": self.path, "auth": self.headers["Authorization"], "query": query})
        if self.refuse_interruptible and "podRentInterruptable" in query:
            error = {"message": self.refuse_interruptible, "locations": [{"line": 1, "column": 12}]}
            self.reply({"errors": [error]})
            return
        self.reply({"data": self.answer(query)})

    def answer(self, query: str) -> dict:
        if "gpuTypes" in query:
            return {"gpuTypes": [GPU] if f'id: "{GPU["id"]}"' in query else []}
        if "podFindAndDeployOnDemand" in query or "podRentInterruptable" in query:
            operation = "podFindAndDeployOnDemand" if "podFindAndDeployOnDemand" in query else "podRentInterruptable"
            return {operation: {"id": f"pod-new{len(self.requests)}", "imageName": "x", "machineId": "m"}}
        if "networkVolumes" in query:
            return {"myself": {"id": "u", "networkVolumes": [{"id": "vol-7", "dataCenterId": "EU-RO-1"}]}}
        if "pods" in query:
            return {"myself": {"pods": listed_pods()}}
        if "podTerminate" in query:
            return {"podTerminate": None}
        raise AssertionError(f"unexpected query {query}")


@pytest.fixture
def runpod_server():
    FakeRunPod.requests = []
    FakeRunPod.refuse_interruptible = ""
    with serving(FakeRunPod) as server:
        yield server


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    """Each test runs where `pods up` keeps its list of created pods (.lora-sweep/pods.jsonl) fresh."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def like_a_process_of_its_own():
    """The CLI runs in this process, and W&B's client may start its service for it, which puts
    WANDB_SERVICE in the environment: every program a later test starts would then join that
    service (two launches of one run id then collide). Each command ends as its process would."""
    before = dict(os.environ)
    yield
    if "wandb" in sys.modules:
        sys.modules["wandb"].teardown()
    os.environ.clear()
    os.environ.update(before)


@pytest.fixture
def wandb_sweep(monkeypatch):
    """W&B's server holding the sweep, a grid (it ends by itself); tests change its config."""
    server = FakeServer("me", "lora", "8f3k2x1q", {"method": "grid", "parameters": {"lora_r": {"values": [4]}}}, [])
    serve(monkeypatch, server)
    return server


def lora_sweep(server, *args: str, keys: dict | None = None, **env_extra: str) -> Result:
    """The real CLI in this process; its environment holds exactly the keys given (KEYS by default)."""
    keys = KEYS if keys is None else keys
    env = {name: keys.get(name) for name in KEYS}  # None unsets a key for the call
    env["RUNPOD_API_BASE_URL"] = f"http://127.0.0.1:{server.server_address[1]}"
    env["PATH"] = f"{FLEET_BIN}{os.pathsep}{os.environ['PATH']}"
    env["STANDIN_PIP_INDEX"] = json.dumps(INDEX)
    env.update(env_extra)
    done = CliRunner().invoke(main, list(args), env=env, prog_name="lora-sweep")
    for secret in KEYS.values():
        assert secret not in done.output, "a secret was printed"
    return done


def printed_specs(stdout: str) -> list[dict]:
    """The pod specs a dry run printed: JSON objects between the check lines and the cost line."""
    specs = stdout[stdout.index("{\n") :].split("\ncost:")[0]
    return json.loads("[" + re.sub(r"\}\n\{", "},{", specs) + "]")


def sent(operation: str) -> list[str]:
    return [request["query"] for request in FakeRunPod.requests if operation in request["query"]]


def input_field(query: str, name: str) -> str:
    return re.search(rf"\b{name}: (\"[^\"]*\"|[^,\s}}]+)", query).group(1)


def test_dry_run_prints_the_pod_specs_with_secrets_masked_and_the_cost_and_creates_nothing(runpod_server):
    done = lora_sweep(
        runpod_server, "pods", "up", SWEEP, "--count", "2", "--gpu-type", GPU["id"], "--gpus-per-pod", "2",
        "--max-hours", "6", "--package", "lora-sweep==0.1.0", "--dry-run",
    )  # fmt: skip

    assert done.exit_code == 0, done.stderr
    specs = printed_specs(done.stdout)
    assert [spec["name"] for spec in specs] == ["lora-sweep-me-lora-8f3k2x1q-1", "lora-sweep-me-lora-8f3k2x1q-2"]
    spec = specs[0]
    assert (spec["gpu_type_id"], spec["gpu_count"], spec["interruptible"]) == (GPU["id"], 2, False)
    assert spec["docker_args"] == START_COMMAND
    assert spec["env"]["WANDB_API_KEY"] == "***" and spec["env"]["HF_TOKEN"] == "***"
    assert spec["env"]["LORA_SWEEP_ID"] == SWEEP and spec["env"]["LORA_SWEEP_PACKAGE"] == "lora-sweep==0.1.0"
    # staggered deadlines: the last pod runs the full --max-hours, the one before 5% less
    assert [spec["env"]["LORA_SWEEP_MAX_HOURS"] for spec in specs] == ["5.7", "6"]
    assert (
        "cost: $0.440/h per RTX 4090 (on demand), $0.880/h per pod, $1.760/h for 2 pod(s); "
        "at most $10.30, when every pod runs to its deadline" in done.stdout
    )
    assert "package: lora-sweep==0.1.0 is on the package index" in done.stdout
    assert sent("podFindAndDeployOnDemand") == [] and sent("podRentInterruptable") == []
    assert {request["auth"] for request in FakeRunPod.requests} == {f"Bearer {KEYS['RUNPOD_API_KEY']}"}
    assert {request["path"] for request in FakeRunPod.requests} == {"/graphql"}


def test_up_creates_on_demand_pods_through_the_sdk_with_the_keys_in_their_environment(runpod_server, wandb_sweep):
    done = lora_sweep(
        runpod_server, "pods", "up", SWEEP, "--count", "2", "--gpu-type", GPU["id"], "--gpus-per-pod", "2",
        "--network-volume", "vol-7", "--image", "my/image:1", "--package", "lora-sweep==0.1.0",
        "--cloud-type", "SECURE",
    )  # fmt: skip

    assert done.exit_code == 0, done.stderr
    mutations = sent("podFindAndDeployOnDemand")
    assert len(mutations) == 2
    for index, mutation in enumerate(mutations, start=1):
        assert input_field(mutation, "name") == f'"lora-sweep-me-lora-8f3k2x1q-{index}"'
        assert input_field(mutation, "imageName") == '"my/image:1"'
        assert input_field(mutation, "gpuTypeId") == f'"{GPU["id"]}"'
        assert input_field(mutation, "gpuCount") == "2"
        assert input_field(mutation, "networkVolumeId") == '"vol-7"'
        assert input_field(mutation, "volumeInGb") == "0"  # the network volume replaces the volume disk
        assert input_field(mutation, "dataCenterId") == '"EU-RO-1"'  # where the volume lives
        assert input_field(mutation, "cloudType") == "SECURE"
        assert f'dockerArgs: "{START_COMMAND}"' in mutation
        for key in ("WANDB_API_KEY", "HF_TOKEN"):
            assert f'{{ key: "{key}", value: "{KEYS[key]}" }}' in mutation  # the pod gets the key itself
        assert KEYS["RUNPOD_API_KEY"] not in mutation  # the pod never needs the RunPod key
    assert "created pod pod-new" in done.stdout and sent("podRentInterruptable") == []
    assert "bound: sweep me/lora/8f3k2x1q ends by itself (grid)" in done.stdout


def test_agents_per_gpu_and_the_price_of_a_gpu_hour_reach_every_pod(runpod_server, wandb_sweep):
    args = ("pods", "up", SWEEP, "--count", "2", "--gpu-type", GPU["id"], "--package", "lora-sweep==0.1.0")

    dry = lora_sweep(runpod_server, *args, "--agents-per-gpu", "3", "--dry-run")
    real = lora_sweep(runpod_server, *args, "--agents-per-gpu", "3", "--interruptible")

    assert dry.exit_code == 0 and real.exit_code == 0, dry.stderr + real.stderr
    for spec in printed_specs(dry.stdout):  # on demand: RunPod's price of a whole GPU; each run pays 1/3
        assert (spec["env"]["LORA_SWEEP_AGENTS_PER_GPU"], spec["env"]["LORA_SWEEP_GPU_HOURLY_USD"]) == ("3", "0.44")
    for mutation in sent("podRentInterruptable"):  # interruptible: the bid is the price
        assert '{key: "LORA_SWEEP_AGENTS_PER_GPU", value: "3"}' in mutation
        assert '{key: "LORA_SWEEP_GPU_HOURLY_USD", value: "0.2"}' in mutation
        assert input_field(mutation, "volumeInGb") == "1"  # no network volume: a volume disk keeps the pod's state
    assert len(sent("podRentInterruptable")) == 2


def test_up_interruptible_sends_runpods_documented_spot_mutation_at_the_lowest_bid(runpod_server):
    done = lora_sweep(
        runpod_server, "pods", "up", SWEEP, "--count", "1", "--gpu-type", GPU["id"], "--interruptible",
        "--max-hours", "2", "--package", "lora-sweep==0.1.0",
    )  # fmt: skip

    assert done.exit_code == 0, done.stderr
    [mutation] = sent("podRentInterruptable")
    assert input_field(mutation, "bidPerGpu") == "0.2"
    assert input_field(mutation, "name") == '"lora-sweep-me-lora-8f3k2x1q-1"'
    assert input_field(mutation, "cloudType") == "ALL"
    assert json.dumps(START_COMMAND) in mutation
    assert f'{{key: "WANDB_API_KEY", value: "{KEYS["WANDB_API_KEY"]}"}}' in mutation
    assert sent("podFindAndDeployOnDemand") == []
    assert "$0.200/h per RTX 4090 (interruptible, lowest bid)" in done.stdout


@pytest.mark.parametrize("missing", ["RUNPOD_API_KEY", "WANDB_API_KEY"])
def test_a_missing_key_is_one_line_naming_it_before_any_request(runpod_server, missing):
    keys = {key: value for key, value in KEYS.items() if key != missing}
    done = lora_sweep(runpod_server, "pods", "up", SWEEP, "--count", "1", "--gpu-type", GPU["id"], keys=keys)

    assert done.exit_code == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith(f"Error: {missing} is not set")
    assert FakeRunPod.requests == []


def test_an_unknown_gpu_type_is_one_line_and_creates_nothing(runpod_server):
    done = lora_sweep(
        runpod_server, "pods", "up", SWEEP, "--count", "1", "--gpu-type", "NVIDIA Nope", "--max-hours", "1",
        "--package", "lora-sweep==0.1.0",
    )  # fmt: skip

    assert done.exit_code == 1
    assert done.stderr.startswith("Error: RunPod: No GPU found") and len(done.stderr.strip().splitlines()) == 1
    assert sent("podFindAndDeployOnDemand") == []


def test_pods_need_a_wandb_sweep(runpod_server):
    done = lora_sweep(runpod_server, "pods", "up", "3k9x2abc", "--count", "1", "--gpu-type", GPU["id"])

    assert done.exit_code == 1 and "entity/project/id" in done.stderr and FakeRunPod.requests == []


def test_status_shows_only_this_sweeps_pods_and_never_their_environment(runpod_server):
    done = lora_sweep(runpod_server, "pods", "status", SWEEP, keys={"RUNPOD_API_KEY": KEYS["RUNPOD_API_KEY"]})

    assert done.exit_code == 0, done.stderr
    assert "pod-a1" in done.stdout and "pod-b1" not in done.stdout and "pod-x" not in done.stdout
    assert "1.5h" in done.stdout and "1 pod(s), $0.880/h" in done.stdout

    everything = lora_sweep(runpod_server, "pods", "status", keys={"RUNPOD_API_KEY": KEYS["RUNPOD_API_KEY"]})
    assert "pod-a1" in everything.stdout and "pod-b1" in everything.stdout and "my-notebook" not in everything.stdout


def test_down_removes_only_our_pods(runpod_server):
    key = {"RUNPOD_API_KEY": KEYS["RUNPOD_API_KEY"]}
    done = lora_sweep(runpod_server, "pods", "down", SWEEP, keys=key)

    assert done.exit_code == 0, done.stderr
    assert [input_field(query, "podId") for query in sent("podTerminate")] == ['"pod-a1"']

    FakeRunPod.requests.clear()
    done = lora_sweep(runpod_server, "pods", "down", "--all", keys=key)
    assert sorted(input_field(query, "podId") for query in sent("podTerminate")) == ['"pod-a1"', '"pod-b1"']

    done = lora_sweep(runpod_server, "pods", "down", keys=key)
    assert done.exit_code == 1 and "--all" in done.stderr


UP = ("pods", "up", SWEEP, "--count", "2", "--gpu-type", GPU["id"])


def test_a_dry_run_works_offline_prints_the_specs_and_says_why_there_is_no_price(tmp_path):
    # Nothing listens on port 9: RunPod, the index (pip) and W&B are all out of reach.
    offline = type("Offline", (), {"server_address": ("127.0.0.1", 9)})()
    done = lora_sweep(offline, *UP, "--package", "lora-sweep==0.1.0", "--dry-run", STANDIN_PIP_OFFLINE="1")

    assert done.exit_code == 0, done.output
    assert [spec["name"] for spec in printed_specs(done.stdout)] == [
        "lora-sweep-me-lora-8f3k2x1q-1",
        "lora-sweep-me-lora-8f3k2x1q-2",
    ]
    assert "package: cannot reach the package index to check lora-sweep==0.1.0" in done.stdout
    assert re.search(r"^cost: price unavailable \(RunPod: .*Connection refused.*\)$", done.stdout, re.MULTILINE)
    assert "bound: cannot read sweep me/lora/8f3k2x1q from W&B" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "dry run: no pod created (2 would be)"


def test_a_real_up_that_cannot_check_the_package_rents_nothing(runpod_server):
    done = lora_sweep(runpod_server, *UP, "--package", "lora-sweep==0.1.0", "--max-hours", "1", STANDIN_PIP_OFFLINE="1")

    assert done.exit_code == 1 and len(done.stderr.strip().splitlines()) == 1
    assert "cannot reach the package index" in done.stderr and FakeRunPod.requests == []


@pytest.mark.parametrize("dry_run", [(), ("--dry-run",)])
def test_a_version_not_on_the_index_is_one_line_saying_what_to_pass_and_rents_nothing(runpod_server, dry_run):
    done = lora_sweep(runpod_server, *UP, "--package", "lora-sweep==0.2.0", "--max-hours", "1", *dry_run)

    assert done.exit_code == 1
    assert done.stderr.strip() == (
        "Error: lora-sweep==0.2.0 is not on the package index (it has 0.1.0, 0.0.9): pass --package "
        "'lora-sweep @ git+https://github.com/ORG/lora-sweep@TAG' (docs/gpu.md, Package)"
    )
    assert FakeRunPod.requests == []


@pytest.mark.parametrize("ref, ok", [("v0.1.0", True), ("v9", False)])
def test_a_git_ref_must_resolve_before_any_pod_is_rented(runpod_server, ref, ok):
    url = "https://github.com/me/lora-sweep"
    remotes = {url: {"refs/heads/main": "a" * 40, "refs/tags/v0.1.0": "b" * 40}}
    done = lora_sweep(
        runpod_server, *UP, "--package", f"lora-sweep @ git+{url}@{ref}", "--max-hours", "1", "--dry-run",
        STANDIN_GIT_REMOTES=json.dumps(remotes),
    )  # fmt: skip

    assert done.exit_code == (0 if ok else 1), done.output
    if ok:
        assert f"package: {ref} resolves in {url}" in done.stdout
    else:
        assert done.stderr.startswith(f"Error: {ref} is no branch or tag of {url}: push it, or pass --package")


@pytest.mark.parametrize(
    "commits, offline, exit_code, says",
    [
        (["c" * 40], "", 0, f"package: {'c' * 40} is a commit of"),
        ([], "", 1, f"Error: {'c' * 40} is no commit of"),
        ([], "1", 0, "package: cannot reach https://github.com/me/lora-sweep"),
    ],
)
def test_a_pushed_commit_that_is_no_tip_is_checked_by_fetching_it(runpod_server, commits, offline, exit_code, says):
    url = "https://github.com/me/lora-sweep"
    done = lora_sweep(
        runpod_server, *UP, "--package", f"lora-sweep @ git+{url}@{'c' * 40}", "--max-hours", "1", "--dry-run",
        STANDIN_GIT_REMOTES=json.dumps({url: {"refs/heads/main": "a" * 40}}),
        STANDIN_GIT_COMMITS=json.dumps({url: commits}), STANDIN_GIT_OFFLINE=offline,
    )  # fmt: skip

    assert done.exit_code == exit_code, done.output
    assert says in (done.stdout if exit_code == 0 else done.stderr)
    assert "push it" not in done.output or not commits and not offline


def git_clone(tmp_path: Path, origin: str, commit: bool = True) -> tuple[Path, dict]:
    """A git clone with `origin` (and one commit), and the environment git runs in."""
    clone = tmp_path / "lora-sweep"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1"}
    author = {**env, "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@b", "GIT_COMMITTER_NAME": "a",
              "GIT_COMMITTER_EMAIL": "a@b"}  # fmt: skip
    subprocess.run(["git", "init", "-q", str(clone)], check=True, env=env)
    subprocess.run(["git", "-C", str(clone), "remote", "add", "origin", origin], check=True, env=env)
    if commit:
        subprocess.run(["git", "-C", str(clone), "commit", "-q", "--allow-empty", "-m", "x"], check=True, env=author)
    return clone, env


def test_the_default_package_is_this_clones_commit_on_its_origin(tmp_path):
    url, warnings = "https://github.com/me/lora-sweep", []
    empty, env = git_clone(tmp_path / "empty", url, commit=False)
    assert default_package(empty, "0.1.0", env, warnings.append) == "lora-sweep==0.1.0"  # no commit: the version
    clone, env = git_clone(tmp_path, url)
    head = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True, env=env)

    assert default_package(clone, "0.1.0", env, warnings.append) == f"lora-sweep @ git+{url}@{head.stdout.strip()}"
    assert default_package(tmp_path, "0.1.0", env, warnings.append) == "lora-sweep==0.1.0"  # not a clone
    assert warnings == []


def test_the_default_package_never_carries_the_origins_credentials_and_warns_of_uncommitted_changes(tmp_path):
    clone, env = git_clone(tmp_path, "https://me:ghp_SECRET@github.com/me/lora-sweep")
    (clone / "edited.py").write_text("x = 1\n")
    warnings = []

    package = default_package(clone, "0.1.0", env, warnings.append)

    assert package.startswith("lora-sweep @ git+https://github.com/me/lora-sweep@") and "SECRET" not in package
    assert len(warnings) == 1 and "uncommitted changes" in warnings[0] and "SECRET" not in warnings[0]


def test_a_sweep_that_never_ends_needs_max_hours_on_purpose(runpod_server, wandb_sweep):
    wandb_sweep.sweep_config = {"method": "random", "parameters": {"lora_r": {"values": [4, 8]}}}
    done = lora_sweep(runpod_server, *UP, "--package", "lora-sweep==0.1.0", "--dry-run")

    assert done.exit_code == 1 and len(done.stderr.strip().splitlines()) == 1
    assert "never runs out of runs" in done.stderr and "pass --max-hours on purpose" in done.stderr

    wandb_sweep.sweep_config["run_cap"] = 20
    assert lora_sweep(runpod_server, *UP, "--package", "lora-sweep==0.1.0", "--dry-run").exit_code == 0


def test_an_interruptible_pod_runpod_refuses_is_one_clear_line(runpod_server):
    FakeRunPod.refuse_interruptible = 'Cannot query field "podRentInterruptable" on type "Mutation".'
    done = lora_sweep(
        runpod_server, *UP, "--interruptible", "--package", "lora-sweep==0.1.0", "--max-hours", "1"
    )  # fmt: skip

    assert done.exit_code == 1 and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("Error: RunPod refused an interruptible pod (RunPod: Cannot query field")
    assert done.stderr.rstrip().endswith("run without --interruptible")


def test_another_refusal_of_an_interruptible_pod_is_not_blamed_on_interruptible_pods(runpod_server):
    FakeRunPod.refuse_interruptible = "There are no longer any instances available with the requested specifications."
    done = lora_sweep(runpod_server, *UP, "--interruptible", "--package", "lora-sweep==0.1.0", "--max-hours", "1")

    assert done.exit_code == 1 and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("Error: RunPod: There are no longer any instances") and "without" not in done.stderr


def test_the_bid_is_never_rounded_below_runpods_minimum(runpod_server, monkeypatch):
    monkeypatch.setitem(GPU["lowestPrice"], "minimumBidPrice", 0.1234564)
    done = lora_sweep(runpod_server, *UP, "--interruptible", "--package", "lora-sweep==0.1.0", "--max-hours", "1")

    assert done.exit_code == 0, done.output
    assert {input_field(mutation, "bidPerGpu") for mutation in sent("podRentInterruptable")} == {"0.1234564"}


def test_status_says_why_a_stopped_pod_stopped(runpod_server, monkeypatch):
    stopped = {**LISTED_PODS[0], "desiredStatus": "EXITED", "costPerHr": 0, "lastStatusChange": "Exited by user"}
    monkeypatch.setitem(globals(), "LISTED_PODS", [stopped, *LISTED_PODS[1:]])
    done = lora_sweep(runpod_server, "pods", "status", SWEEP, keys={"RUNPOD_API_KEY": KEYS["RUNPOD_API_KEY"]})

    assert done.exit_code == 0, done.output
    assert re.search(r"pod-a1 .* EXITED .* Exited by user$", done.stdout, re.MULTILINE)
    assert "stopped after a failure: pod-a1; its last log line says why" in done.stdout


def test_keys_from_runpod_secrets_reach_the_pods_as_references_and_the_local_key_is_not_needed(runpod_server):
    no_wandb_key = {"RUNPOD_API_KEY": KEYS["RUNPOD_API_KEY"], "HF_TOKEN": KEYS["HF_TOKEN"]}
    up = (*UP, "--package", "lora-sweep==0.1.0", "--max-hours", "1")
    secret_env = ("--secret-env", "WANDB_API_KEY=RUNPOD_SECRET_wandb_key", "--secret-env", "HF_TOKEN=RUNPOD_SECRET_hf")
    dry = lora_sweep(runpod_server, *up, *secret_env, "--dry-run", keys=no_wandb_key)

    assert dry.exit_code == 0, dry.output
    env = printed_specs(dry.stdout)[0]["env"]
    assert env["WANDB_API_KEY"] == "{{ RUNPOD_SECRET_wandb_key }}"  # a reference, not a secret: shown
    assert env["HF_TOKEN"] == "{{ RUNPOD_SECRET_hf }}"  # the local HF_TOKEN is not sent

    done = lora_sweep(runpod_server, *up, *secret_env, keys=no_wandb_key)
    assert done.exit_code == 0, done.output
    mutations = sent("podFindAndDeployOnDemand")
    assert len(mutations) == 2
    for mutation in mutations:  # as the SDK wrote it: RunPod's own syntax, braces and spaces kept
        assert '{ key: "WANDB_API_KEY", value: "{{ RUNPOD_SECRET_wandb_key }}" }' in mutation
        assert '{ key: "HF_TOKEN", value: "{{ RUNPOD_SECRET_hf }}" }' in mutation
        assert KEYS["HF_TOKEN"] not in mutation

    FakeRunPod.requests.clear()
    spot = lora_sweep(runpod_server, *up, *secret_env, "--interruptible", keys=no_wandb_key)
    assert spot.exit_code == 0, spot.output
    for mutation in sent("podRentInterruptable"):
        assert '{key: "WANDB_API_KEY", value: "{{ RUNPOD_SECRET_wandb_key }}"}' in mutation


@pytest.mark.parametrize(
    "pair, why",
    [
        ("WANDB_API_KEY=wandb_key", "give NAME=RUNPOD_SECRET_name"),
        ("WANDB_API_KEY={{ RUNPOD_SECRET_x }}", "give NAME=RUNPOD_SECRET_name"),
        ("RUNPOD_API_KEY=RUNPOD_SECRET_x", "set by lora-sweep or RunPod itself"),
        ("LORA_SWEEP_ID=RUNPOD_SECRET_x", "set by lora-sweep or RunPod itself"),
    ],
)
def test_a_secret_env_that_is_not_a_runpod_secret_reference_is_one_line(runpod_server, pair, why):
    done = lora_sweep(runpod_server, *UP, "--secret-env", pair, "--dry-run")

    assert done.exit_code == 1 and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("Error: --secret-env") and why in done.stderr
    assert FakeRunPod.requests == []


def test_status_says_what_became_of_pods_runpod_no_longer_lists_and_down_forgets_them(runpod_server):
    key = {"RUNPOD_API_KEY": KEYS["RUNPOD_API_KEY"]}
    one_pod = ("pods", "up", SWEEP, "--count", "1", "--gpu-type", GPU["id"], "--package", "lora-sweep==0.1.0")
    assert lora_sweep(runpod_server, *one_pod, "--max-hours", "1", "--network-volume", "vol-7").exit_code == 0
    assert lora_sweep(runpod_server, *one_pod, "--max-hours", "1").exit_code == 0

    done = lora_sweep(runpod_server, "pods", "status", SWEEP, keys=key)  # RunPod lists neither, only pod-a1

    assert done.exit_code == 0, done.output
    gone = [line for line in done.stdout.splitlines() if line.startswith("gone: ")]
    assert len(gone) == 2, done.stdout
    assert "removed itself: its work was over" in gone[0]
    assert "/workspace/.lora-sweep/pods/" in gone[0] and "on network volume vol-7" in gone[0]
    assert "it had no network volume, so nothing of it is kept but its runs in W&B" in gone[1]
    assert re.search(r"^pod-a1 .* RUNNING", done.stdout, re.MULTILINE)

    assert lora_sweep(runpod_server, "pods", "down", SWEEP, keys=key).exit_code == 0
    after = lora_sweep(runpod_server, "pods", "status", SWEEP, keys=key)
    assert "gone: " not in after.stdout


def test_a_malformed_line_in_the_list_of_created_pods_is_skipped_with_a_warning(runpod_server, tmp_path):
    key = {"RUNPOD_API_KEY": KEYS["RUNPOD_API_KEY"]}
    one_pod = ("pods", "up", SWEEP, "--count", "1", "--gpu-type", GPU["id"], "--package", "lora-sweep==0.1.0")
    assert lora_sweep(runpod_server, *one_pod, "--max-hours", "1").exit_code == 0
    ledger = tmp_path / ".lora-sweep" / "pods.jsonl"
    ledger.write_text(ledger.read_text() + '{"id": "pod-z", "cut short\n[1, 2]\n')

    for command in ("status", "down"):
        done = lora_sweep(runpod_server, "pods", command, SWEEP, keys=key)

        assert done.exit_code == 0, done.output
        assert f"warning: {Path('.lora-sweep', 'pods.jsonl')} line 2 is not a pod record: skipped" in done.stdout
        assert "line 3 is not a pod record" in done.stdout


@pytest.mark.e2e
def test_status_reads_why_a_removed_pod_ended_from_its_network_volume(runpod_server, tmp_path):
    # The whole path: `pods up` with a network volume, the pod's own start script ending on it (the
    # volume is a folder here), RunPod removing the pod, then `pods status` reading the script's
    # `ended` file through RunPod's S3-compatible API (a strict stand-in on loopback).
    from runpod_s3 import ACCESS_KEY, SECRET_KEY, FakeVolumeS3
    from test_fleet_pod_script import SCRIPT, pod_env

    key = {"RUNPOD_API_KEY": KEYS["RUNPOD_API_KEY"]}
    one_pod = ("pods", "up", SWEEP, "--count", "1", "--gpu-type", GPU["id"], "--package", "lora-sweep==0.1.0")
    assert lora_sweep(runpod_server, *one_pod, "--max-hours", "1", "--network-volume", "vol-7").exit_code == 0
    [pod_id] = [json.loads(line)["id"] for line in Path(".lora-sweep", "pods.jsonl").read_text().splitlines()]
    volume = tmp_path / "vol-7"  # what the pod mounts at /workspace
    pod = tmp_path / "pod"
    pod.mkdir()
    env = pod_env(pod, RUNPOD_POD_ID=pod_id, LORA_SWEEP_WORKDIR=str(volume), LORA_SWEEP_RUN_DIR=str(volume))
    subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, timeout=120, check=True)

    FakeVolumeS3.volumes = {"vol-7": ("EU-RO-1", volume)}  # FakeRunPod puts vol-7 in EU-RO-1
    FakeVolumeS3.requests = []
    with serving(FakeVolumeS3) as s3:
        endpoint = f"http://127.0.0.1:{s3.server_address[1]}"
        status = {"RUNPOD_S3_ENDPOINT_URL": endpoint, "RUNPOD_S3_ACCESS_KEY": ACCESS_KEY}
        read = lora_sweep(runpod_server, "pods", "status", SWEEP, keys=key, **status, RUNPOD_S3_SECRET_KEY=SECRET_KEY)
        refused = lora_sweep(runpod_server, "pods", "status", SWEEP, keys=key, **status, RUNPOD_S3_SECRET_KEY="rps_x")
        without = lora_sweep(runpod_server, "pods", "status", SWEEP, keys=key)

    [gone] = [line for line in read.stdout.splitlines() if line.startswith("gone: ")]
    assert read.exit_code == 0, read.output
    assert f"gone: {pod_id} " in gone
    assert "removed itself: its start script ended with 'exit 0: the sweep has no more runs for this pod'" in gone
    assert f"/workspace/.lora-sweep/pods/{pod_id}/ (pod.log, ended) on network volume vol-7" in gone
    assert FakeVolumeS3.requests[0] == f"/vol-7/.lora-sweep/pods/{pod_id}/ended"  # the bucket is the volume
    [gone] = [line for line in refused.stdout.splitlines() if line.startswith("gone: ")]
    assert refused.exit_code == 0 and "could not be read: RunPod's S3 API:" in gone and "SignatureDoesNotMatch" in gone
    assert "rps_x" not in refused.output
    [gone] = [line for line in without.stdout.splitlines() if line.startswith("gone: ")]
    assert "`pods status` reads given an S3 API key in RUNPOD_S3_ACCESS_KEY and RUNPOD_S3_SECRET_KEY" in gone


def script_fallbacks(name: str) -> set[str]:
    """The defaults the pod script falls back on for variable `name`, wherever it reads it."""
    script = files("agent.fleet").joinpath("pod_start.sh").read_text()
    return set(re.findall(r"\$\{" + name + r"(?::-([^}]*))?\}", script))


def test_a_reclaim_leaves_the_trials_save_its_grace_inside_runpods_kill_and_the_pod_script_agrees():
    # The chain on SIGTERM: the trial's save must end within the pod's grace (it counts from the
    # supervisor's signal, as the pod's does), and the pod's grace must end before RunPod's SIGKILL,
    # leaving the removal the rest (docs/preemption.md, On a reclaimed RunPod pod).
    trial_grace = next(field.default for field in dataclasses.fields(PreemptArgs) if field.name == "preempt_grace_s")
    assert trial_grace < RECLAIM_GRACE_S < RUNPOD_KILL_AFTER_S
    [spec] = pod_specs(PodPlan(SWEEP, count=1, gpu_type="X", package="lora-sweep==0.1.0"), Secrets("key", "key"))
    sent = {name: float(spec.env[name]) for name in ("LORA_SWEEP_RECLAIM_GRACE_S", "LORA_SWEEP_STOP_GRACE_S")}
    assert sent == {"LORA_SWEEP_RECLAIM_GRACE_S": RECLAIM_GRACE_S, "LORA_SWEEP_STOP_GRACE_S": DEADLINE_GRACE_S}
    for name, value in sent.items():
        assert {float(fallback) for fallback in script_fallbacks(name)} == {value}, name


def test_every_variable_the_pod_script_names_is_in_the_table_and_pods_up_sets_those_it_must():
    script = files("agent.fleet").joinpath("pod_start.sh").read_text()
    named = set(re.findall(r"LORA_SWEEP_[A-Z0-9_]*[A-Z0-9]", script))
    assert named - set(TABLE) == set()
    [spec] = pod_specs(PodPlan(SWEEP, count=1, gpu_type="X", package="lora-sweep==0.1.0"), Secrets("key", "key"))
    # Not sent: the image's start script (its default is where RunPod's images keep it) and the
    # script's own call to RunPod's API.
    not_sent = {IMAGE_START_ENV, MUTATION_ENV}
    assert named - set(spec.env) == not_sent
