"""Stand-in program that starts a child of its own and exits while the child runs on, as a trainer's
data-loader worker or a shell's background job can: the child stays in the program's process group.

Parameters (flags): pid_file, where the child's pid is written; child_s, how long the child lives.
"""

import subprocess
import sys
from pathlib import Path

args = dict(arg[2:].split("=", 1) for arg in sys.argv[1:] if arg.startswith("--"))
child = subprocess.Popen(
    [sys.executable, "-c", f"import time; time.sleep({float(args['child_s'])})"],
    stdin=subprocess.DEVNULL,
    stdout=subprocess.DEVNULL,  # the agent waits for its pipe to close: the child must not hold it
    stderr=subprocess.DEVNULL,
)
Path(args["pid_file"]).write_text(str(child.pid))
