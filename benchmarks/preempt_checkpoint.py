"""Time from SIGTERM to a complete checkpoint, for the real trial program on a given model.

Starts `python -m agent.train` (W&B offline) on `--model`, waits until its first periodic
checkpoint is sealed and training has gone on past it, sends SIGTERM as RunPod does, and measures
the seconds until a new complete checkpoint appears. Then relaunches the run with the same id and
reports the step it resumed from, so the steps lost are measured too. Baseline: the grace period
(`preempt_grace_s`, 4 s inside RunPod's 5); the ratio says how much of it the save used.

    python benchmarks/preempt_checkpoint.py --model DIR [--eval-steps 20]
    python benchmarks/preempt_checkpoint.py --model builtin:tiny-llama   # the CPU figure
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agent.trial.checkpoint import COMPLETE_MARKER, latest_checkpoint, read_launches, step_of

GRACE_S = 4.0


def launch(model: str, work: Path, run_id: str, cli: argparse.Namespace) -> subprocess.Popen:
    flags = {
        "model_name_or_path": model,
        "dataset": "builtin:synthetic",
        "max_steps": 10 * cli.eval_steps,
        "eval_steps": cli.eval_steps,
        "eval_subset_size": 16,
        "max_new_tokens": 16,
        "logging_steps": 1,
        "preempt_grace_s": GRACE_S,
        "output_dir": str(work / "outputs"),
        "checkpoint_dir": str(work / "checkpoints"),
    }
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_RUN_ID": run_id}
    argv = [sys.executable, "-m", "agent.train", *(f"--{name}={value}" for name, value in flags.items())]
    return subprocess.Popen(argv, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.02)
    raise SystemExit(f"timed out after {timeout_s:.0f}s waiting for {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model_name_or_path for the trial")
    parser.add_argument("--eval-steps", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=600)
    cli = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lora-sweep-preempt-"))
    runs = work / "checkpoints" / "preempt1"
    process = launch(cli.model, work, "preempt1", cli)
    first = wait_for(lambda: latest_checkpoint(runs) if runs.exists() else None, cli.timeout, "a first checkpoint")
    time.sleep(1.0)  # past the checkpoint, mid-way through later steps
    process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    sealed = wait_for(
        lambda: (c := latest_checkpoint(runs)) and c != first and (c / COMPLETE_MARKER).exists() and c,
        cli.timeout,
        "the SIGTERM checkpoint",
    )
    to_checkpoint_s = time.monotonic() - sent
    output, _ = process.communicate(timeout=cli.timeout)
    launches = read_launches(runs)

    resumed = launch(cli.model, work, "preempt1", cli)
    resumed_output, _ = resumed.communicate(timeout=cli.timeout)
    resumed_from = next((line for line in resumed_output.splitlines() if line.startswith("resuming run")), "")

    print(f"model: {cli.model}; first periodic checkpoint at step {step_of(first)}")
    print(f"SIGTERM -> complete checkpoint at step {step_of(sealed)}: {to_checkpoint_s:.2f} s "
          f"({to_checkpoint_s / GRACE_S:.2f} of the {GRACE_S:.0f} s grace)")  # fmt: skip
    print(f"first launch exit code {process.returncode}; launches: {[a['outcome'] for a in launches]}")
    print(f"relaunch: {resumed_from or 'did not resume'}; exit code {resumed.returncode}")
    if process.returncode != 143 or resumed.returncode != 0:
        print(output[-3000:], resumed_output[-3000:], sep="\n")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
