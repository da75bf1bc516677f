"""Fast stand-in program without wandb: appends its command line and run id to a shared log.

Each event is one line written in one append, so concurrent runs never interleave; the tests
then count exactly which grid points ran to the end, and how often. `--sleep` applies to a run's
first launch only: a requeued run (same run id, already in the log) finishes at once.
"""

import json
import os
import sys
import time

args = dict(arg[2:].split("=", 1) for arg in sys.argv[1:] if arg.startswith("--"))
run_id = os.environ["WANDB_RUN_ID"]


def append(event):
    fd = os.open(args["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    # The GPU and its share the agent gave this run, for the tests of agents sharing a GPU.
    gpu = {name: os.environ.get(name) for name in ("CUDA_VISIBLE_DEVICES", "LORA_SWEEP_GPU_SHARE")}
    os.write(fd, (json.dumps({"run_id": run_id, "event": event, "args": args, "gpu": gpu}) + "\n").encode())
    os.close(fd)


def launches_so_far():
    if not os.path.exists(args["log"]):
        return 0
    with open(args["log"]) as log:
        return sum(json.loads(line)["run_id"] == run_id for line in log if '"start"' in line)


first_launch = launches_so_far() == 0
append("start")
if first_launch:
    time.sleep(float(args.get("sleep", 0)))
append("done")
