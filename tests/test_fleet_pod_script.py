"""The pod start script (agent/fleet/pod_start.sh), run here in a temporary directory.

What a RunPod pod provides is stood in for on PATH: `runpodctl` (records the self-removal),
`nvidia-smi` (lists two GPUs), `wandb` (W&B's server is the boundary; records argv, env and
signals) and `pip` (the package index). RunPod's GraphQL API, the script's fallback when
runpodctl fails, is a loopback stand-in. `lora-sweep` is this checkout's real CLI, so the real
supervisor starts the agents. The reclaim's timing is measured twice: with the stand-in `wandb`,
and with wandb's own CLI (tests/wandb_bin/wandb: W&B's server answered at its transport) running
a program that takes a set time to stop (tests/programs/slow_stop.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from helpers import REPO, JsonHandler, serving, wait_for

from agent.fleet.pods import PodPlan, Secrets, pod_specs

pytestmark = pytest.mark.e2e

FLEET_BIN = Path(__file__).parent / "fleet_bin"
SCRIPT = REPO / "agent" / "fleet" / "pod_start.sh"
SWEEP = "me/lora/8f3k2x1q"
TORCH_INDEX = "https://download.pytorch.org/whl/cu128"


def pod_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    lora_sweep = bin_dir / "lora-sweep"
    lora_sweep.write_text(f'#!/bin/sh\nexec {sys.executable} -m agent.cli "$@"\n')
    lora_sweep.chmod(0o755)
    return {
        "PATH": os.pathsep.join([str(bin_dir), str(FLEET_BIN), str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
        "PYTHONPATH": str(REPO),
        "HOME": str(tmp_path),
        "STANDIN_RECORD": str(tmp_path / "record.jsonl"),
        "RUNPOD_POD_ID": "pod-123",
        "RUNPOD_API_KEY": "pod-scoped-key",  # RunPod puts one, scoped to the pod, in every pod
        "RUNPOD_API_BASE_URL": "http://127.0.0.1:9",  # nothing listens: the API fallback fails
        "STANDIN_PIP_INDEX": json.dumps({"torch": ["2.8.0"], "lora-sweep": ["0.1.0"]}),
        "WANDB_API_KEY": "wandb-key",
        "LORA_SWEEP_ID": SWEEP,
        "LORA_SWEEP_PACKAGE": "lora-sweep==0.1.0",
        "LORA_SWEEP_TORCH_INDEX": TORCH_INDEX,
        "LORA_SWEEP_WORKDIR": str(tmp_path),
        "LORA_SWEEP_RUN_DIR": str(tmp_path),  # on a pod without a network volume: the container disk
        "LORA_SWEEP_STAGGER": "0",
        **extra,
    }


def events(tmp_path: Path, event: str | None = None) -> list[dict]:
    record = tmp_path / "record.jsonl"
    lines = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    return [line for line in lines if event in (None, line["event"])]


def assert_ended_once_at_the_end(tmp_path: Path, verb: str = "delete") -> None:
    calls = events(tmp_path, "runpodctl")
    assert [call["argv"] for call in calls] == [["pod", verb, "pod-123"]]
    assert events(tmp_path)[-1]["event"] == "runpodctl"  # nothing ran after the removal


def ended(tmp_path: Path) -> str:
    return (tmp_path / ".lora-sweep" / "pods" / "pod-123" / "ended").read_text().strip()


def left_running(tmp_path: Path) -> list[str]:
    """Command lines of live processes a pod_env(tmp_path) started (they carry its record path)."""
    record, found = str(tmp_path / "record.jsonl"), []
    for proc in psutil.process_iter(["environ", "status", "cmdline"]):
        if (proc.info["environ"] or {}).get("STANDIN_RECORD") == record and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(" ".join(proc.info["cmdline"] or []))
    return found


def run_script(env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=timeout)


def test_the_pods_start_command_installs_runs_an_agent_per_gpu_and_removes_the_pod(tmp_path):
    # The exact start command and environment `pods up` sends, unpacking the shipped script.
    secrets = Secrets("runpod-key", "wandb-key", None)
    [spec] = pod_specs(PodPlan(SWEEP, count=1, gpu_type="X", package="lora-sweep==0.1.0"), secrets)
    env = {**spec.env, **pod_env(tmp_path)}
    done = subprocess.run(shlex.split(spec.docker_args), env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stdout + done.stderr
    pips = [pip["argv"] for pip in events(tmp_path, "pip")]
    assert pips == [
        ["install", "--quiet", "torch", "--index-url", TORCH_INDEX],
        ["install", "--quiet", "lora-sweep==0.1.0"],
    ]
    starts = events(tmp_path, "start")
    assert sorted(start["env"]["CUDA_VISIBLE_DEVICES"] for start in starts) == ["0", "1"]
    assert {tuple(start["argv"]) for start in starts} == {("agent", "--forward-signals", SWEEP)}
    assert {start["env"]["WANDB_API_KEY"] for start in starts} == {"wandb-key"}
    assert_ended_once_at_the_end(tmp_path)
    assert ended(tmp_path) == "exit 0: the sweep has no more runs for this pod"
    logs = sorted((tmp_path / ".lora-sweep" / "logs" / "me-lora-8f3k2x1q").glob("gpu-*.log"))
    assert [log.name for log in logs] == ["gpu-0.log", "gpu-1.log"]
    for text in [done.stdout, done.stderr] + [log.read_text() for log in logs]:
        assert "wandb-key" not in text  # the key reached the agents' environment, and nothing else


@pytest.mark.parametrize(
    "setting, failed",
    [
        ({"LORA_SWEEP_PACKAGE": "lora-sweep==9.9"}, "lora-sweep==9.9"),  # no such version on the index
        ({"LORA_SWEEP_TORCH_INDEX": TORCH_INDEX + "-typo"}, "lora-sweep==0.1.0 (or torch)"),  # no such index
    ],
)
def test_a_failed_install_stops_the_pod_without_starting_agents_and_says_why(tmp_path, setting, failed):
    done = run_script(pod_env(tmp_path, **setting))

    assert done.returncode == 3
    assert f"ended: setup failed: pip could not install {failed}" in done.stdout.splitlines()[-2]
    assert events(tmp_path, "start") == []
    assert_ended_once_at_the_end(tmp_path, "stop")  # kept, stopped, so RunPod keeps its log
    assert ended(tmp_path).startswith("exit 3: setup failed")


def test_crashing_agents_remove_the_pod_once_the_supervisor_gives_up(tmp_path):
    env = pod_env(tmp_path, STANDIN_WANDB_EXITS="3", LORA_SWEEP_MAX_RESTARTS="1", LORA_SWEEP_RESTART_BACKOFF="0")
    done = run_script(env)

    assert done.returncode == 1
    assert len(events(tmp_path, "start")) == 4  # two GPUs, one restart each
    assert_ended_once_at_the_end(tmp_path, "stop")
    assert ended(tmp_path) == "exit 1: the agents failed"


def test_agents_killed_by_a_signal_are_a_failure_that_keeps_the_pod_for_its_log(tmp_path):
    # `lora-sweep agent` killed by the OOM killer exits 137 without the pod being told to stop.
    bin_dir = tmp_path / "bin"
    env = pod_env(tmp_path)
    (bin_dir / "lora-sweep").write_text("#!/bin/sh\nkill -KILL $$\n")
    done = run_script(env)

    assert done.returncode == 137, done.stdout + done.stderr
    assert_ended_once_at_the_end(tmp_path, "stop")
    assert ended(tmp_path) == "exit 137: the agents failed"


def test_the_watchdog_stops_the_agents_and_removes_the_pod(tmp_path):
    env = pod_env(tmp_path, STANDIN_WANDB_SLEEP="120", LORA_SWEEP_MAX_HOURS="0.0008")  # about 3 s
    started = time.monotonic()
    done = run_script(env)

    assert done.returncode == 143, done.stdout + done.stderr
    assert time.monotonic() - started < 60
    assert "deadline reached (--max-hours 0.0008 since the first boot)" in done.stdout
    # Every agent the supervisor had started got the stop, and none started after it. How many had
    # started by the deadline, 3 s after boot, is the machine's load (the second one is staggered).
    started = sorted(event["gpu"] for event in events(tmp_path, "start"))
    assert started and sorted(event["gpu"] for event in events(tmp_path, "signal")) == started
    assert_ended_once_at_the_end(tmp_path)


def test_sigterm_to_the_pod_reaches_every_agent_and_still_removes_the_pod(tmp_path):
    env = pod_env(tmp_path, STANDIN_WANDB_SLEEP="120")
    script = subprocess.Popen(
        ["bash", str(SCRIPT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for(lambda: len(events(tmp_path, "start")) == 2, 60, "both agents to start")
        script.send_signal(signal.SIGTERM)
        out, _ = script.communicate(timeout=60)
    finally:
        if script.poll() is None:
            script.kill()

    assert script.returncode == 143, out
    assert left_running(tmp_path) == []  # the cancelled kill timer's sleep included
    assert sorted((event["gpu"], event["signal"]) for event in events(tmp_path, "signal")) == [
        ("0", "SIGTERM"),
        ("1", "SIGTERM"),
    ]
    assert_ended_once_at_the_end(tmp_path)


class FakeRunPodApi(JsonHandler):
    """RunPod's GraphQL API as the pod script's fallback reaches it: records each request, answers
    `podTerminate` and `podStop` as RunPod does, and refuses a request without a bearer key."""

    requests: list[dict] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append({"auth": self.headers.get("Authorization"), "query": body["query"]})
        if not (self.headers.get("Authorization") or "").startswith("Bearer "):
            self.reply({"errors": [{"message": "Unauthorized"}]})
        elif "podTerminate" in body["query"]:
            self.reply({"data": {"podTerminate": None}})
        else:
            self.reply({"errors": [{"message": f"unexpected {body['query']}"}]})


@pytest.fixture
def runpod_api():
    FakeRunPodApi.requests = []
    with serving(FakeRunPodApi) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"


def test_removal_retries_runpodctl_then_falls_back_to_runpods_api_with_the_pods_key(tmp_path, runpod_api):
    env = pod_env(tmp_path, STANDIN_RUNPODCTL_FAILS="99", RUNPOD_API_BASE_URL=runpod_api, LORA_SWEEP_ID="")
    done = run_script(env)

    assert done.returncode == 2, done.stdout + done.stderr
    # settings missing is a failure: stop first (runpodctl, then the API, which refuses podStop here
    # three times), then removal, whose first try through the API succeeds
    calls = [call["argv"] for call in events(tmp_path, "runpodctl")]
    assert calls == [["pod", "stop", "pod-123"]] * 3 + [["pod", "delete", "pod-123"]]
    [removal] = [request for request in FakeRunPodApi.requests if "podTerminate" in request["query"]]
    assert removal == {"auth": "Bearer pod-scoped-key", "query": 'mutation { podTerminate(input: {podId: "pod-123"}) }'}


def test_a_restarted_pod_whose_removal_failed_removes_itself_at_once_without_reinstalling(tmp_path):
    first = run_script(pod_env(tmp_path, STANDIN_RUNPODCTL_FAILS="99"))  # the API is unreachable too
    assert first.returncode == 0 and "could not remove this pod" in first.stdout
    pips = len(events(tmp_path, "pip"))

    second = run_script(pod_env(tmp_path))  # RunPod restarts the container: same disk, same workdir

    assert second.returncode == 4, second.stdout + second.stderr
    assert len(events(tmp_path, "pip")) == pips and "restarted after it had ended (exit 0" in second.stdout
    assert events(tmp_path, "runpodctl")[-1]["argv"] == ["pod", "delete", "pod-123"]


def test_the_deadline_counts_from_the_first_boot(tmp_path):
    # A first boot, killed without a word, left its deadline 3 s from now; this boot asks for an hour.
    state = tmp_path / ".lora-sweep" / "pods" / "pod-123"
    state.mkdir(parents=True)
    (state / "boots").write_text("1\n")
    (state / "deadline").write_text(f"{int(time.time()) + 3}\n")
    started = time.monotonic()
    done = run_script(pod_env(tmp_path, STANDIN_WANDB_SLEEP="120", LORA_SWEEP_MAX_HOURS="1"))

    assert done.returncode == 143, done.stdout + done.stderr
    assert time.monotonic() - started < 60 and "boot 2 of pod pod-123" in done.stdout
    assert "deadline reached" in done.stdout
    assert_ended_once_at_the_end(tmp_path)


def test_the_workdir_and_run_dir_are_created_and_the_images_own_start_runs_in_the_background(tmp_path):
    image_start = tmp_path / "start.sh"
    image_start.write_text(f"#!/bin/sh\necho $$ > {tmp_path / 'sshd-started'}\nexec sleep 30\n")
    image_start.chmod(0o755)
    workdir, run_dir = tmp_path / "no" / "such" / "dir", tmp_path / "container" / "disk"
    env = pod_env(
        tmp_path,
        LORA_SWEEP_WORKDIR=str(workdir),
        LORA_SWEEP_RUN_DIR=str(run_dir),
        LORA_SWEEP_IMAGE_START=str(image_start),
    )
    done = run_script(env)

    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "sshd-started").exists()  # and it did not hold up the work: the script is done
    os.kill(int((tmp_path / "sshd-started").read_text()), signal.SIGKILL)  # the image's sshd: ended with the pod
    assert (workdir / ".lora-sweep" / "pods" / "pod-123" / "ended").exists()  # the pod's state: on the volume
    assert list((run_dir / ".lora-sweep" / "logs").iterdir())  # the agents ran in the run dir


def end_all_started(script: subprocess.Popen, tmp_path: Path) -> None:
    """Whatever the test started, ended and gone: the script, and every agent and run it recorded (a
    stand-in still stopping when the pod went, which RunPod's SIGKILL would end)."""
    if script.poll() is None:
        script.kill()
        script.wait()
    alive = []
    for event in events(tmp_path):
        if event["event"] in ("start", "run_start"):
            with contextlib.suppress(psutil.Error):  # gone already: nothing to end
                process = psutil.Process(event["pid"])
                process.kill()
                alive.append(process)
    _, still = psutil.wait_procs(alive, timeout=10)
    assert still == [], f"left running: {still}"


@pytest.mark.parametrize("stop_s", [1, 8])
def test_a_reclaim_removes_the_pod_within_runpods_5_s(tmp_path, stop_s):
    # The chain a reclaim's SIGTERM goes down: this script -> the supervisor -> an agent per GPU,
    # each taking stop_s to stop as a run saving its checkpoint would. One that takes longer than
    # the grace is cut off: the pod must be gone before RunPod's SIGKILL at 5 s.
    env = pod_env(tmp_path, STANDIN_WANDB_SLEEP="120", STANDIN_WANDB_STOP_S=str(stop_s))
    script = subprocess.Popen(
        ["bash", str(SCRIPT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for(lambda: len(events(tmp_path, "start")) == 2, 60, "both agents to start")
        sent = time.time()
        script.send_signal(signal.SIGTERM)
        out, _ = script.communicate(timeout=60)
        exits = events(tmp_path, "exit")  # read at once: a stand-in cut off would record its exit only later
    finally:
        end_all_started(script, tmp_path)

    [removal] = events(tmp_path, "runpodctl")
    took = removal["time"] - sent
    print(f"SIGTERM to removal: {took:.2f}s (agents take {stop_s}s)")
    assert script.returncode == 143, out
    assert took < 5, out
    assert len(exits) == (2 if stop_s < 3 else 0)  # in time: both exited; too slow: cut off at the grace


WANDB_BIN = Path(__file__).parent / "wandb_bin"
SLOW_STOP = Path(__file__).parent / "programs" / "slow_stop.py"


@pytest.mark.parametrize("stop_s", [1, 8])
def test_a_reclaim_through_the_real_wandb_agent_removes_the_pod_within_runpods_5_s(tmp_path, stop_s):
    # The whole chain a reclaim's SIGTERM goes down, each hop real: this script -> the supervisor ->
    # wandb's own `wandb agent --forward-signals` per GPU (W&B's server answered at its transport)
    # -> the run, a program that takes stop_s to exit after SIGTERM, as a run saving its checkpoint
    # would. Only runpodctl and nvidia-smi are stand-ins.
    env = pod_env(tmp_path, STANDIN_SWEEP_PROGRAM=str(SLOW_STOP), STANDIN_SWEEP_ARGS=json.dumps({"stop_s": stop_s}))
    env["PATH"] = os.pathsep.join([str(WANDB_BIN), env["PATH"]])
    script = subprocess.Popen(
        ["bash", str(SCRIPT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for(lambda: len(events(tmp_path, "run_start")) == 2, 120, "both runs to start")
        sent = time.time()
        script.send_signal(signal.SIGTERM)
        out, _ = script.communicate(timeout=60)
        exited = [event["time"] - sent for event in events(tmp_path, "run_exit")]  # before any cleanup
    finally:
        end_all_started(script, tmp_path)

    [removal] = events(tmp_path, "runpodctl")
    first_sigterms = {event["pid"]: event["time"] for event in reversed(events(tmp_path, "run_sigterm"))}
    reached = max(first_sigterms.values()) - sent
    agents_done = [event["time"] - sent for event in events(tmp_path, "wandb_agent_done")]
    took = removal["time"] - sent
    print(
        f"runs stop in {stop_s}s: SIGTERM reached both runs in {reached:.2f}s; runs exited at "
        f"{', '.join(f'{t:.2f}s' for t in exited) or 'never'}; wandb agents done at "
        f"{', '.join(f'{t:.2f}s' for t in agents_done) or 'never'}; removal called at {took:.2f}s"
    )
    assert script.returncode == 143, out
    assert took < 5, out
    assert len(exited) == (2 if stop_s < 3 else 0), out  # in time: both exited first; too slow: cut off
    assert "got SIGTERM (reclaimed or stopped)" in out and "ended: got SIGTERM" in out
