"""The store's write rule, kept by the code: every change goes through `with store.write() as tx:`,
one transaction at a time per store, and each change that names a sweep, a run or a claim says in
its own error when that is not there. Tables over every mutator, in process, on real SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.local.store import (
    Claim,
    RunNotQueued,
    RunTaken,
    Store,
    StoreError,
    Transaction,
    TransactionError,
    UnknownRun,
    UnknownSweep,
)
from agent.records import RunState, SweepState

GRID = {"method": "grid", "parameters": {"a": {"values": [1, 2]}}}


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "sweeps.db")
    yield store
    store.close()


@pytest.fixture
def run(store):
    """A running run of a new sweep, on its first claim."""
    with store.write() as tx:
        sweep_id = tx.create_sweep(GRID, None, None)
        return tx.add_run(sweep_id, {"a": 1}, "agent-1")


# Each change a transaction can make, given the sweep id and the claim it names.
SWEEP_CHANGES = {
    "create_sweep": lambda tx, sweep_id: tx.create_sweep(GRID, None, None),
    "set_sweep_state": lambda tx, sweep_id: tx.set_sweep_state(sweep_id, SweepState.PAUSED),
    "add_run": lambda tx, sweep_id: tx.add_run(sweep_id, {"a": 2}, "agent-2"),
}
RUN_CHANGES = {
    "claim_pending": lambda tx, claim: tx.claim_pending(claim.run_id, "agent-2"),
    "replace_summary": lambda tx, claim: tx.replace_summary(claim.run_id, {"score": 1}),
    "record_run_log": lambda tx, claim: tx.record_run_log(claim, Path("/wandb/offline-run-x")),
    "set_pid": lambda tx, claim: tx.set_pid(claim, 4242),
    "beat": lambda tx, claim: tx.beat(claim),
    "append_history": lambda tx, claim: tx.append_history(claim, [{"score": 1.0}]),
    "finish_run": lambda tx, claim: tx.finish_run(claim, RunState.FINISHED, 0, {"score": 1}, None),
    "requeue": lambda tx, claim: tx.requeue(claim),
    "preempt": lambda tx, claim: tx.preempt(claim, 143, {}, None),
}
CLAIM_CHANGES = {
    name: change for name, change in RUN_CHANGES.items() if name not in ("claim_pending", "replace_summary")
}
"""The changes fenced by their claim: only the claim that owns a running run may make them."""


def change(name: str, tx: Transaction, run) -> object:
    if name in SWEEP_CHANGES:
        return SWEEP_CHANGES[name](tx, run.sweep_id)
    return RUN_CHANGES[name](tx, run.claim)


def test_every_change_is_the_transactions_and_none_is_the_stores():
    mutators = {name for name in vars(Transaction) if not name.startswith("_")}
    assert mutators == set(SWEEP_CHANGES) | set(RUN_CHANGES)  # a new mutator joins these tables
    assert not [name for name in mutators if hasattr(Store, name)]


@pytest.mark.parametrize("name", [*SWEEP_CHANGES, *RUN_CHANGES])
def test_a_transaction_kept_past_its_block_changes_nothing(store, run, name):
    with store.write() as tx:
        pass
    before = (store.sweep(run.sweep_id), store.runs(run.sweep_id))
    with pytest.raises(TransactionError, match="has ended"):
        change(name, tx, run)
    assert (store.sweep(run.sweep_id), store.runs(run.sweep_id)) == before


def test_a_write_inside_a_write_is_our_own_error_and_the_outer_one_goes_on(store, run):
    with store.write() as tx:
        tx.set_pid(run.claim, 4242)
        with pytest.raises(TransactionError, match="already open"):
            with store.write():
                pass
        tx.beat(run.claim)  # the outer transaction is still open, and still ours
    assert store.run(run.run_id).pid == 4242
    with store.write() as tx:  # and once it is over, the next one opens
        tx.set_pid(run.claim, 7)
    assert store.run(run.run_id).pid == 7


def test_a_write_that_raises_changes_nothing(store, run):
    with pytest.raises(RuntimeError, match="a fault"), store.write() as tx:
        tx.set_pid(run.claim, 4242)
        raise RuntimeError("a fault inside the block")
    assert store.run(run.run_id).pid is None


@pytest.mark.parametrize("name", RUN_CHANGES)
def test_an_unknown_run_id_is_unknown_run_for_every_change_that_names_one(store, run, name):
    with store.write() as tx, pytest.raises(UnknownRun, match="no run 'nosuch'") as raised:
        RUN_CHANGES[name](tx, Claim("nosuch", 1))
    assert isinstance(raised.value, LookupError) and isinstance(raised.value, StoreError)
    assert store.runs(run.sweep_id) == [store.run(run.run_id)]


@pytest.mark.parametrize("name", ["set_sweep_state", "add_run"])
def test_an_unknown_sweep_id_is_unknown_sweep_for_every_change_that_names_one(store, run, name):
    with store.write() as tx, pytest.raises(UnknownSweep, match="no local sweep 'nosuch'"):
        SWEEP_CHANGES[name](tx, "nosuch")
    assert store.runs("nosuch") == []


def test_reading_an_unknown_run_is_unknown_run(store):
    with pytest.raises(UnknownRun, match="no run 'nosuch'"):
        store.run("nosuch")


@pytest.mark.parametrize("name", CLAIM_CHANGES)
def test_a_claim_that_no_longer_owns_its_run_changes_nothing(store, run, name):
    with store.write() as tx:
        tx.requeue(run.claim)
        again = tx.claim_pending(run.run_id, "agent-2")  # the run's second claim owns it now
    with store.write() as tx, pytest.raises(RunTaken, match=f"run {run.run_id} was requeued"):
        CLAIM_CHANGES[name](tx, run.claim)
    assert store.run(run.run_id) == again


@pytest.mark.parametrize(
    "state, queued",
    [
        (RunState.PENDING, True),
        (RunState.PREEMPTED, True),
        (RunState.RUNNING, False),
        (RunState.FINISHED, False),
        (RunState.FAILED, False),
        (RunState.CRASHED, False),
        (RunState.STOPPED, False),
    ],
)
def test_claim_pending_takes_a_queued_run_and_refuses_any_other(store, run, state, queued):
    """A run held by another agent is never taken from it, nor an ended run reopened: RunNotQueued,
    with the run as it was."""
    with store.write() as tx:
        if state == RunState.PENDING:
            tx.requeue(run.claim)
        elif state == RunState.PREEMPTED:
            tx.preempt(run.claim, 143, {}, None)
        elif state != RunState.RUNNING:
            tx.finish_run(run.claim, state, 1, {}, None)
    before = store.run(run.run_id)
    with store.write() as tx:
        if queued:
            taken = tx.claim_pending(run.run_id, "agent-2")
        else:
            with pytest.raises(RunNotQueued, match=f"run {run.run_id} is {state}, not queued"):
                tx.claim_pending(run.run_id, "agent-2")
    if queued:
        assert (taken.state, taken.claims, taken.agent_id) == (RunState.RUNNING, 2, "agent-2")
    else:
        assert store.run(run.run_id) == before
