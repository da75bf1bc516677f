"""Fast stand-in program without wandb: appends its command line and run id to a shared log.

Each run writes one line, in one append, so concurrent runs never interleave; the test then
counts exactly which grid points ran, and how often.
"""

import json
import os
import sys
import time

args = dict(arg[2:].split("=", 1) for arg in sys.argv[1:] if arg.startswith("--"))
time.sleep(float(args.get("sleep", 0)))
line = json.dumps({"run_id": os.environ["WANDB_RUN_ID"], "args": args}) + "\n"
fd = os.open(args["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.write(fd, line.encode())
os.close(fd)
