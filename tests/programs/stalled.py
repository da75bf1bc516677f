"""Stand-in trial program for a run whose agent freezes: the first launch logs a score and hangs,
leaving behind what W&B leaves behind; a requeued launch logs another score and finishes.

W&B starts its `wandb-core` service in a session of its own, so killing the program's process
group leaves it running, writing the first launch's log (a system-metrics sample every 15 s).
The first launch starts such a process: it touches that launch's `.wandb` log five times a
second, for at most `toucher_s` seconds. The requeued launch waits a moment before
`wandb.init`, as a real program spends seconds on imports, so the old log is the freshest one
when its agent first looks.

Parameters (flags): marker_dir (where launches are counted), first_score, second_score,
toucher_s.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

args = dict(arg[2:].split("=", 1) for arg in sys.argv[1:] if arg.startswith("--"))
started = Path(args["marker_dir"]) / f"{os.environ['WANDB_RUN_ID']}.started"
first_launch = not started.exists()
started.touch()
if not first_launch:
    time.sleep(2.0)

import wandb  # noqa: E402 - after the wait, as a slow import would be

run = wandb.init()
wandb.define_metric("score", summary="max")
if first_launch:
    log = Path(run.dir).parent / f"run-{run.id}.wandb"
    touches = int(float(args["toucher_s"]) * 5)
    touch = f"import os, time\nfor _ in range({touches}):\n    os.utime({str(log)!r})\n    time.sleep(0.2)\n"
    subprocess.Popen(
        [sys.executable, "-c", touch],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wandb.log({"score": float(args["first_score"])})
    time.sleep(600)  # until the agent that takes the run over kills it
wandb.log({"score": float(args["second_score"])})
wandb.finish()
