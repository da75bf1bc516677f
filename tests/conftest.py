"""Shared fixtures: the built-in tiny model (built once, cached by recipe) and offline W&B."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Every test runs W&B offline and never prompts: these are process-wide on purpose.
os.environ["WANDB_MODE"] = "offline"
os.environ["WANDB_SILENT"] = "true"
os.environ.setdefault("WANDB_DISABLE_GIT", "true")


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    from agent.trial.tiny import ensure_tiny_model

    return ensure_tiny_model()


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def run_program(
    args: list[str], cwd: Path, timeout: float = 300, env: dict | None = None
) -> subprocess.CompletedProcess:
    """A real subprocess, with the repository importable, as an agent would launch it."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def wandb_run_dir(cwd: Path) -> Path:
    runs = sorted((cwd / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, f"expected one offline run in {cwd}, found {runs}"
    return runs[0]


def inspect_summary(run_dir: Path) -> dict:
    """The run's summary through W&B's public CLI, as the local controller reads it."""
    out = subprocess.run(
        [str(Path(sys.executable).parent / "wandb"), "leet", "inspect", "--summary", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout)
