"""Stand-in trial program: logs a score every step through wandb, as the trainer logs ROUGE.

Parameters (from the sweep, through wandb.config): steps, slope (score = slope * step, so 0 is a
plateau), sleep (seconds per step), exit_code, and marker_dir, where it leaves `<run_id>.sigterm`
when it receives SIGTERM. With ignore_sigterm it keeps going after SIGTERM, so only SIGKILL ends it.
"""

import signal
import sys
import time
from pathlib import Path

import wandb

run = wandb.init()
config = dict(run.config)
marker_dir = Path(config.get("marker_dir", "."))


def on_sigterm(signum, frame):
    (marker_dir / f"{run.id}.sigterm").write_text("")
    if not config.get("ignore_sigterm"):
        wandb.finish(exit_code=143)
        sys.exit(143)


signal.signal(signal.SIGTERM, on_sigterm)
wandb.define_metric("score", summary="max")
for step in range(1, int(config.get("steps", 3)) + 1):
    wandb.log({"score": float(config.get("slope", 1.0)) * step, "train/global_step": step * 10})
    time.sleep(float(config.get("sleep", 0.0)))
print(f"scorer done: {config}", flush=True)
wandb.finish(exit_code=int(config.get("exit_code", 0)))
sys.exit(int(config.get("exit_code", 0)))
