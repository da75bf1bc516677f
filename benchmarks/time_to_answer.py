"""Time to an answer: one small grid trained to its fixed steps, and again with plateau stopping.

A local sweep of lora_r x learning_rate on the tiny built-in model (CPU, offline), run end to end by
the real `lora-sweep agent` over the local controller, twice: every run to `max_steps`
(`plateau_patience=0`, the default), then with `plateau_patience=--patience`. It prints, for each,
the training steps the runs took (the last step each logged), the grid's wall time, and the
recommendation the review makes (`agent.review.findings.assess`: the recommended run's swept
parameters, the lightest stable run within the tolerance of the winner),
each as a ratio to the fixed-steps grid, and whether the recommendation is the same.

    .venv/bin/python benchmarks/time_to_answer.py              # 4 runs x 200 steps each way, a few minutes
    .venv/bin/python benchmarks/time_to_answer.py --quick      # 2 runs x 40 steps on a slice: every path
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.local.store import Store
from agent.records import OBJECTIVE, PLATEAU_STOP_KEY, STEP_KEY, RunState, SweepRecord
from agent.review.findings import assess

REPO = Path(__file__).resolve().parents[1]
COMMAND = ["${env}", "${interpreter}", "-m", "agent.train", "${args}"]

# The smoke sweep's sizes (sweeps/smoke.yaml), with evaluations often enough for a plateau to show.
FULL = {
    "grid": {"lora_r": [4, 16], "learning_rate": [1e-4, 1e-3]},
    "fixed": {"max_steps": 200, "eval_steps": 25, "eval_subset_size": 32, "max_new_tokens": 32},
}
QUICK = {
    "grid": {"lora_r": [8], "learning_rate": [1e-4, 1e-3]},
    "fixed": {"max_steps": 40, "eval_steps": 10, "eval_subset_size": 8, "max_new_tokens": 16},
}


@dataclass(frozen=True)
class GridResult:
    setup: str
    finished: int
    runs: int
    steps: int
    """Training steps of every run together: the last step each logged."""
    wall_s: float
    best: dict[str, Any]
    """The review's recommendation: the recommended run's swept parameters."""
    best_objective: float
    stopped_early: int


def sweep_config(sizes: dict, dataset: str, patience: int) -> dict[str, Any]:
    fixed = {
        "model_name_or_path": "builtin:tiny-llama",
        "dataset": dataset,
        "per_device_train_batch_size": 8,
        "logging_steps": 10,
        "plateau_patience": patience,
        **sizes["fixed"],
    }
    parameters = {name: {"values": values} for name, values in sizes["grid"].items()}
    parameters.update({name: {"value": value} for name, value in fixed.items()})
    return {
        "method": "grid",
        "metric": {"name": OBJECTIVE, "goal": "maximize"},
        "parameters": parameters,
        "command": COMMAND,
    }


def environment(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(REPO)
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=str(workdir))
    return env


def run_grid(setup: str, config: dict[str, Any], workdir: Path) -> GridResult:
    """The grid through `lora-sweep agent`, to its end; its steps, wall time and recommendation."""
    workdir.mkdir(parents=True)
    store_path = workdir / "sweeps.db"
    store = Store(store_path)
    with store.write() as tx:
        sweep_id = tx.create_sweep(config, None, setup)
    print(f"[{setup}] running {sweep_id} ...", flush=True)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "agent.cli", "agent", sweep_id, "--store", str(store_path)],
        env=environment(workdir), cwd=workdir, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wall = time.perf_counter() - started
    record = store.sweep_record(sweep_id)
    recommended = assess(record).answers.recommended
    swept = record.swept_parameters
    return GridResult(
        setup=setup,
        finished=sum(run.state == RunState.FINISHED for run in record.runs),
        runs=len(record.runs),
        steps=total_steps(record),
        wall_s=wall,
        best={name: recommended.params.get(name) for name in swept},
        best_objective=recommended.objective,
        stopped_early=sum(PLATEAU_STOP_KEY in run.summary for run in record.runs),
    )


def total_steps(record: SweepRecord) -> int:
    return sum(max((row[STEP_KEY] for row in run.history if STEP_KEY in row), default=0) for run in record.runs)


def write_slice(folder: Path) -> str:
    """A slice of the synthetic set as local files, as the tests use: less to tokenize and score."""
    from agent.trial.synthetic import synthetic_dialogues

    folder.mkdir(parents=True)
    splits = synthetic_dialogues()
    splits["train"].select(range(400)).to_json(folder / "train.jsonl")
    splits["validation"].select(range(16)).to_json(folder / "validation.jsonl")
    return str(folder)


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}x" if baseline else "n/a"


COLUMNS = ("setup", "finished", "stopped early", "training steps", "steps ratio", "wall s", "wall ratio", "best")


def print_table(fixed: GridResult, plateau: GridResult) -> None:
    print("| " + " | ".join((*COLUMNS, OBJECTIVE)) + " |")
    print("|" + " --- |" * (len(COLUMNS) + 1))
    for result in (fixed, plateau):
        best = ", ".join(f"{name}={value}" for name, value in result.best.items())
        print(
            f"| {result.setup} | {result.finished}/{result.runs} | {result.stopped_early} | {result.steps} | "
            f"{ratio(result.steps, fixed.steps)} | {result.wall_s:.1f} | {ratio(result.wall_s, fixed.wall_s)} | "
            f"{best} | {result.best_objective:.2f} |"
        )
    same = "yes" if fixed.best == plateau.best else "NO"
    print(f"\nsame recommendation: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 short runs on a slice of the data: every path")
    parser.add_argument("--patience", type=int, default=2, help="plateau_patience of the second grid")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    print(f"grid {sizes['grid']}, {sizes['fixed']}; cpu count {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        dataset = write_slice(Path(tmp) / "data") if args.quick else "builtin:synthetic"
        fixed = run_grid("fixed steps", sweep_config(sizes, dataset, 0), Path(tmp) / "fixed")
        plateau = run_grid(
            f"plateau_patience={args.patience}", sweep_config(sizes, dataset, args.patience), Path(tmp) / "plateau"
        )
    print()
    print_table(fixed, plateau)


if __name__ == "__main__":
    main()
