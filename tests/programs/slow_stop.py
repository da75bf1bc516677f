"""Stand-in trial program for timing a shutdown: runs until SIGTERM, then takes `--stop_s` seconds to
exit, as a run saving its checkpoint and finishing its W&B run would. No wandb: the time it takes is
exactly the one it is given.

Each event (start, sigterm, exit) is one line appended to $STANDIN_RECORD, with the time.
"""

import json
import os
import signal
import sys
import time

args = dict(arg[2:].split("=", 1) for arg in sys.argv[1:] if arg.startswith("--"))


def record(event):
    line = {"event": f"run_{event}", "run_id": os.environ.get("WANDB_RUN_ID"), "pid": os.getpid(), "time": time.time()}
    fd = os.open(os.environ["STANDIN_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, (json.dumps(line) + "\n").encode())
    os.close(fd)


def on_sigterm(signum, frame):
    record("sigterm")
    time.sleep(float(args.get("stop_s", 0)))
    record("exit")
    sys.exit(143)


signal.signal(signal.SIGTERM, on_sigterm)
record("start")
while True:
    time.sleep(60)
