"""Preemption under the local controller: real agents (`python -m agent.cli agent`), the real trial
program on the tiny model, real signals. A run stopped by its machine is recorded `preempted`,
queued again under its own id, and resumed from its checkpoint by the next launch; its stored
curve continues, and it ends as a run never stopped would have.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO, adapter, agent_env, assert_same_weights, create_sweep, runs_of, wait_for

from agent.local.store import Store
from agent.records import LOSS_KEY, STEP_KEY
from agent.trial.checkpoint import COMPLETE_MARKER, read_launches

MAX_STEPS = 40

pytestmark = pytest.mark.usefixtures("no_leaked_processes")


def trial_sweep(cwd: Path, dataset: Path, **extra) -> dict:
    """One grid point of the real trial program, every step logged so steps lost are counted."""
    fixed = {
        "model_name_or_path": "builtin:tiny-llama",
        "dataset": str(dataset),
        "max_steps": MAX_STEPS,
        "eval_steps": 10,
        "eval_subset_size": 8,
        "max_new_tokens": 8,
        # Steps long enough that the test sees the run between two checkpoints (rows reach the store
        # about a second after they are logged) however quiet the machine is.
        "per_device_train_batch_size": 16,
        "learning_rate": 1e-3,
        "logging_steps": 1,
        "seed": 7,
        "output_dir": str(cwd / "outputs"),
        "checkpoint_dir": str(cwd / "volume"),
        **extra,
    }
    return {
        "method": "grid",
        "program": str(REPO / "agent" / "train.py"),
        "metric": {"name": "eval/rougeL", "goal": "maximize"},
        "parameters": {name: {"value": value} for name, value in fixed.items()},
    }


def start_agent(sweep_id: str, cwd: Path, *flags: str) -> subprocess.Popen:
    """An agent whose output (its programs' too) goes to a file the test can read as it grows."""
    log = cwd / f"agent-{len(list(cwd.glob('agent-*.log')))}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "agent", sweep_id, "--store", str(cwd / "sweeps.db"), *flags],
            cwd=cwd,
            env=agent_env(PYTHONPATH=str(REPO)),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    process.log = log
    return process


def finish(agent: subprocess.Popen, timeout: float = 600) -> str:
    agent.wait(timeout=timeout)
    return agent.log.read_text()


def steps_done(agent: subprocess.Popen) -> int:
    """How far the program's progress bar got, in the agent's output (rows a killed run had not yet
    handed to W&B are not in its log)."""
    done = re.findall(rf"(\d+)/{MAX_STEPS} \[", agent.log.read_text())
    return int(done[-1]) if done else 0


def only_run(cwd: Path, sweep_id: str):
    (run,) = runs_of(cwd / "sweeps.db", sweep_id)
    return run


def newest_checkpoint(cwd: Path, run_id: str) -> int:
    """The step of the run's newest complete checkpoint (0: none yet)."""
    done = [
        int(path.parent.name.split("-")[1])
        for path in (cwd / "volume" / run_id).glob(f"checkpoint-*/{COMPLETE_MARKER}")
    ]
    return max(done, default=0)


def wait_past_a_checkpoint(
    cwd: Path, sweep_id: str, agent: subprocess.Popen | None = None, timeout_s: float = 300
) -> str:
    """The run's id, once it has a periodic checkpoint, at most at step 20, and the store holds
    two steps past it (steps a kill would lose). `agent`, when the test started it, must still run."""

    def ready():
        assert agent is None or agent.poll() is None, agent.log.read_text()[-3000:]
        runs = runs_of(cwd / "sweeps.db", sweep_id)
        if not runs:
            return None
        saved = newest_checkpoint(cwd, runs[0].run_id)
        assert saved <= 20, "the run got too far before the test could stop it"
        return runs[0].run_id if saved and max(train_steps(runs[0]), default=0) >= saved + 2 else None

    return wait_for(ready, timeout_s, "steps past a periodic checkpoint", interval_s=0.2)


def train_steps(run) -> list[int]:
    return [row[STEP_KEY] for row in run.history if LOSS_KEY in row]


def eval_points(run) -> dict[int, float]:
    return {row[STEP_KEY]: row["eval/rougeL"] for row in run.history if "eval/rougeL" in row}


@pytest.fixture(scope="module")
def straight(tiny_model_dir, dialogues, tmp_path_factory) -> dict:
    """The reference: the same parameters under an agent, never stopped."""
    cwd = tmp_path_factory.mktemp("straight")
    sweep_id = create_sweep(cwd / "sweeps.db", trial_sweep(cwd, dialogues))
    started = time.monotonic()
    out = finish(start_agent(sweep_id, cwd))
    run = only_run(cwd, sweep_id)
    assert run.state == "finished", out[-3000:]
    return {
        "run": run,
        "best": adapter(cwd / "outputs" / run.run_id / "best_adapter"),
        "last": adapter(cwd / "volume" / run.run_id / f"checkpoint-{MAX_STEPS}"),
        "seconds": time.monotonic() - started,
    }


def assert_continued_as_never_stopped(run, straight: dict, cwd: Path) -> None:
    steps = train_steps(run)
    assert steps == list(range(1, MAX_STEPS + 1))  # one row per step: never back to 0, no duplicate
    assert eval_points(run) == eval_points(straight["run"])  # the same curve, point for point
    assert run.summary["eval/rougeL"] == straight["run"].summary["eval/rougeL"]
    assert run.summary["final/rougeL"] == straight["run"].summary["final/rougeL"]
    assert_same_weights(adapter(cwd / "outputs" / run.run_id / "best_adapter"), straight["best"])
    assert_same_weights(adapter(cwd / "volume" / run.run_id / f"checkpoint-{MAX_STEPS}"), straight["last"])


@pytest.mark.e2e
def test_a_run_whose_program_gets_sigterm_is_preempted_requeued_and_resumed(straight, dialogues, tmp_path):
    # What is under test is the requeue and the resume from the SIGTERM's checkpoint. Whether a save fits
    # the grace is decided in test_preemption.py, and the pod's real 5 s budget in test_fleet_pod_script.py;
    # here the step in flight and the save get a grace that holds however busy the machine is.
    config = trial_sweep(tmp_path, dialogues, preempt_grace_s=60.0)
    sweep_id = create_sweep(tmp_path / "sweeps.db", config)
    started = time.monotonic()
    agent = start_agent(sweep_id, tmp_path)
    run_id = wait_past_a_checkpoint(tmp_path, sweep_id, agent)
    first = only_run(tmp_path, sweep_id)
    # The machine's SIGTERM reaches the program, not through the agent: the agent did not ask.
    subprocess.run(["kill", "-TERM", str(first.pid)], check=True)
    out = finish(agent)
    seconds = time.monotonic() - started
    assert agent.returncode == 0, out[-3000:]
    assert re.search(rf"run {run_id} preempted in [\d.]+s \(exit code 143\); requeued to resume", out), out[-3000:]

    run = only_run(tmp_path, sweep_id)
    assert (run.run_id, run.state, run.claims) == (run_id, "finished", 2)
    saved = re.search(r"preempted: checkpoint at step (\d+) written", out)
    assert saved, out[-3000:]
    assert run.summary["launch/resumed_from_step"] == int(saved[1])
    assert [a["outcome"] for a in read_launches(tmp_path / "volume" / run_id)] == ["preempted", "finished"]
    assert_continued_as_never_stopped(run, straight, tmp_path)
    print(
        f"SIGTERM at step {saved[1]}: 0 steps lost, final eval/rougeL {run.summary['eval/rougeL']}"
        f" equal to the uninterrupted run's; {seconds:.0f} s (uninterrupted: {straight['seconds']:.0f} s)"
    )


@pytest.mark.e2e
def test_a_killed_agents_run_is_requeued_by_heartbeat_and_resumes_from_its_last_checkpoint(
    straight, dialogues, tmp_path
):
    sweep_id = create_sweep(tmp_path / "sweeps.db", trial_sweep(tmp_path, dialogues))
    started = time.monotonic()
    doomed = start_agent(sweep_id, tmp_path)
    run_id = wait_past_a_checkpoint(tmp_path, sweep_id, doomed)
    doomed.send_signal(signal.SIGKILL)  # its program gets SIGKILL too (parent-death signal)
    doomed.wait()
    before = only_run(tmp_path, sweep_id)
    assert before.state == "running"  # nobody knows yet
    trained, saved = max(train_steps(before)), newest_checkpoint(tmp_path, run_id)
    lost = steps_done(doomed) - saved

    rescuer = start_agent(sweep_id, tmp_path, "--heartbeat-timeout", "10")
    out = finish(rescuer)
    seconds = time.monotonic() - started
    assert rescuer.returncode == 0, out[-3000:]
    run = only_run(tmp_path, sweep_id)
    assert (run.run_id, run.state, run.claims) == (run_id, "finished", 2)
    assert run.summary["launch/resumed_from_step"] == saved  # the last periodic checkpoint
    assert 0 <= lost < 10  # at most one eval interval lost
    assert_continued_as_never_stopped(run, straight, tmp_path)
    print(
        f"SIGKILL of the agent: {lost} steps lost, {trained - saved} of them stored (resumed at {saved}),"
        f" final eval/rougeL {run.summary['eval/rougeL']} equal to the uninterrupted run's; {seconds:.0f} s"
    )


@pytest.mark.e2e
def test_a_run_that_fails_on_every_launch_ends_failed_after_max_attempts(tiny_model_dir, dialogues, tmp_path):
    # A real failure on every launch: the adapter cannot be saved, because output_dir is a file.
    (tmp_path / "outputs").write_text("not a folder")
    config = trial_sweep(tmp_path, dialogues, max_steps=10, max_attempts=2)
    sweep_id = create_sweep(tmp_path / "sweeps.db", config)
    out = finish(start_agent(sweep_id, tmp_path))
    assert "preempted" in out  # the first failure was marked: requeued
    run = only_run(tmp_path, sweep_id)
    assert (run.state, run.claims, run.exit_code) == ("failed", 2, 1)
    reason = "failed on launch 2, the last of max_attempts=2: NotADirectoryError"
    assert run.summary["failure_reason"].startswith(reason)
    assert "every run of sweep" in out and "failed" in out


def test_a_resumed_claims_first_rows_replace_what_it_trains_again(tmp_path):
    from agent.local import controller

    store = Store(tmp_path / "sweeps.db")
    with store.write() as tx:
        sweep_id = tx.create_sweep({"method": "grid", "parameters": {"a": {"value": 1}}}, None, None)
    first = controller.claim_next_run(store, sweep_id, "one", 60).run
    rows = [{STEP_KEY: step, LOSS_KEY: 1.0 / step} for step in range(1, 14)]
    with store.write() as tx:
        tx.append_history(first.claim, rows[:10], first=True)
    with store.write() as tx:
        tx.append_history(first.claim, rows[10:], first=False)  # steps 11-13, then the machine is lost
    with store.write() as tx:
        tx.preempt(first.claim, 143, {"launch/outcome": "preempted"}, None)
    assert store.run(first.run_id).state == "preempted"

    second = controller.claim_next_run(store, sweep_id, "two", 60).run
    assert (second.run_id, second.claims, second.state) == (first.run_id, 2, "running")
    assert len(second.history) == 13  # kept until the new claim says where it took up
    with store.write() as tx:
        tx.append_history(second.claim, [{STEP_KEY: 11, LOSS_KEY: 0.5}], first=True)
    with store.write() as tx:
        tx.append_history(second.claim, [{STEP_KEY: 11, "eval/rougeL": 0.2}], first=False)
    assert [row[STEP_KEY] for row in store.run(first.run_id).history] == [*range(1, 11), 11, 11]
    assert store.run(first.run_id).history[10][LOSS_KEY] == 0.5

    # A program that logs no step starts its history over.
    with store.write() as tx:
        tx.requeue(second.claim)
    third = controller.claim_next_run(store, sweep_id, "three", 60).run
    with store.write() as tx:
        tx.append_history(third.claim, [{"score": 1.0}], first=True)
    assert store.run(first.run_id).history == [{"score": 1.0}]
    store.close()


def signal_every_process(root: subprocess.Popen) -> list[str]:
    """SIGCONT and SIGTERM to the process and every descendant at once, whatever its session: what
    Slurm does to a job on a requeue, a preemption or the time limit. Returns the names of those it
    signalled, read before the signals: wandb-core, for one, is gone as soon as it gets its own."""
    import psutil

    signalled = []
    for process in [psutil.Process(root.pid), *psutil.Process(root.pid).children(recursive=True)]:
        try:
            name = process.name()
            for signum in (signal.SIGCONT, signal.SIGTERM):
                process.send_signal(signum)
        except psutil.NoSuchProcess:
            continue
        signalled.append(name)
    return signalled


@pytest.mark.e2e
def test_a_sigterm_to_every_process_of_a_supervised_agent_is_a_preemption(straight, dialogues, tmp_path):
    # W&B's wandb-core service gets the SIGTERM too and dies at once: the run must still save its
    # checkpoint, be recorded preempted (not failed, not left running, not counted as a failed
    # launch), and resume from that checkpoint to the uninterrupted run's result.
    config = trial_sweep(tmp_path, dialogues, preempt_grace_s=60.0)
    sweep_id = create_sweep(tmp_path / "sweeps.db", config)
    agent = start_agent(sweep_id, tmp_path, "--gpus", "0")
    run_id = wait_past_a_checkpoint(tmp_path, sweep_id, agent)
    names = signal_every_process(agent)
    assert "wandb-core" in names, names
    out = finish(agent)
    run = only_run(tmp_path, sweep_id)
    assert (run.run_id, run.state) == (run_id, "preempted"), out[-3000:]
    saved = re.search(r"preempted: checkpoint at step (\d+) written", out)
    assert saved, out[-3000:]
    assert newest_checkpoint(tmp_path, run_id) == int(saved[1])
    assert [a["outcome"] for a in read_launches(tmp_path / "volume" / run_id)] == ["preempted"]

    out = finish(start_agent(sweep_id, tmp_path))
    run = only_run(tmp_path, sweep_id)
    assert (run.run_id, run.state, run.claims) == (run_id, "finished", 2), out[-3000:]
    assert run.summary["launch/resumed_from_step"] == int(saved[1])
    assert [a["outcome"] for a in read_launches(tmp_path / "volume" / run_id)] == ["preempted", "finished"]
    assert_resumed_as_never_stopped(run, straight, tmp_path, int(saved[1]))


def assert_resumed_as_never_stopped(run, straight: dict, cwd: Path, sigterm_step: int) -> None:
    """As `assert_continued_as_never_stopped`, except for the history rows W&B's service had not
    written when the same SIGTERM ended it: a few steps before the SIGTERM's checkpoint may lack a row."""
    steps = train_steps(run)
    assert steps == sorted(set(steps)) and steps[-1] == MAX_STEPS
    assert set(range(1, MAX_STEPS + 1)) - set(steps) <= set(range(1, sigterm_step + 1))
    assert eval_points(run).items() <= eval_points(straight["run"]).items()
    assert run.summary["eval/rougeL"] == straight["run"].summary["eval/rougeL"]
    assert run.summary["final/rougeL"] == straight["run"].summary["final/rougeL"]
    assert_same_weights(adapter(cwd / "outputs" / run.run_id / "best_adapter"), straight["best"])
    assert_same_weights(adapter(cwd / "volume" / run.run_id / f"checkpoint-{MAX_STEPS}"), straight["last"])
