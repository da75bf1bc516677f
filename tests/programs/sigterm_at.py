"""The trial program, sending itself a real SIGTERM just after one of its boundaries (tests/test_stop_phases.py):
`python tests/programs/sigterm_at.py BOUNDARY --name=value ...` runs `python -m agent.train --name=value ...`.

The SIGTERM comes from another thread, so it lands inside the code that follows the boundary, keyed to
the program's own progress rather than to sleeps. A boundary never passed is an error (exit 3): a phase
renamed in the program must not leave a test that stops nothing.
"""

import os
import runpy
import signal
import sys
import threading

from agent.trial.stopping import StopRequest

AT = sys.argv.pop(1)
passed = []
boundary = StopRequest.boundary


def boundary_then_sigterm(self, name, *args, **kwargs):
    boundary(self, name, *args, **kwargs)
    if name == AT and not passed:
        passed.append(name)
        threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGTERM), daemon=True).start()


StopRequest.boundary = boundary_then_sigterm
try:
    runpy.run_module("agent.train", run_name="__main__", alter_sys=True)
finally:
    if not passed:
        print(f"sigterm_at: the program never passed a boundary named {AT!r}", file=sys.stderr)
        os._exit(3)
