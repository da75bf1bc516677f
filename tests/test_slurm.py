"""`lora-sweep slurm` against a real single-node Slurm (tests/slurm_cluster.py), with local sweeps.

A grid finishes every point once over two array tasks; `scontrol requeue` mid-run ends the run
preempted with a checkpoint at the SIGTERM, and the requeued task resumes it to the result of a run
never stopped; a task that reaches its time limit ends its run preempted; `slurm cancel` leaves no
process behind. Skipped, with the reason, where Slurm is not installed or cannot start.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from helpers import (
    REPO,
    agent_env,
    create_sweep,
    logged_points,
    marked_processes,
    record_args_sweep,
    runs_of,
    wait_for,
    wait_until_no_marked_processes,
)
from slurm_cluster import NODE, missing_binaries, slurm_cluster
from test_local_preemption import assert_resumed_as_never_stopped, straight, trial_sweep, wait_past_a_checkpoint

from agent.trial.checkpoint import read_launches

__all__ = ["straight"]  # the uninterrupted reference run, a fixture of test_local_preemption.py

pytestmark = [pytest.mark.slurm, pytest.mark.e2e, pytest.mark.usefixtures("no_leaked_processes")]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    missing = missing_binaries()
    if missing:
        pytest.skip(f"Slurm is not installed ({', '.join(missing)} missing): apt-get install slurmctld slurmd munge")
    if os.geteuid() != 0:
        pytest.skip("the test Slurm's slurmd runs as root")
    try:
        with slurm_cluster(tmp_path_factory.mktemp("slurm")) as cluster:
            yield cluster
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        if "cluster" in locals():
            raise
        pytest.skip(f"the test Slurm did not start: {error}")


def lora_sweep(slurm, cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", *args],
        cwd=cwd,
        env=agent_env(PYTHONPATH=str(REPO), SLURM_CONF=slurm.env["SLURM_CONF"], PATH=slurm.env["PATH"]),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def submit(slurm, cwd: Path, sweep_id: str, *flags: str) -> str:
    store = ("--store", str(cwd / "sweeps.db"))
    done = lora_sweep(slurm, cwd, "slurm", "submit", sweep_id, *store, "--node", NODE, *flags)
    return done.stdout.strip()


def job_tasks(slurm, job_id: str) -> list[str]:
    out = slurm.run("squeue", "--noheader", "--array", "--jobs", job_id, "--format=%i %T", check=False).stdout
    return [line for line in out.splitlines() if line.strip()]


def wait_job_gone(slurm, job_id: str, timeout_s: float) -> None:
    wait_for(lambda: not job_tasks(slurm, job_id), timeout_s, f"job {job_id} to end", interval_s=0.5)


def task_output(cwd: Path, sweep_id: str) -> str:
    logs = sorted((cwd / ".lora-sweep" / "logs" / sweep_id).rglob("*.out")) + sorted(
        (cwd / ".lora-sweep" / "logs" / sweep_id).rglob("*.log")
    )
    return "\n".join(f"== {path.name}\n{path.read_text(errors='replace')[-4000:]}" for path in logs)


def test_two_array_tasks_finish_every_grid_point_once(slurm, tmp_path):
    log = tmp_path / "points.log"
    sweep_id = create_sweep(tmp_path / "sweeps.db", record_args_sweep(log, list(range(6)), sleep=1.0))
    started = time.monotonic()
    job_id = submit(slurm, tmp_path, sweep_id, "--tasks", "2", "--gpus-per-task", "1", "--time", "00:05:00")
    assert job_id.isdigit()
    script = (tmp_path / ".lora-sweep" / "logs" / sweep_id / f"lora-sweep-{sweep_id}.sbatch").read_text()
    assert "#SBATCH --array=0-1" in script
    wait_for(lambda: len(logged_points(log, "start")) >= 1, 60, "a first run to start", interval_s=0.5)
    status = lora_sweep(slurm, tmp_path, "slurm", "status", sweep_id).stdout
    assert re.search(rf"{job_id}_\d+\s+RUNNING", status), status
    wait_job_gone(slurm, job_id, 120)
    assert sorted(logged_points(log)) == list(range(6)), task_output(tmp_path, sweep_id)
    runs = runs_of(tmp_path / "sweeps.db", sweep_id)
    assert sorted(run.state for run in runs) == ["finished"] * 6
    gpus = {line.split('"CUDA_VISIBLE_DEVICES": ')[1].split(",")[0] for line in log.read_text().splitlines()}
    assert gpus == {'"0"', '"1"'}  # each task's agent on the fake GPU Slurm gave it
    print(f"2 tasks, 6 points, each once, in {time.monotonic() - started:.1f} s")


def test_a_requeued_task_checkpoints_is_recorded_preempted_and_resumes(slurm, straight, dialogues, tmp_path):
    sweep_id = create_sweep(tmp_path / "sweeps.db", trial_sweep(tmp_path, dialogues, preempt_grace_s=30.0))
    job_id = submit(slurm, tmp_path, sweep_id, "--gpus-per-task", "1", "--time", "00:10:00")
    run_id = wait_past_a_checkpoint(tmp_path, sweep_id, timeout_s=180)
    requeued = time.monotonic()
    slurm.run("scontrol", "requeue", f"{job_id}_0")
    run = wait_for(
        lambda: (r := runs_of(tmp_path / "sweeps.db", sweep_id)[0]).state != "running" and r,
        60,
        "the run to end its first launch",
        interval_s=0.2,
    )
    assert run.state in ("preempted", "running", "finished") and run.state == "preempted", task_output(
        tmp_path, sweep_id
    )
    launches = read_launches(tmp_path / "volume" / run_id)
    assert [a["outcome"] for a in launches][:1] == ["preempted"]
    saved = re.search(r"preempted: checkpoint at step (\d+) written", task_output(tmp_path, sweep_id))
    assert saved, task_output(tmp_path, sweep_id)
    wait_job_gone(slurm, job_id, 240)
    run = runs_of(tmp_path / "sweeps.db", sweep_id)[0]
    assert (run.run_id, run.state, run.claims) == (run_id, "finished", 2), task_output(tmp_path, sweep_id)
    assert run.summary["launch/resumed_from_step"] == int(saved[1])
    assert [a["outcome"] for a in read_launches(tmp_path / "volume" / run_id)] == ["preempted", "finished"]
    assert_resumed_as_never_stopped(run, straight, tmp_path, int(saved[1]))
    print(f"requeued at step {saved[1]}: resumed and finished {time.monotonic() - requeued:.0f} s after the requeue")


def elapsed_s(slurm, job_id: str) -> int:
    """How long the job's first task has run, from squeue's `[days-][hours:]minutes:seconds`."""
    used = slurm.run("squeue", "--noheader", "--array", "--jobs", f"{job_id}_0", "--format=%M").stdout.strip()
    days, _, clock = used.rpartition("-")
    seconds = 0
    for part in clock.split(":"):
        seconds = seconds * 60 + int(part)
    return seconds + 86400 * int(days or 0)


def test_a_task_at_its_time_limit_ends_its_run_preempted(slurm, dialogues, tmp_path):
    # The limit is brought forward once training is past a periodic checkpoint, so the time limit's
    # SIGTERM always finds a trial mid-training, however long its start took on a busy machine.
    config = trial_sweep(tmp_path, dialogues, preempt_grace_s=30.0, max_steps=4000)  # never done in the test
    sweep_id = create_sweep(tmp_path / "sweeps.db", config)
    job_id = submit(slurm, tmp_path, sweep_id, "--gpus-per-task", "1", "--time", "00:10:00", "--grace", "45")
    wait_past_a_checkpoint(tmp_path, sweep_id, timeout_s=180)
    limit = elapsed_s(slurm, job_id) + 50  # the grace's SIGTERM about 5 s from now (Slurm checks on a timer)
    slurm.run("scontrol", "update", f"JobId={job_id}_0", f"TimeLimit={limit // 60}:{limit % 60:02d}")
    shortened = time.monotonic()
    wait_job_gone(slurm, job_id, 150)
    (run,) = runs_of(tmp_path / "sweeps.db", sweep_id)
    out = task_output(tmp_path, sweep_id)
    assert "SIGTERM: passing it to the agents" in out, out
    assert run.state == "preempted", out
    assert [a["outcome"] for a in read_launches(tmp_path / "volume" / run.run_id)] == ["preempted"]
    assert re.search(r"preempted: checkpoint at step \d+ written", out), out
    print(f"time limit: preempted with a checkpoint, {time.monotonic() - shortened:.0f} s after the limit moved")


def sweep_processes(sweep_id: str) -> list[str]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(sweep_id in part for part in process.info["cmdline"] or []):
            found.append(" ".join(process.info["cmdline"]))
    return found


def test_cancel_leaves_no_process_behind_and_sbatch_errors_are_one_line(slurm, tmp_path):
    log = tmp_path / "points.log"
    sweep_id = create_sweep(tmp_path / "sweeps.db", record_args_sweep(log, list(range(4)), sleep=120.0))
    job_id = submit(slurm, tmp_path, sweep_id, "--tasks", "2", "--gpus-per-task", "0", "--time", "00:05:00")
    wait_for(lambda: len(logged_points(log, "start")) == 2, 60, "both tasks' runs to start", interval_s=0.5)
    assert sweep_processes(sweep_id)
    lora_sweep(slurm, tmp_path, "slurm", "cancel", sweep_id)
    wait_job_gone(slurm, job_id, 60)
    wait_for(lambda: not sweep_processes(sweep_id), 30, "the sweep's processes to end", interval_s=0.2)
    wait_until_no_marked_processes()
    assert marked_processes() == []
    assert "no Slurm job named" in lora_sweep(slurm, tmp_path, "slurm", "status", sweep_id).stdout

    refused = lora_sweep(slurm, tmp_path, "slurm", "submit", sweep_id, "--store", str(tmp_path / "sweeps.db"),
                         "--time", "10", "--partition", "nope", check=False)  # fmt: skip
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "Error: sbatch: error: invalid partition specified: nope; "
        "sbatch: error: Batch job submission failed: Invalid partition name specified"
    ]
