"""The signal latch every part answers SIGINT and SIGTERM through (`agent.signals`), and the trial's
stop request on top of it: real signals sent to this process, whose handlers run on its main thread."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from agent.signals import SignalLatch, SignalLatchError
from agent.trial.shutdown_notice import NOTICE_ENV, announce_shutdown, post
from agent.trial.stopping import StopKind, StopRequest


def send(signum: int) -> None:
    """A signal to this process; its handler has run once this returns (Python runs handlers on the main
    thread between two bytecodes, so before the next line)."""
    os.kill(os.getpid(), signum)


def test_a_latch_records_its_signals_instead_of_the_handlers_it_replaced_and_puts_them_back():
    answered = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: answered.append(signum))
    try:
        before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
        with SignalLatch() as latch:
            send(signal.SIGTERM)
            send(signal.SIGINT)  # no KeyboardInterrupt: Python's own handler is put off too
            assert answered == []  # replaced, not chained
        assert {signum: signal.getsignal(signum) for signum in before} == before
        assert [arrival.signum for arrival in latch.arrivals] == [signal.SIGTERM, signal.SIGINT]
        send(signal.SIGTERM)
        assert answered == [signal.SIGTERM]  # the previous handler answers again
        assert len(latch.arrivals) == 2  # and the latch records nothing more
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_arrivals_are_appended_in_order_and_never_taken_back():
    with SignalLatch() as latch:
        send(signal.SIGTERM)
        first = list(latch.arrivals)  # a reader's look, as a cursor keeps it
        send(signal.SIGINT)
        send(signal.SIGTERM)
    assert latch.arrivals[: len(first)] == first
    assert [arrival.signum for arrival in latch.arrivals] == [signal.SIGTERM, signal.SIGINT, signal.SIGTERM]
    monotonic = [arrival.monotonic for arrival in latch.arrivals]
    assert monotonic == sorted(monotonic) and monotonic[-1] <= time.monotonic()
    assert all(abs(arrival.wall - time.time()) < 60 for arrival in latch.arrivals)  # Unix time, not monotonic


def test_a_sigint_after_any_earlier_signal_interrupts_at_once_and_is_recorded_too():
    with SignalLatch(interrupt_on_second_sigint=True) as latch:
        send(signal.SIGTERM)
        send(signal.SIGTERM)  # a second SIGTERM is recorded like the first
        with pytest.raises(KeyboardInterrupt):
            send(signal.SIGINT)
    assert [arrival.signum for arrival in latch.arrivals] == [signal.SIGTERM, signal.SIGTERM, signal.SIGINT]

    with SignalLatch(interrupt_on_second_sigint=True) as latch:
        send(signal.SIGINT)  # the first asks for a stop
        with pytest.raises(KeyboardInterrupt):
            send(signal.SIGINT)
    assert [arrival.signum for arrival in latch.arrivals] == [signal.SIGINT, signal.SIGINT]
    with SignalLatch() as latch:  # without it, every SIGINT is only recorded
        send(signal.SIGINT)
        send(signal.SIGINT)
    assert len(latch.arrivals) == 2


def test_a_latch_refuses_to_install_off_the_main_thread_or_twice():
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    refused = []

    def install_here():
        for latch in (SignalLatch(), StopRequest()):
            try:
                latch.install()
            except SignalLatchError as error:
                refused.append(str(error))

    thread = threading.Thread(target=install_here)
    thread.start()
    thread.join()
    assert refused == ["signal handlers can only be installed from the main thread"] * 2
    assert {signum: signal.getsignal(signum) for signum in before} == before  # nothing was changed

    with SignalLatch() as latch:
        with pytest.raises(SignalLatchError, match="installed already"):
            latch.install()
    assert {signum: signal.getsignal(signum) for signum in before} == before


def test_a_stop_request_classifies_only_when_polled_and_a_preemption_outranks_a_stop(tmp_path):
    notice = tmp_path / "supervisor.notice"
    post(notice)  # a live supervisor that has announced nothing: a SIGTERM is its controller's stop
    request = StopRequest({NOTICE_ENV: str(notice)})
    with request.latch:
        send(signal.SIGTERM)
        assert request.kind is None and not request.stopped  # nothing is read until the program polls
        assert request.poll() is StopKind.STOP and request.stopped
        stopped_at = request.received_at

        announce_shutdown(notice)
        send(signal.SIGTERM)
        assert request.poll() is StopKind.PREEMPT and request.preempted and not request.stopped
        assert request.received_at > stopped_at  # the grace counts from the preemption's signal
        preempted_at = request.received_at

        post(notice)  # the supervisor lives on and announces nothing: this SIGTERM is a stop
        send(signal.SIGTERM)
        assert request.poll() is StopKind.PREEMPT and request.received_at == preempted_at

    unsupervised = StopRequest()
    with unsupervised.latch:
        send(signal.SIGINT)
        assert unsupervised.poll() is StopKind.STOP
    unsupervised = StopRequest()
    with unsupervised.latch:
        send(signal.SIGTERM)  # no supervisor to ask: a preemption
        assert unsupervised.poll() is StopKind.PREEMPT


def test_a_second_sigint_while_the_first_signal_is_being_classified_still_interrupts(tmp_path):
    """The poll reads the supervisor's notice; a SIGINT landing while it does must not be taken for a first."""
    notice = tmp_path / "notice.fifo"
    os.mkfifo(notice)  # each read of it waits for a writer to open it and close it
    request = StopRequest({NOTICE_ENV: str(notice)})
    sent, done = [], threading.Event()

    def end_each_read_the_first_with_a_sigint():
        while not done.is_set():
            try:  # a FIFO opens for writing, without blocking, only while a reader has it open
                writer = os.open(notice, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.01)
                continue
            if not sent:
                os.kill(os.getpid(), signal.SIGINT)
                sent.append(signal.SIGINT)
            os.close(writer)  # the read ends (empty); the handler has run before the poll goes on

    with request.latch:
        send(signal.SIGTERM)
        helper = threading.Thread(target=end_each_read_the_first_with_a_sigint)
        helper.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                request.poll()
        finally:
            done.set()
            helper.join()
    assert sent == [signal.SIGINT]
    assert [arrival.signum for arrival in request.latch.arrivals] == [signal.SIGTERM, signal.SIGINT]
