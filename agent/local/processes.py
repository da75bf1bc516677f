"""Child processes that never outlive the agent: their own process group, and on Linux a
parent-death signal (PR_SET_PDEATHSIG), so even a SIGKILLed agent leaves nothing running."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1
# Looked up before any fork: the child must not load libraries between fork and exec.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def die_with_parent(signum: int = signal.SIGKILL) -> Callable[[], None]:
    """A `preexec_fn`: own process group, and `signum` when the thread that started it dies."""
    parent = os.getpid()

    def setup() -> None:
        os.setpgid(0, 0)
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
            if os.getppid() != parent:  # the agent died before prctl took effect
                os._exit(1)

    return setup


def signal_group(pid: int, signum: int) -> None:
    """Signal the whole process group a child leads (it and whatever it started)."""
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
