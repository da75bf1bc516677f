"""`lora-sweep slurm submit|status|cancel`: a Slurm job array of agents, found again by its name.

The environment and the machine (PATH, /proc/self/mountinfo, the working directory) are read here,
at the entry point; the plan and the script are agent/clusters/slurm.py's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click

from agent.clusters.slurm import (
    SACCT_FORMAT,
    SQUEUE_FORMAT,
    Launch,
    SlurmError,
    SlurmPlan,
    batch_script,
    check_store_placement,
    job_name,
    job_record,
    parse_job_id,
    parse_sacct,
    parse_squeue,
    read_job_ids,
    record_path,
    script_path,
)
from agent.fleet.agents import default_log_dir
from agent.fleet.field_options import field_options, from_params
from agent.local.cli import STORE_OPTION
from agent.records import is_wandb_path

MOUNTINFO = Path("/proc/self/mountinfo")


@click.group("slurm")
def slurm_group() -> None:
    """A Slurm job array of agents: one task per agent group, each `lora-sweep agent SWEEP --gpus all`.

    \b
    Example:
      lora-sweep slurm submit me/lora/8f3k2x1q --tasks 4 --gpus-per-task 2 --time 04:00:00 --dry-run
      lora-sweep slurm status me/lora/8f3k2x1q
      lora-sweep slurm cancel me/lora/8f3k2x1q

    Each task checkpoints and is requeued on a preemption or at its time limit, as a reclaimed pod
    is. Several nodes share a W&B sweep; a local sweep stays on one node (--tasks 1, or --node).
    See docs/cluster.md.
    """


def slurm_command(name: str, env: dict[str, str]) -> str:
    found = shutil.which(name, path=env.get("PATH"))
    if found is None:
        raise SlurmError(
            f"`{name}` is not on PATH: run this on a Slurm login node (or use --dry-run to see the script)"
        )
    return found


def lora_sweep_path() -> str:
    """This environment's own `lora-sweep`, absolute: a task runs it without activating the venv."""
    beside = Path(sys.executable).parent / "lora-sweep"
    return str(beside if beside.exists() else shutil.which("lora-sweep") or beside)


@slurm_group.command("submit")
@click.argument("sweep_id")
@field_options(SlurmPlan)
@STORE_OPTION
@click.option("--dry-run", is_flag=True, help="Print the batch script; submit nothing (needs no Slurm).")
def slurm_submit_command(sweep_id: str, store_path, dry_run: bool, **params) -> None:
    """Submit a job array of TASKS tasks that each run `lora-sweep agent SWEEP_ID --gpus all`.

    The batch script is written beside the sweep's agent logs (.lora-sweep/logs/<sweep>/), with
    `--signal=B:TERM@GRACE` and `--requeue`: the batch shell passes the time limit's early SIGTERM
    to the agents, and a requeue or a preemption checkpoints the run and requeues it in the sweep.
    The tasks run in this directory, so runs keep their outputs and checkpoints on its file system.

    \b
    Examples:
      lora-sweep slurm submit me/lora/8f3k2x1q --tasks 4 --gpus-per-task 2 --time 04:00:00 \\
          --partition gpu --account myproj --sbatch-arg=--qos=low --dry-run
      lora-sweep slurm submit 3k9x2abc --tasks 2 --gpus-per-task 1 --time 1:00:00 --node gpu07
    """
    plan = SlurmPlan(sweep_id=sweep_id, **from_params(SlurmPlan, params))
    env = dict(os.environ)
    workdir = Path.cwd().resolve()
    store = None if is_wandb_path(sweep_id) else local_store(sweep_id, store_path)
    if store is not None:
        check_store_placement(plan, store, MOUNTINFO.read_text() if MOUNTINFO.exists() else "")
        if not plan.single_node:
            click.echo(f"note: a local sweep's tasks must all run on this machine's node ({store} is here)", err=True)
    log_dir = (workdir / default_log_dir(sweep_id)).resolve()
    launch = Launch(lora_sweep_path(), workdir, log_dir, store)
    script = batch_script(plan, launch)
    if dry_run:
        click.echo(script, nl=False)
        return
    sbatch = slurm_command("sbatch", env)
    path = script_path(log_dir, sweep_id)
    log_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(script)
    done = subprocess.run([sbatch, "--parsable", str(path)], capture_output=True, text=True, env=env, timeout=120)
    if done.returncode != 0:
        raise SlurmError(one_message(done.stderr or done.stdout) or f"sbatch exited {done.returncode}")
    job_id = parse_job_id(done.stdout)
    with record_path(log_dir, sweep_id).open("a") as record:
        record.write(job_record(job_id, plan, path) + "\n")
    click.echo(f"submitted job {job_id} ({plan.tasks} task(s), {plan.job_name}); script {path}", err=True)
    click.echo(job_id)


def local_store(sweep_id: str, store_path: str | None) -> Path:
    from agent.local.store import open_store

    store = open_store(store_path)
    try:
        store.sweep_record(sweep_id)  # an unknown id is one line here, not one per task
        return Path(store.path).resolve()
    finally:
        store.close()


def one_message(text: str) -> str:
    """sbatch's own words, unchanged, on one line (it prints `sbatch: error: ...`)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()] or lines
    return "; ".join(errors)


def job_ids(sweep_id: str) -> list[str]:
    """The jobs submitted for the sweep from this directory (the record beside the script)."""
    return read_job_ids(record_path((Path.cwd() / default_log_dir(sweep_id)).resolve(), sweep_id))


@slurm_group.command("status")
@click.argument("sweep_id")
def slurm_status_command(sweep_id: str) -> None:
    """The tasks of SWEEP_ID's jobs: pending and running ones from squeue, ended ones from sacct.

    \b
    Example:
      lora-sweep slurm status me/lora/8f3k2x1q
    """
    env = dict(os.environ)
    name = job_name(sweep_id)
    squeue = slurm_command("squeue", env)
    live = run_slurm([squeue, "--noheader", "--array", f"--name={name}", f"--format={SQUEUE_FORMAT}"], env)
    tasks = parse_squeue(live)
    sacct = shutil.which("sacct", path=env.get("PATH"))
    ids = job_ids(sweep_id)
    if sacct and ids:
        done = subprocess.run(
            [sacct, "--noheader", "--parsable2", "--jobs", ",".join(ids), f"--format={SACCT_FORMAT}"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        if done.returncode == 0:  # no accounting storage configured: squeue's view alone
            running = {task.job_id for task in tasks}
            tasks += [task for task in parse_sacct(done.stdout) if task.job_id not in running]
    if not tasks:
        click.echo(f"no Slurm job named {name}")
        return
    for task in tasks:
        click.echo(task.line())


@slurm_group.command("cancel")
@click.argument("sweep_id")
def slurm_cancel_command(sweep_id: str) -> None:
    """Cancel every task of SWEEP_ID's jobs (scancel --name): they are signalled as at a time limit.

    \b
    Example:
      lora-sweep slurm cancel me/lora/8f3k2x1q
    """
    env = dict(os.environ)
    scancel = slurm_command("scancel", env)
    name = job_name(sweep_id)
    user = env.get("USER") or env.get("LOGNAME")
    run_slurm([scancel, f"--name={name}", *([f"--user={user}"] if user else [])], env)
    click.echo(f"cancelled the jobs named {name}")


def run_slurm(argv: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    if done.returncode != 0:
        raise SlurmError(one_message(done.stderr or done.stdout) or f"{Path(argv[0]).name} exited {done.returncode}")
    return done.stdout
