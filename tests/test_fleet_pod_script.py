"""The pod start script (agent/fleet/pod_start.sh), run here in a temporary directory.

What a RunPod pod provides is stood in for on PATH: `runpodctl` (records the self-removal),
`nvidia-smi` (lists two GPUs), `wandb` (W&B's server is the boundary; records argv, env and
signals) and `pip` (the package index). `lora-sweep` is this checkout's real CLI, so the real
supervisor starts the agents.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO

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
        "WANDB_API_KEY": "wandb-key",
        "LORA_SWEEP_ID": SWEEP,
        "LORA_SWEEP_PACKAGE": "lora-sweep==0.1.0",
        "LORA_SWEEP_TORCH_INDEX": TORCH_INDEX,
        "LORA_SWEEP_WORKDIR": str(tmp_path),
        "LORA_SWEEP_STAGGER": "0",
        **extra,
    }


def events(tmp_path: Path, event: str | None = None) -> list[dict]:
    record = tmp_path / "record.jsonl"
    lines = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    return [line for line in lines if event in (None, line["event"])]


def assert_removed_once_at_the_end(tmp_path: Path) -> None:
    removals = events(tmp_path, "runpodctl")
    assert [removal["argv"] for removal in removals] == [["remove", "pod", "pod-123"]]
    assert events(tmp_path)[-1]["event"] == "runpodctl"  # nothing ran after the removal


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
    assert_removed_once_at_the_end(tmp_path)
    logs = sorted((tmp_path / ".lora-sweep" / "logs" / "me-lora-8f3k2x1q").glob("gpu-*.log"))
    assert [log.name for log in logs] == ["gpu-0.log", "gpu-1.log"]
    for text in [done.stdout, done.stderr] + [log.read_text() for log in logs]:
        assert "wandb-key" not in text  # the key reached the agents' environment, and nothing else


def test_a_failed_install_removes_the_pod_without_starting_agents(tmp_path):
    done = run_script(pod_env(tmp_path, STANDIN_PIP_EXIT="1"))

    assert done.returncode == 3
    assert "setup failed" in done.stdout
    assert events(tmp_path, "start") == []
    assert_removed_once_at_the_end(tmp_path)


def test_crashing_agents_remove_the_pod_once_the_supervisor_gives_up(tmp_path):
    env = pod_env(tmp_path, STANDIN_WANDB_EXITS="3", LORA_SWEEP_MAX_RESTARTS="1", LORA_SWEEP_RESTART_BACKOFF="0")
    done = run_script(env)

    assert done.returncode == 1
    assert len(events(tmp_path, "start")) == 4  # two GPUs, one restart each
    assert_removed_once_at_the_end(tmp_path)


def test_the_watchdog_stops_the_agents_and_removes_the_pod(tmp_path):
    env = pod_env(tmp_path, STANDIN_WANDB_SLEEP="120", LORA_SWEEP_MAX_HOURS="0.0008")  # about 3 s
    started = time.monotonic()
    done = run_script(env)

    assert done.returncode == 143, done.stdout + done.stderr
    assert time.monotonic() - started < 60
    assert "watchdog: --max-hours 0.0008 reached" in done.stdout
    assert sorted(event["gpu"] for event in events(tmp_path, "signal")) == ["0", "1"]
    assert_removed_once_at_the_end(tmp_path)


def test_sigterm_to_the_pod_reaches_every_agent_and_still_removes_the_pod(tmp_path):
    env = pod_env(tmp_path, STANDIN_WANDB_SLEEP="120")
    script = subprocess.Popen(
        ["bash", str(SCRIPT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 60
    while len(events(tmp_path, "start")) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)

    script.send_signal(signal.SIGTERM)
    out, _ = script.communicate(timeout=60)

    assert script.returncode == 143, out
    assert sorted((event["gpu"], event["signal"]) for event in events(tmp_path, "signal")) == [
        ("0", "SIGTERM"),
        ("1", "SIGTERM"),
    ]
    assert_removed_once_at_the_end(tmp_path)
