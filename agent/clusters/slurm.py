"""`lora-sweep slurm`: a Slurm job array around `lora-sweep agent SWEEP --gpus all` (docs/cluster.md).

Only plain data here: the plan (built once from the command's options), the batch script's text,
the file system a local store sits on (read from /proc/self/mountinfo), and what `squeue` and
`sacct` print. Running Slurm's commands lives in agent/clusters/slurm_cli.py.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from agent.errors import UserError
from agent.fleet.field_options import option
from agent.records import safe_name

JOB_PREFIX = "lora-sweep"
SLURM_KILL_WAIT_S = 30
"""slurm.conf's KillWait default: SIGKILL this long after the SIGTERM of a requeue, a preemption or
the time limit, which reaches every process of the job at once (docs/cluster.md)."""
DEFAULT_GRACE_S = 60
"""`--signal=B:TERM@60`: Slurm checks on a timer and was seen to signal about 19 s late, so the batch
shell still gets its SIGTERM half a minute or more before the limit: room for the trial's SIGTERM
save (`preempt_grace_s`, 3 s by default) and for the agents to end before the limit's own SIGTERM."""
TIME_LIMIT = re.compile(r"(?:(?P<days>\d+)-)?(?P<a>\d+)(?::(?P<b>\d+))?(?::(?P<c>\d+))?")

NETWORK_FS = {"nfs", "nfs4", "lustre", "gpfs", "beegfs", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "9p", "afs"}
"""File systems SQLite's locks are not to be trusted on, besides every `fuse.*` one."""


class SlurmError(UserError):
    """The job cannot be planned or submitted as asked; the message is one line for the user."""


@dataclass(frozen=True)
class SlurmPlan:
    """What `lora-sweep slurm submit` asks Slurm for: one array task per agent group."""

    sweep_id: str
    time: str = option(help="Time limit of each task, as Slurm takes it: HH:MM:SS, MM or D-HH:MM:SS.", metavar="TIME")
    tasks: int = option(1, help="Array tasks, each one group of agents on its own allocation.", min=1)
    gpus_per_task: int = option(
        1, help="GPUs per task, one agent on each (0: a CPU task with one agent).", min=0, metavar="G"
    )
    partition: str | None = option(None, help="Slurm partition (sbatch --partition).")
    account: str | None = option(None, help="Slurm account to charge (sbatch --account).")
    node: str | None = option(
        None,
        help="Run every task on this one node (sbatch --nodelist): a local sweep's store then stays on one machine.",
    )
    cpus_per_task: int | None = option(None, help="CPUs per task (sbatch --cpus-per-task).", min=1)
    agents_per_gpu: int = option(1, help="Agents on each GPU of a task (lora-sweep agent --agents-per-gpu).", min=1)
    grace_s: int = option(
        DEFAULT_GRACE_S,
        help="Seconds before the time limit the batch shell gets SIGTERM (--signal=B:TERM@N), for the agents.",
        min=1,
    )
    sbatch_arg: tuple[str, ...] = option(
        (), help="One more sbatch option, as typed after #SBATCH (repeatable), such as --qos=low.", metavar="OPTION"
    )

    def __post_init__(self) -> None:
        seconds = time_limit_s(self.time)
        if seconds <= self.grace_s:
            raise SlurmError(
                f"--time {self.time} leaves nothing to run before the grace of {self.grace_s} s (--grace): "
                "give a longer time or a shorter grace"
            )
        if self.agents_per_gpu > 1 and not self.gpus_per_task:
            raise SlurmError("--agents-per-gpu needs GPUs: give --gpus-per-task 1 or more")
        for arg in self.sbatch_arg:
            if not arg.startswith("-") or "\n" in arg:
                raise SlurmError(f"--sbatch-arg {arg!r}: give one sbatch option as typed after #SBATCH, like --qos=low")

    @property
    def job_name(self) -> str:
        return job_name(self.sweep_id)

    @property
    def single_node(self) -> bool:
        """Every task runs on the same node: one task, or all of them pinned to --node."""
        return self.tasks == 1 or self.node is not None


def job_name(sweep_id: str) -> str:
    """The job's name, which `status` and `cancel` find it by: one per sweep."""
    return f"{JOB_PREFIX}-{safe_name(sweep_id)}"


def time_limit_s(value: str) -> int:
    """Slurm's time formats (sbatch --time): M, M:S, H:M:S, D-H, D-H:M, D-H:M:S."""
    match = TIME_LIMIT.fullmatch(value.strip())
    if match is None:
        raise SlurmError(f"--time {value!r}: give a Slurm time limit such as 02:00:00 (HH:MM:SS) or 1-00:00:00")
    days = int(match["days"] or 0)
    parts = [int(p) for p in (match["a"], match["b"], match["c"]) if p is not None]
    if match["days"] is not None:
        hours, minutes, seconds = (parts + [0, 0])[:3]
    elif len(parts) == 3:
        hours, minutes, seconds = parts
    else:
        hours, (minutes, seconds) = 0, (parts + [0])[:2]
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


# The batch script -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Launch:
    """How each task starts its agents, found on the submitting machine."""

    lora_sweep: str
    """The absolute path of this environment's `lora-sweep` (a venv works without activation)."""
    workdir: Path
    """The submit directory: the tasks run there, so runs' outputs and checkpoints land on its file system."""
    log_dir: Path
    """Beside the sweep's agent logs: the script, the job record and one output file per task."""
    store: Path | None
    """A local sweep's store, absolute; None for a W&B sweep."""


def sbatch_lines(plan: SlurmPlan, launch: Launch) -> list[str]:
    lines = [
        f"--job-name={plan.job_name}",
        f"--array=0-{plan.tasks - 1}",
        "--nodes=1",
        "--ntasks=1",
        f"--time={plan.time}",
        # The batch shell alone gets this SIGTERM; its trap passes it on (the time limit's own SIGTERM,
        # like a requeue's or a preemption's, reaches every process of the job at once).
        f"--signal=B:TERM@{plan.grace_s}",
        "--requeue",
        f"--chdir={launch.workdir}",
        f"--output={launch.log_dir / 'slurm-%A_%a.out'}",
    ]
    if plan.gpus_per_task:
        lines.append(f"--gres=gpu:{plan.gpus_per_task}")
    optional = {"partition": plan.partition, "account": plan.account, "nodelist": plan.node}
    lines += [f"--{name}={value}" for name, value in optional.items() if value]
    if plan.cpus_per_task:
        lines.append(f"--cpus-per-task={plan.cpus_per_task}")
    return lines + list(plan.sbatch_arg)


def agent_command(plan: SlurmPlan, launch: Launch) -> list[str]:
    argv = [launch.lora_sweep, "agent", plan.sweep_id]
    if launch.store is not None:
        argv += ["--store", str(launch.store)]
    # --gpus all reads CUDA_VISIBLE_DEVICES, which Slurm sets to the task's GPUs (--gres=gpu:G). A CPU
    # task names no GPU: one agent (supervised for a W&B sweep, in its own process for a local one).
    if plan.gpus_per_task:
        argv += ["--gpus", "all", "--log-dir", f"{launch.log_dir}/task-${{SLURM_ARRAY_TASK_ID}}"]
        if plan.agents_per_gpu > 1:
            argv += ["--agents-per-gpu", str(plan.agents_per_gpu)]
    return argv


def batch_script(plan: SlurmPlan, launch: Launch) -> str:
    """The text `sbatch` gets: the options as #SBATCH lines, then the agents under a forwarding trap."""
    header = "\n".join(f"#SBATCH {line}" for line in sbatch_lines(plan, launch))
    command = " ".join(quote_keeping_task_id(arg) for arg in agent_command(plan, launch))
    return f"""#!/bin/bash
# Written by `lora-sweep slurm submit` for sweep {plan.sweep_id}: one task of a job array per agent group.
{header}

# Slurm passes SIGTERM to this shell {plan.grace_s} s before the time limit (--signal=B:TERM@{plan.grace_s});
# bash runs a trap only once the command it waits for returns, so the agents run in the background,
# the trap passes the signal to them (their supervisor), and the second wait collects their exit
# code. A requeue, a preemption or the limit itself sends SIGTERM to every process at once: the
# trial checkpoints, is recorded preempted and is requeued in the sweep; Slurm requeues the task.
set -u
echo "lora-sweep: task ${{SLURM_ARRAY_TASK_ID}} of job ${{SLURM_ARRAY_JOB_ID}} on $(hostname -s)," \\
    "restart ${{SLURM_RESTART_COUNT:-0}}"
{command} &
agents=$!
signalled=0
trap 'signalled=1; echo "lora-sweep: SIGTERM: passing it to the agents"; kill -TERM "$agents" 2>/dev/null' TERM
wait "$agents"
code=$?
while [ "$signalled" = 1 ] && [ "$code" -gt 128 ]; do  # the wait the trap cut short: wait for the exit
    signalled=0
    wait "$agents"
    code=$?
done
echo "lora-sweep: agents exited $code"
exit "$code"
"""


def quote_keeping_task_id(arg: str) -> str:
    """Shell-quoted, except `${SLURM_ARRAY_TASK_ID}`, which the task's shell fills in."""
    marker = "${SLURM_ARRAY_TASK_ID}"
    if marker not in arg:
        return shlex.quote(arg)
    return '"${SLURM_ARRAY_TASK_ID}"'.join(shlex.quote(part) if part else "" for part in arg.split(marker))


def script_path(log_dir: Path, sweep_id: str) -> Path:
    return log_dir / f"{job_name(sweep_id)}.sbatch"


def record_path(log_dir: Path, sweep_id: str) -> Path:
    """Written at submit beside the script: the job id, which `status` and `cancel` read first."""
    return log_dir / f"{job_name(sweep_id)}.job.json"


def job_record(job_id: str, plan: SlurmPlan, script: Path) -> str:
    return json.dumps({"job_id": job_id, "job_name": plan.job_name, "sweep_id": plan.sweep_id, "script": str(script)})


def read_job_ids(path: Path) -> list[str]:
    """The job ids recorded by earlier submits of the sweep, oldest first (one JSON line each)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    ids = []
    for line in lines:
        try:
            ids.append(str(json.loads(line)["job_id"]))
        except (ValueError, KeyError, TypeError):
            continue  # a line a crash cut short: the job name still finds its job
    return ids


def parse_job_id(sbatch_stdout: str) -> str:
    """`sbatch --parsable` prints `JOBID` or `JOBID;CLUSTER`."""
    text = sbatch_stdout.strip().splitlines()[-1:] or [""]
    job_id = text[0].split(";")[0].strip()
    if not job_id.isdigit():
        raise SlurmError(f"sbatch printed no job id: {sbatch_stdout.strip()!r}")
    return job_id


# A local store on a network file system -------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    point: Path
    fs_type: str
    source: str


def parse_mountinfo(text: str) -> list[Mount]:
    """/proc/self/mountinfo: `id parent major:minor root point options [optional...] - type source super`."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        if len(fields) < dash + 3 or dash < 5:
            continue
        point = fields[4].encode().decode("unicode_escape")  # spaces are written \040
        mounts.append(Mount(Path(point), fields[dash + 1], fields[dash + 2]))
    return mounts


def mount_of(path: Path, mounts: Iterable[Mount]) -> Mount | None:
    """The mount `path` lies on: the longest mount point above it (the last one mounted, on a tie)."""
    best: Mount | None = None
    for mount in mounts:
        if path == mount.point or mount.point in path.parents:
            if best is None or len(mount.point.parts) >= len(best.point.parts):
                best = mount
    return best


def is_network_fs(fs_type: str) -> bool:
    return fs_type in NETWORK_FS or fs_type.startswith("fuse.") or fs_type == "fuse"


def check_store_placement(plan: SlurmPlan, store: Path | None, mountinfo: str) -> None:
    """A local sweep's SQLite store must not be shared between nodes over a network file system
    (SQLite's locks are unreliable there): several nodes share a sweep through W&B."""
    if store is None or plan.single_node:
        return
    mount = mount_of(store, parse_mountinfo(mountinfo))
    if mount is not None and is_network_fs(mount.fs_type):
        raise SlurmError(
            f"the local store {store} is on {mount.fs_type} ({mount.point}), and {plan.tasks} tasks may land on "
            "several nodes: SQLite's locks are unreliable there. Share the sweep through W&B "
            "(lora-sweep sweep SWEEP_YAML, then submit entity/project/id), or keep every task on one node "
            "with --node NAME"
        )


# What squeue and sacct say --------------------------------------------------------------------

SQUEUE_FORMAT = "%i|%T|%M|%l|%N|%r"
"""`squeue --noheader --format`: job id (array task as JOB_TASK), state, time used, limit, nodes, reason."""
SACCT_FORMAT = "JobID,State,ExitCode,Elapsed,NodeList"


@dataclass(frozen=True)
class TaskState:
    job_id: str
    """`JOB_TASK` for an array task, `JOB_[0-3]` for tasks not yet started."""
    state: str
    elapsed: str
    nodes: str
    detail: str
    """squeue's reason (why pending), or sacct's exit code."""

    def line(self) -> str:
        where = f" on {self.nodes}" if self.nodes and self.nodes not in ("(null)", "None assigned") else ""
        detail = f" ({self.detail})" if self.detail and self.detail not in ("None", "0:0") else ""
        return f"{self.job_id:<14} {self.state:<11} {self.elapsed:>10}{where}{detail}"


def parse_squeue(text: str) -> list[TaskState]:
    out = []
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 6:
            job_id, state, used, _limit, nodes, reason = parts
            out.append(TaskState(job_id, state, used, nodes, reason))
    return out


def parse_sacct(text: str) -> list[TaskState]:
    """`sacct --parsable2 --noheader --format=SACCT_FORMAT`; the job steps (`.batch`, `.extern`) are left out."""
    out = []
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 5 and "." not in parts[0]:
            job_id, state, exit_code, elapsed, nodes = parts
            out.append(TaskState(job_id, state.split()[0] if state else state, elapsed, nodes, exit_code))
    return out
