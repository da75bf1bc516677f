"""What the local agent decides from what it holds, as pure functions: the state a launch ends in,
when the agent gives up on failing runs, and the one line it prints about each claim. Every arm
of each, in milliseconds; the end-to-end tests check what real programs and signals make of them."""

from __future__ import annotations

import signal

import pytest

from agent.local.options import AgentOptions
from agent.local.runner import (
    MAX_INITIAL_FAILURES,
    TAKEN_REASON,
    ClaimOutcome,
    describe_outcome,
    final_state,
    give_up_reason,
)
from agent.records import PREEMPTED_EXIT_CODE, Objective, RunState

KILLED = -signal.SIGKILL  # how Popen reports a program a signal ended


@pytest.mark.parametrize(
    "exit_code, stop_reason, preempting, state",
    [
        (0, None, False, RunState.FINISHED),
        (0, None, True, RunState.FINISHED),  # marked preempting, yet it ended by itself: done
        (1, None, False, RunState.FAILED),
        (KILLED, None, False, RunState.CRASHED),  # a signal nobody in the sweep sent (the OOM killer)
        (-signal.SIGSEGV, None, False, RunState.CRASHED),
        (PREEMPTED_EXIT_CODE, None, False, RunState.PREEMPTED),  # its machine's SIGTERM, answered
        (1, None, True, RunState.PREEMPTED),  # died after mark_preempting()
        (KILLED, None, True, RunState.PREEMPTED),
        (0, "early_terminate: hyperband", False, RunState.STOPPED),  # whatever follows our own stop
        (PREEMPTED_EXIT_CODE, "sweep cancelled", False, RunState.STOPPED),  # our SIGTERM, not its machine's
        (KILLED, "sweep cancelled", True, RunState.STOPPED),
        (1, "agent interrupted", False, RunState.STOPPED),
    ],
)
def test_the_state_a_launch_ends_in(exit_code, stop_reason, preempting, state):
    assert final_state(exit_code, stop_reason, preempting) == state


def outcomes(*states: RunState | None) -> list[ClaimOutcome]:
    return [ClaimOutcome(f"run{i}", state, None, 1.0) for i, state in enumerate(states)]


F, C, OK = RunState.FAILED, RunState.CRASHED, RunState.FINISHED
NONE_FINISHED = f"{MAX_INITIAL_FAILURES} runs failed and none finished; see `lora-sweep runs` for their errors"


@pytest.mark.parametrize(
    "states, limit, reason",
    [
        ((), None, None),
        ((F,) * (MAX_INITIAL_FAILURES - 1), None, None),
        ((F,) * MAX_INITIAL_FAILURES, None, NONE_FINISHED),  # as `wandb agent`
        ((F, C, F, C, F), None, NONE_FINISHED),  # a crash is a failure
        ((OK,) + (F,) * MAX_INITIAL_FAILURES, None, None),  # one run finished: the runs can work
        ((RunState.PREEMPTED,) * 6, None, None),  # requeued to resume, not failed
        ((RunState.STOPPED,) * 6, None, None),
        ((F, F), 2, "2 consecutive failed runs"),
        ((OK, F, C), 2, "2 consecutive failed runs"),
        ((F, OK, F), 2, None),  # a finished run ends the streak
        ((F, RunState.STOPPED, F), 2, None),  # so does any run that did not fail
        ((F, None, F), 2, "2 consecutive failed runs"),  # a claim taken by another agent ended nothing
        ((None,) * 6, 2, None),
        ((F,) * MAX_INITIAL_FAILURES, 3, f"{MAX_INITIAL_FAILURES} consecutive failed runs"),  # the limit first
        ((F,) * 4, 10, None),
    ],
)
def test_when_the_agent_gives_up(states, limit, reason):
    assert give_up_reason(outcomes(*states), AgentOptions(max_consecutive_failed_runs=limit)) == reason


OBJECTIVE = Objective("score", "maximize")


@pytest.mark.parametrize(
    "outcome, line",
    [
        (ClaimOutcome("r1", OK, 0, 12.34), "agent: run r1 finished in 12.3s"),
        (ClaimOutcome("r1", OK, 0, 2.0, value=3.14159), "agent: run r1 finished in 2.0s, score=3.142"),
        (
            ClaimOutcome("r1", OK, 0, 2.0, value=3.0, warning="summary not read (gone)"),
            "agent: run r1 finished in 2.0s, score=3; warning: summary not read (gone)",
        ),
        (
            ClaimOutcome("r1", F, 3, 2.0, "boom at ['--x=1']"),
            "agent: run r1 failed in 2.0s (exit code 3): boom at ['--x=1']",
        ),
        (ClaimOutcome("r1", F, 3, 2.0), "agent: run r1 failed in 2.0s (exit code 3)"),
        (  # a program that never started has no exit code
            ClaimOutcome("r1", F, None, 0.0, "cannot launch the program: [Errno 13] Permission denied"),
            "agent: run r1 failed in 0.0s: cannot launch the program: [Errno 13] Permission denied",
        ),
        (ClaimOutcome("r1", C, KILLED, 5.0), "agent: run r1 crashed in 5.0s (exit code -9)"),
        (ClaimOutcome("r1", C, KILLED, 5.0, "Killed"), "agent: run r1 crashed in 5.0s (exit code -9): Killed"),
        (
            ClaimOutcome("r1", RunState.STOPPED, KILLED, 4.0, "early_terminate: hyperband", value=1.5),
            "agent: run r1 stopped in 4.0s (early_terminate: hyperband), score=1.5",
        ),
        (ClaimOutcome("r1", RunState.STOPPED, 0, 4.0), "agent: run r1 stopped in 4.0s"),
        (
            ClaimOutcome("r1", RunState.PENDING, -signal.SIGTERM, 1.0, "agent interrupted"),
            "agent: run r1 pending in 1.0s (agent interrupted); requeued",
        ),
        (
            ClaimOutcome("r1", RunState.PREEMPTED, PREEMPTED_EXIT_CODE, 9.0, value=2.0),
            "agent: run r1 preempted in 9.0s (exit code 143); requeued to resume, score=2",
        ),
        (ClaimOutcome("r1", None, None, 0.0, TAKEN_REASON), f"agent: run r1 taken in 0.0s ({TAKEN_REASON})"),
        (ClaimOutcome("r1", None, 0, 3.0), "agent: run r1 taken in 3.0s"),
    ],
)
def test_the_one_line_about_a_claim(outcome, line):
    assert describe_outcome(OBJECTIVE, outcome) == line


def test_a_second_sigint_kills_at_once_and_more_sigterms_do_not():
    from agent.local.runner import asks_to_kill
    from agent.signals import Arrival

    term, interrupt = (Arrival(signal.SIGTERM, 0.0, 0.0), Arrival(signal.SIGINT, 0.0, 0.0))
    assert not asks_to_kill([term])
    assert not asks_to_kill([term, term, term])  # Slurm's, then the supervisor's, then the batch shell's
    assert asks_to_kill([interrupt, interrupt])
    assert asks_to_kill([term, interrupt])
