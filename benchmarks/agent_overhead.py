"""What the local agent adds to each run: claim, launch, metrics, record.

Runs a grid of no-op runs through `lora-sweep agent` and times each run from its claim to its
record (the store's started_at/ended_at), against the bare start-up of the same program run
directly with the same environment. Two programs: one that starts and finishes a W&B run (the
smallest real sweep program: the agent also reads its log with `wandb leet inspect`), and
`python -c pass` (launch and bookkeeping only).

    .venv/bin/python benchmarks/agent_overhead.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agent.local.launch import prepare_launch
from agent.local.store import Store

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = {
    "wandb.init + finish": ["${env}", "${interpreter}", str(ROOT / "tests/programs/noop.py"), "${args}"],
    "python -c pass": ["${env}", "${interpreter}", "-c", "pass", "${args}"],
}


def environment(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=str(workdir))
    return env


def time_bare(command: list[str], runs: int, workdir: Path) -> list[float]:
    """The program started directly, with the environment and files an agent would give it."""
    times = []
    for i in range(runs):
        plan = prepare_launch({"command": command}, "bare", f"bare{i:04d}", {"i": i}, base_env=environment(workdir))
        started = time.perf_counter()
        subprocess.run(plan.argv, env=plan.env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return times


def time_agent(command: list[str], runs: int, workdir: Path) -> tuple[list[float], float]:
    """Per-run claim-to-record times, and the agent's whole wall time."""
    store_path = workdir / "sweeps.db"
    config = {"method": "grid", "command": command, "parameters": {"i": {"values": list(range(runs))}}}
    store = Store(store_path)
    with store.write() as tx:
        sweep_id = tx.create_sweep(config, None, None)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "agent.cli", "agent", sweep_id, "--store", str(store_path)],
        env=environment(workdir),
        cwd=workdir,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - started
    cycles = [run.ended_at - run.started_at for run in store.runs(sweep_id, with_history=False)]
    assert len(cycles) == runs and all(run.state == "finished" for run in store.runs(sweep_id))
    return cycles, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    print(f"{args.runs} runs each; cpu count {os.cpu_count()}")
    for name, command in PROGRAMS.items():
        with tempfile.TemporaryDirectory() as tmp:
            print(f"[{name}] timing bare start-up ...", flush=True)
            bare = time_bare(command, args.runs, Path(tmp))
            print(f"[{name}] timing through the agent ...", flush=True)
            cycles, wall = time_agent(command, args.runs, Path(tmp))
        bare_s, cycle_s = statistics.median(bare), statistics.median(cycles)
        print(
            f"[{name}] bare {bare_s:.2f} s/run | agent claim-to-record {cycle_s:.2f} s/run"
            f" (agent wall {wall / args.runs:.2f} s/run) | overhead {cycle_s - bare_s:+.2f} s/run,"
            f" ratio {cycle_s / bare_s:.2f}x (medians)"
        )


if __name__ == "__main__":
    main()
