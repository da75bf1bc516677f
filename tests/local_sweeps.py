"""Shared set-up for the local-controller tests: sweeps in a temporary store, agents as real
processes (so signals and concurrency are real), and the stand-in programs in tests/programs/."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from agent.local.controller import sweeps  # imported there with its pydantic warning silenced
from agent.local.store import Store

PROGRAMS = Path(__file__).parent / "programs"
PYTHON_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]


def create_sweep(store_path: Path, config: dict) -> str:
    """Register a sweep the way `lora-sweep sweep --local` does, after the engine's schema check."""
    assert sweeps.schema_violations_from_proposed_config(config) == []
    store = Store(store_path)
    try:
        return store.create_sweep(config, project=None, name=None)
    finally:
        store.close()


def agent_env(**extra: str) -> dict[str, str]:
    """`${interpreter}` is the literal `python` on PATH, as under `wandb agent`: put ours first."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["WANDB_MODE"] = "offline"
    env["WANDB_SILENT"] = "true"
    env.update(extra)
    return env


def start_agent(sweep_id: str, store_path: Path, cwd: Path, *flags: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "agent", sweep_id, "--store", str(store_path), *flags],
        cwd=cwd,
        env=agent_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition, timeout_s: float, what: str, interval_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def runs_of(store_path: Path, sweep_id: str):
    store = Store(store_path)
    try:
        return store.runs(sweep_id)
    finally:
        store.close()
