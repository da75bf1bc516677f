"""Shared set-up for the local-controller tests: sweeps in a temporary store, agents as real
processes (so signals and concurrency are real), and the stand-in programs in tests/programs/."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from agent.local.controller import sweeps  # imported there with its pydantic warning silenced
from agent.local.store import Store

PROGRAMS = Path(__file__).parent / "programs"
PYTHON_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]

# Every process these tests start, and everything those start, inherits this mark in its
# environment, so a test can find whatever was left running (`marked_processes`).
MARK_VAR = "LORA_SWEEP_TEST_MARK"
MARK = uuid.uuid4().hex


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
    env[MARK_VAR] = MARK
    env.update(extra)
    return env


def marked_processes() -> list[str]:
    """Command lines of live processes that carry this session's mark (zombies excluded)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if f"{MARK_VAR}={MARK}".encode() not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return found


def wait_until_no_marked_processes(timeout_s: float = 15.0) -> None:
    """What the tests started must all end, and soon; otherwise name what was left behind."""
    deadline = time.monotonic() + timeout_s
    while (left := marked_processes()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"processes left running: {left}"


@pytest.fixture
def no_leaked_processes():
    """Use in every test that starts agents or programs: nothing may outlive the test."""
    yield
    wait_until_no_marked_processes()


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
