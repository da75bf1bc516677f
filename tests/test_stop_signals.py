"""The signal latch every part answers SIGINT and SIGTERM through (`agent.signals`): real signals sent
to this process, whose handlers run on its main thread."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from agent.signals import SignalLatch, SignalLatchError


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
        try:
            SignalLatch().install()
        except SignalLatchError as error:
            refused.append(str(error))

    thread = threading.Thread(target=install_here)
    thread.start()
    thread.join()
    assert refused == ["signal handlers can only be installed from the main thread"]
    assert {signum: signal.getsignal(signum) for signum in before} == before  # nothing was changed

    with SignalLatch() as latch:
        with pytest.raises(SignalLatchError, match="installed already"):
            latch.install()
    assert {signum: signal.getsignal(signum) for signum in before} == before
