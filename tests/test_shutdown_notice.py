"""A run tells a preemption's SIGTERM from its controller's stop by its supervisor's notice (real signals)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from agent.trial.shutdown_notice import NOTICE_ENV, announce_shutdown, post, sigterm_is_preemption
from agent.trial.stopping import Preempted, StopKind, StopRequest


@pytest.fixture
def request_in_training(tmp_path):
    """A StopRequest handling this process's real SIGTERM and SIGINT, under a live supervisor's notice."""
    notice = tmp_path / "supervisor.notice"
    post(notice)
    request = StopRequest({NOTICE_ENV: str(notice)}).install()
    yield request, notice
    request.latch.restore()


def test_a_sigterm_the_supervisor_did_not_announce_is_a_stop(request_in_training):
    request, _ = request_in_training
    os.kill(os.getpid(), signal.SIGTERM)
    assert request.poll() is StopKind.STOP
    assert request.stopped and not request.preempted


def test_an_announced_shutdown_makes_a_sigterm_a_preemption_that_outranks_an_earlier_stop(request_in_training):
    request, notice = request_in_training
    os.kill(os.getpid(), signal.SIGTERM)  # the controller's stop, then the machine goes away
    assert request.poll() is StopKind.STOP
    announce_shutdown(notice)
    os.kill(os.getpid(), signal.SIGTERM)
    assert request.poll() is StopKind.PREEMPT and request.preempted


def test_a_preemption_is_only_recorded_by_the_handler_and_answered_at_the_next_boundary(request_in_training):
    request, notice = request_in_training
    announce_shutdown(notice)
    os.kill(os.getpid(), signal.SIGTERM)  # nothing is raised into the code the signal interrupted
    assert request.poll() is StopKind.PREEMPT
    request.boundary("save", remaining_s=0.5, grace_s=4.0)  # the rest fits the grace: it goes on
    with pytest.raises(Preempted):
        request.boundary("load")  # nothing unfinished fits a grace


def test_the_grace_counts_from_when_the_supervisor_got_the_signal(request_in_training):
    request, notice = request_in_training
    announce_shutdown(notice, sent_at=time.time() - 3.0)  # three hops took 3 s
    os.kill(os.getpid(), signal.SIGTERM)
    assert 3.0 <= request.seconds_since() < 4.0
    assert not request.fits(1.5, grace_s=4.0)


def test_without_a_live_supervisor_a_sigterm_is_taken_for_a_preemption(tmp_path):
    assert sigterm_is_preemption({})  # no supervisor (a bare `wandb agent`, the local agent alone)
    assert sigterm_is_preemption({NOTICE_ENV: str(tmp_path / "missing.notice")})
    (tmp_path / "garbage.notice").write_bytes(b"\x00\xff")
    assert sigterm_is_preemption({NOTICE_ENV: str(tmp_path / "garbage.notice")})

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "dead.notice").write_text(dead.stdout)  # the supervisor died without a word (SIGKILL)
    assert sigterm_is_preemption({NOTICE_ENV: str(tmp_path / "dead.notice")})


def test_a_killed_supervisor_not_yet_reaped_is_taken_for_gone(tmp_path):
    """Killed, it stays a zombie until its parent reaps it: its pid still exists, yet nothing runs."""
    supervisor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = psutil.Process(supervisor.pid).create_time()
        (tmp_path / "zombie.notice").write_text(f"{supervisor.pid} {started!r}\n")
        assert not sigterm_is_preemption({NOTICE_ENV: str(tmp_path / "zombie.notice")})  # alive: a stop
        supervisor.kill()
        os.waitid(os.P_PID, supervisor.pid, os.WEXITED | os.WNOWAIT)  # dead, and left unreaped
        assert sigterm_is_preemption({NOTICE_ENV: str(tmp_path / "zombie.notice")})
    finally:
        supervisor.kill()
        supervisor.wait()


def test_a_reused_pid_is_not_taken_for_the_live_supervisor(tmp_path):
    # The supervisor died without a word and its pid now belongs to another process (here: this one,
    # which started later than the notice says): a preemption, not a controller's stop.
    reused = tmp_path / "reused.notice"
    reused.write_text(f"{os.getpid()} {psutil.Process().create_time() - 60}\n")
    assert sigterm_is_preemption({NOTICE_ENV: str(reused)})
    (tmp_path / "bare.notice").write_text(f"{os.getpid()}\n")  # a pid alone cannot say whose it is
    assert sigterm_is_preemption({NOTICE_ENV: str(tmp_path / "bare.notice")})

    post(tmp_path / "live.notice")  # the same pid, with its own start time: the supervisor lives
    assert not sigterm_is_preemption({NOTICE_ENV: str(tmp_path / "live.notice")})
