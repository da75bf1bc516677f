"""Stand-in program that logs a score, then floods its output (W&B records every line in the run's
log too), and can then delete its own run log so that its summary cannot be read back.

Parameters (through wandb.config): megabytes of output, sleep (seconds before finishing, so the
agent surely follows the live log first), and delete_log.
"""

import glob
import os
import sys
import time

import wandb

run = wandb.init()
config = dict(run.config)
wandb.define_metric("score", summary="max")
for step in range(1, 4):
    wandb.log({"score": float(step)})
# 100 kB a write: W&B's console capture costs far more per write than per byte, so this
# floods the agent at the pipe's pace rather than at the pace of 80,000 captured writes.
lines = ("x" * 99 + "\n") * 1000
for _ in range(int(float(config.get("megabytes", 0)) * 10)):
    sys.stdout.write(lines)
sys.stdout.flush()
time.sleep(float(config.get("sleep", 0)))
wandb.finish()
if config.get("delete_log"):
    for path in glob.glob(os.path.join(os.environ["WANDB_DIR"], "wandb", f"*run-*-{run.id}", f"run-{run.id}.wandb")):
        os.remove(path)
