"""Shared fixtures: the built-in tiny model (built once, cached by recipe), offline W&B, and the check
that nothing a test started outlives it. The helpers themselves are in helpers.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Every test runs W&B offline and never prompts: these are process-wide on purpose, set before any import of wandb.
os.environ["WANDB_MODE"] = "offline"
os.environ["WANDB_SILENT"] = "true"
os.environ.setdefault("WANDB_DISABLE_GIT", "true")
# Torch trains on one thread in every test process and every program the tests start. The suite runs
# tests side by side (`make test`: a worker per core), so several trainers share the cores; with a
# thread per core each, their threads spin-wait on one another and burn several times the CPU time.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from helpers import no_leaked_processes  # noqa: F401  (a fixture every module may use)


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    from agent.trial.tiny import ensure_tiny_model

    return ensure_tiny_model()


@pytest.fixture(scope="session")
def dialogues(tmp_path_factory) -> Path:
    """A slice of the synthetic set as local files: every trial launched on it tokenizes and scores less
    (its final scoring covers the whole validation split: 16 rows here, 200 in builtin:synthetic)."""
    from agent.trial.synthetic import synthetic_dialogues

    folder = tmp_path_factory.mktemp("dialogues")
    splits = synthetic_dialogues()
    splits["train"].select(range(400)).to_json(folder / "train.jsonl")
    splits["validation"].select(range(16)).to_json(folder / "validation.jsonl")
    return folder


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def pytest_collection_modifyitems(items):
    """The modules with end-to-end tests run first, each in its order. Under xdist (`make test`) a
    module goes to one worker whole, which builds its module fixtures once: the long modules start
    first, and the short in-process ones fill the end on whichever worker is free."""
    e2e_modules = {item.path for item in items if item.get_closest_marker("e2e")}
    items.sort(key=lambda item: item.path not in e2e_modules)
