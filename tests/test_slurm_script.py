"""`lora-sweep slurm`'s pure part, with no Slurm: the batch script, the plan's checks, the network
file system rule on a hand-made mountinfo, squeue and sacct parsing, and the CLI's dry run."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO, agent_env, create_sweep, record_args_sweep

from agent.clusters.slurm import (
    Launch,
    SlurmError,
    SlurmPlan,
    batch_script,
    check_store_placement,
    job_name,
    parse_job_id,
    parse_mountinfo,
    parse_sacct,
    parse_squeue,
    read_job_ids,
    time_limit_s,
)

LAUNCH = Launch("/opt/venv/bin/lora-sweep", Path("/home/me/work"), Path("/home/me/work/.lora-sweep/logs/s1"), None)


def script(**plan) -> str:
    return batch_script(SlurmPlan(**{"sweep_id": "me/lora/8f3k2x1q", "time": "02:00:00", **plan}), LAUNCH)


def test_the_script_is_an_array_with_a_term_grace_requeue_and_a_forwarding_trap():
    text = script(tasks=4, gpus_per_task=2, partition="gpu", account="proj", sbatch_arg=("--qos=low", "--mem=32G"))
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    sbatch = [line.removeprefix("#SBATCH ") for line in lines if line.startswith("#SBATCH ")]
    assert sbatch == [
        "--job-name=lora-sweep-me-lora-8f3k2x1q",
        "--array=0-3",
        "--nodes=1",
        "--ntasks=1",
        "--time=02:00:00",
        "--signal=B:TERM@60",
        "--requeue",
        "--chdir=/home/me/work",
        "--output=/home/me/work/.lora-sweep/logs/s1/slurm-%A_%a.out",
        "--gres=gpu:2",
        "--partition=gpu",
        "--account=proj",
        "--qos=low",
        "--mem=32G",
    ]
    # The agents in the background under the absolute lora-sweep, the trap passing TERM to them, and
    # a second wait for their real exit code.
    command = next(line for line in lines if line.startswith("/opt/venv/bin/lora-sweep "))
    assert command == (
        "/opt/venv/bin/lora-sweep agent me/lora/8f3k2x1q --gpus all --log-dir "
        '/home/me/work/.lora-sweep/logs/s1/task-"${SLURM_ARRAY_TASK_ID}" &'
    )
    assert "trap 'signalled=1; " in text and 'kill -TERM "$agents"' in text
    assert text.count('wait "$agents"') == 2 and text.rstrip().endswith('exit "$code"')


def test_the_script_runs_in_bash_and_passes_the_term_on(tmp_path):
    # The script itself, with a stand-in agent that records the SIGTERM it gets and exits 143.
    agent = tmp_path / "agent.sh"
    agent.write_text(f"#!/bin/bash\ntrap 'echo got TERM >> {tmp_path}/agent.out; exit 143' TERM\n"
                     f"echo started \"$@\" > {tmp_path}/agent.out\nwhile true; do sleep 0.1; done\n")  # fmt: skip
    agent.chmod(0o755)
    launch = Launch(str(agent), tmp_path, tmp_path / "logs", tmp_path / "sweeps.db")
    text = batch_script(SlurmPlan(sweep_id="s1", time="10", gpus_per_task=0), launch)
    (tmp_path / "job.sh").write_text(text)
    env = {"PATH": "/usr/bin:/bin", "SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_JOB_ID": "7"}
    job = subprocess.Popen(["bash", str(tmp_path / "job.sh")], env=env, stdout=subprocess.PIPE, text=True)
    out = tmp_path / "agent.out"
    deadline = time.monotonic() + 10
    while not (out.exists() and "started" in out.read_text()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    job.terminate()  # what --signal=B:TERM sends: the batch shell alone
    stdout, _ = job.communicate(timeout=10)
    assert job.returncode == 143
    assert out.read_text().splitlines() == [f"started agent s1 --store {tmp_path / 'sweeps.db'}", "got TERM"]
    assert "SIGTERM: passing it to the agents" in stdout and "agents exited 143" in stdout


def test_a_cpu_task_runs_one_agent_and_a_node_pins_every_task():
    text = script(gpus_per_task=0, node="gpu07", tasks=3)
    assert "--gres" not in text and "#SBATCH --nodelist=gpu07" in text
    assert "lora-sweep agent me/lora/8f3k2x1q &" in text


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("90", 5400), ("1:30", 90), ("02:00:00", 7200), ("1-00", 86400), ("1-02:03", 93780), ("2-00:00:01", 172801)],
)
def test_time_limits_in_slurms_formats(value, seconds):
    assert time_limit_s(value) == seconds


@pytest.mark.parametrize(
    ("plan", "words"),
    [
        ({"time": "2h"}, "give a Slurm time limit"),
        ({"time": "00:00:30"}, "leaves nothing to run before the grace of 60 s"),
        ({"time": "1:00:00", "sbatch_arg": ("qos=low",)}, "give one sbatch option"),
        ({"time": "1:00:00", "gpus_per_task": 0, "agents_per_gpu": 2}, "--agents-per-gpu needs GPUs"),
    ],
)
def test_a_plan_that_cannot_run_is_one_line(plan, words):
    with pytest.raises(SlurmError, match=words) as raised:
        SlurmPlan(sweep_id="s1", **plan)
    assert "\n" not in str(raised.value)


MOUNTINFO = r"""22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:35 / /home rw,relatime shared:20 - nfs4 fs1:/export/home rw,vers=4.2
41 22 0:36 / /scratch rw shared:21 - lustre 10.0.0.1@tcp:/scratch rw
42 40 8:2 / /home/me/local\040disk rw - xfs /dev/sdb1 rw
43 22 0:37 / /mnt/bucket rw - fuse.gcsfuse bucket rw
"""


def test_mountinfo_is_read_with_optional_fields_and_escaped_spaces():
    mounts = {str(m.point): m.fs_type for m in parse_mountinfo(MOUNTINFO)}
    assert mounts == {"/": "ext4", "/home": "nfs4", "/scratch": "lustre", "/home/me/local disk": "xfs",
                      "/mnt/bucket": "fuse.gcsfuse"}  # fmt: skip


@pytest.mark.parametrize(
    ("store", "refused"),
    [
        ("/home/me/work/.lora-sweep/sweeps.db", "nfs4"),
        ("/scratch/me/sweeps.db", "lustre"),
        ("/mnt/bucket/sweeps.db", "fuse.gcsfuse"),
        ("/home/me/local disk/sweeps.db", None),  # a local disk mounted under the NFS home
        ("/tmp/sweeps.db", None),
    ],
)
def test_a_local_store_on_a_network_file_system_is_refused_for_several_nodes(store, refused):
    several = SlurmPlan(sweep_id="s1", time="1:00:00", tasks=2)
    if refused is None:
        check_store_placement(several, Path(store), MOUNTINFO)
        return
    with pytest.raises(SlurmError) as raised:
        check_store_placement(several, Path(store), MOUNTINFO)
    message = str(raised.value)
    assert refused in message and "W&B" in message and "--node" in message and "\n" not in message
    # One task, or every task on one node: the store is only ever opened from one machine.
    check_store_placement(SlurmPlan(sweep_id="s1", time="1:00:00", tasks=1), Path(store), MOUNTINFO)
    check_store_placement(SlurmPlan(sweep_id="s1", time="1:00:00", tasks=2, node="n1"), Path(store), MOUNTINFO)


def test_squeue_and_sacct_output_is_parsed():
    squeue = "1234_1|RUNNING|5:02|2:00:00|gpu07|None\n1234_[2-3]|PENDING|0:00|2:00:00||Resources\n"
    tasks = parse_squeue(squeue)
    assert [(t.job_id, t.state, t.nodes, t.detail) for t in tasks] == [
        ("1234_1", "RUNNING", "gpu07", "None"),
        ("1234_[2-3]", "PENDING", "", "Resources"),
    ]
    assert tasks[1].line().split() == ["1234_[2-3]", "PENDING", "0:00", "(Resources)"]
    sacct = (
        "1234_0|COMPLETED|0:0|00:10:00|gpu07\n1234_0.batch|COMPLETED|0:0|00:10:00|gpu07\n"
        "1234_4|CANCELLED by 0|0:15|00:01:00|gpu08\n"
    )
    assert [(t.job_id, t.state, t.detail) for t in parse_sacct(sacct)] == [
        ("1234_0", "COMPLETED", "0:0"),
        ("1234_4", "CANCELLED", "0:15"),
    ]
    assert parse_job_id("1234\n") == "1234" and parse_job_id("1234;cluster\n") == "1234"
    with pytest.raises(SlurmError):
        parse_job_id("Submitted nothing")


def test_job_ids_are_read_from_the_record_skipping_a_cut_line(tmp_path):
    record = tmp_path / "job.json"
    record.write_text('{"job_id": "11"}\n{"job_id": "12"}\n{"job_i')
    assert read_job_ids(record) == ["11", "12"]
    assert read_job_ids(tmp_path / "missing.json") == []
    assert job_name("me/lora/8f3k2x1q") == "lora-sweep-me-lora-8f3k2x1q"


def cli(cwd: Path, *args: str, path: str = "/nonexistent") -> subprocess.CompletedProcess:
    env = agent_env(PYTHONPATH=str(REPO), PATH=path)
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_dry_run_prints_the_script_with_no_slurm_and_submitting_needs_sbatch(tmp_path):
    sweep_id = create_sweep(tmp_path / "sweeps.db", record_args_sweep(tmp_path / "log", [1, 2]))
    store = ("--store", str(tmp_path / "sweeps.db"))
    args = ("slurm", "submit", sweep_id, *store, "--tasks", "2", "--time", "1:00:00", "--node", "n1")
    dry = cli(tmp_path, *args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("#!/bin/bash\n") and "#SBATCH --array=0-1" in dry.stdout
    assert f"agent {sweep_id} --store {(tmp_path / 'sweeps.db').resolve()} --gpus all" in dry.stdout
    assert not (tmp_path / ".lora-sweep").exists()  # a dry run writes nothing
    wet = cli(tmp_path, *args)
    assert wet.returncode == 1
    assert wet.stderr.strip().splitlines() == [
        "Error: `sbatch` is not on PATH: run this on a Slurm login node (or use --dry-run to see the script)"
    ]
    unknown = cli(tmp_path, "slurm", "submit", "nosuch", *store, "--time", "1:00:00", "--dry-run")
    assert unknown.returncode == 1 and len(unknown.stderr.strip().splitlines()) == 1
