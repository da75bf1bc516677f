"""Every option of `lora-sweep agent` reaches the `wandb agent` children of a W&B sweep, as
wandb 0.31's own flag or environment variable, or is refused in one line.

W&B's server is the boundary: `tests/fleet_bin/wandb` stands in for the `wandb` executable and
records the argv and environment each agent got; the supervisor is the real one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import agent_env

pytestmark = pytest.mark.e2e

FLEET_BIN = Path(__file__).parent / "fleet_bin"
SWEEP = "me/lora/8f3k2x1q"


def run_agent(tmp_path: Path, *args: str, **env_extra: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    env = agent_env(STANDIN_RECORD=str(tmp_path / "wandb.jsonl"), **env_extra)
    env["PATH"] = f"{FLEET_BIN}{os.pathsep}{env['PATH']}"
    env.pop("WANDB_AGENT_KILL_DELAY", None)
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "agent", SWEEP, "--gpus", "0", *args, "--log-dir", str(tmp_path / "logs")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    record = tmp_path / "wandb.jsonl"
    lines = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    return done, [line for line in lines if line["event"] == "start"]


def test_count_failed_runs_and_kill_grace_reach_wandb_agent(tmp_path):
    done, [start] = run_agent(tmp_path, "--count", "3", "--max-consecutive-failed-runs", "2", "--kill-grace", "5")

    assert done.returncode == 0, done.stderr
    assert start["argv"] == ["agent", "--forward-signals", "--count", "3", "--max-consecutive-failed-runs", "2", SWEEP]
    assert start["env"]["WANDB_AGENT_KILL_DELAY"] == "5"


def test_the_default_kill_grace_is_wandbs_own(tmp_path):
    done, [start] = run_agent(tmp_path)

    assert done.returncode == 0, done.stderr
    assert start["argv"] == ["agent", "--forward-signals", SWEEP] and start["env"]["WANDB_AGENT_KILL_DELAY"] == "30"


@pytest.mark.parametrize(
    "args, message",
    [
        (("--heartbeat-timeout", "90"), "--heartbeat-timeout is for local sweeps"),
        (("--kill-grace", "2.5"), "--kill-grace 2.5: `wandb agent` takes whole seconds"),
    ],
)
def test_an_option_wandb_agents_cannot_take_is_one_line_and_starts_nothing(tmp_path, args, message):
    done, starts = run_agent(tmp_path, *args)

    assert done.returncode == 1 and starts == []
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("Error: ") and message in line


def test_a_local_only_option_from_the_environment_is_noted_and_ignored_not_refused(tmp_path):
    done, [start] = run_agent(tmp_path, LORA_SWEEP_HEARTBEAT_TIMEOUT="90")

    assert done.returncode == 0, done.stderr
    assert "note: LORA_SWEEP_HEARTBEAT_TIMEOUT is ignored: it is for local sweeps, not W&B's" in done.stderr
    assert start["argv"] == ["agent", "--forward-signals", SWEEP]
