"""Child processes that never outlive the agent: their own process group, and on Linux a
parent-death signal (PR_SET_PDEATHSIG), so even a SIGKILLed agent leaves nothing running.

The signal has to be armed inside the child, before its program runs. `preexec_fn` would run
Python between fork and exec, which subprocess's docs call unsafe while other threads run (the
agent's heartbeat, output copier and metrics reader do): the child can wait forever on a lock that
a vanished thread held at the fork. So the child execs a fresh interpreter first (`_ARM`, about
10 ms): it joins its own process group, arms the signal, and execs the program with the
environment it was given. An exec that fails comes back as the OSError Popen itself would raise.

What a run starts in another session (W&B starts `wandb-core` in one of its own) escapes its process
group, yet keeps its environment: `CLAIM_ENV` marks everything a claim's launch starts, so that it
can be ended with it (`end_marked`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence

import psutil

_ARM = """
import ctypes, os, sys
errors, parent, signum = map(int, sys.argv[1:4])
os.setpgid(0, 0)
if sys.platform.startswith("linux"):
    ctypes.CDLL(None, use_errno=True).prctl(1, signum, 0, 0, 0)  # PR_SET_PDEATHSIG
if os.getppid() != parent:
    os._exit(1)  # the parent died before the signal was armed: nothing would ever end the program
try:  # the environment as given: Python may have added LC_CTYPE to its own at start-up
    env = dict(item.split(b"=", 1) for item in open("/proc/self/environ", "rb").read().split(b"\\0") if b"=" in item)
except OSError:
    env = os.environ
os.set_inheritable(errors, False)  # closed by a successful exec: the parent reads nothing
try:
    os.execvpe(sys.argv[4], sys.argv[4:], env)
except OSError as error:
    os.write(errors, str(error.errno).encode())
    os._exit(127)
"""


def start_child(argv: Sequence[str], death_signal: int = signal.SIGKILL, **popen) -> subprocess.Popen:
    """Popen(argv, **popen), led by its own process group, sent `death_signal` when the thread that
    started it dies. Raises OSError when the program cannot be started, as Popen does."""
    read_end, write_end = os.pipe()
    try:
        wrapped = [sys.executable, "-I", "-S", "-c", _ARM, str(write_end), str(os.getpid()), str(int(death_signal))]
        process = subprocess.Popen([*wrapped, *argv], pass_fds=(write_end,), **popen)
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    with os.fdopen(read_end, "rb") as errors:
        errno = errors.read()
    if errno:
        with process:  # reaps it and closes its pipes
            pass
        raise OSError(int(errno), os.strerror(int(errno)), argv[0])
    return process


def signal_group(pid: int, signum: int) -> None:
    """Signal the whole process group a child leads (it and whatever it started), whether or not
    the leader still lives: the group outlives it while anything it started runs."""
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def claim_mark(run_id: str, claim: int) -> str:
    """`CLAIM_ENV`'s value in everything the launch of the `claim`-th claim of run `run_id` starts."""
    return f"{run_id}/{claim}"


def end_marked(name: str, value: str) -> int:
    """SIGKILL every process of ours whose environment holds `name=value`, in whatever group or
    session it runs, and wait until they are gone; how many there were."""
    marked = []
    for process in psutil.process_iter():
        try:
            if process.pid != os.getpid() and process.environ().get(name) == value:
                process.kill()
                marked.append(process)
        except psutil.Error:  # gone meanwhile, or not ours to read
            continue
    psutil.wait_procs(marked, timeout=5)
    return len(marked)
