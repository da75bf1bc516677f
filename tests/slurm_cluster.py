"""A single-node Slurm (slurmctld, slurmd, munged) run from one temporary folder, for tests.

Everything lives in the folder: its own munge key and socket, state and spool folders, ports other
than Slurm's defaults, two fake GPUs (character devices, which slurmd requires in gres.conf). Clients
find it through SLURM_CONF. The daemons are stopped by their pids at the end, never by name.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

NODE = "node0"
PARTITION = "debug"
HOST = socket.gethostname().split(".")[0]
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel")


@dataclass
class SlurmCluster:
    folder: Path
    env: dict[str, str]
    """The clients' environment: SLURM_CONF names this cluster's slurm.conf."""
    pids: dict[str, int]

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(list(argv), capture_output=True, text=True, env=self.env, timeout=30, check=check)

    def stop(self) -> None:
        self.end_steps()
        for name in ("slurmd", "slurmctld", "munged"):
            pid = self.pids.get(name)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and alive(pid):
                time.sleep(0.05)
            if alive(pid):
                os.kill(pid, signal.SIGKILL)

    def end_steps(self) -> None:
        """A test that failed mid-job leaves its tasks running, and slurmstepd outlives slurmd: kill
        every job step of this cluster (a slurmstepd working in its folder) with what it started."""
        for process in psutil.process_iter(["name", "cwd"]):
            if process.info["name"] == "slurmstepd" and str(process.info["cwd"] or "").startswith(str(self.folder)):
                try:
                    for step in [*process.children(recursive=True), process]:
                        step.kill()
                except psutil.NoSuchProcess:
                    continue


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


def missing_binaries() -> list[str]:
    found = {name: shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin") for name in BINARIES}
    return [name for name, path in found.items() if path is None]


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for each in sockets:
            each.bind(("127.0.0.1", 0))
        return [each.getsockname()[1] for each in sockets]
    finally:
        for each in sockets:
            each.close()


def slurm_conf(folder: Path, ctld_port: int, node_port: int, cpus: int) -> str:
    return f"""ClusterName=lora-sweep-test
SlurmctldHost={HOST}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={node_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={folder}/munge.socket,cred_expire=10
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool/%n
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd-%n.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=10
MinJobAge=300
InactiveLimit=0
JobRequeue=1
GresTypes=gpu
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
NodeName={NODE} NodeHostname={HOST} NodeAddr=127.0.0.1 CPUs={cpus} Gres=gpu:2 RealMemory=2000 State=UNKNOWN
PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
"""


@contextmanager
def slurm_cluster(folder: Path) -> Iterator[SlurmCluster]:
    """Start the three daemons; yields once the node is idle. Raises RuntimeError, with the logs'
    last lines, when it does not come up within a few seconds."""
    for sub in ("state", "spool", "dev"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    gpus = [folder / "dev" / f"nvidia{i}" for i in range(2)]
    for device in gpus:
        if not device.exists():
            os.mknod(device, 0o666 | 0o020000, os.makedev(1, 3))  # a character device, like /dev/null
    (folder / "gres.conf").write_text("".join(f"NodeName={NODE} Name=gpu File={d}\n" for d in gpus))
    ctld_port, node_port = free_ports(2)
    conf = folder / "slurm.conf"
    conf.write_text(slurm_conf(folder, ctld_port, node_port, cpus=4))
    key = folder / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    env["PATH"] = env.get("PATH", "") + ":/usr/sbin:/sbin"
    cluster = SlurmCluster(folder, env, {})
    try:
        munged = [
            "munged",
            "--force",
            f"--socket={folder}/munge.socket",
            f"--key-file={key}",
            f"--pid-file={folder}/munged.pid",
            f"--log-file={folder}/munged.log",
            f"--seed-file={folder}/munged.seed",
        ]
        subprocess.run(munged, env=env, check=True, timeout=10, capture_output=True)
        cluster.pids["munged"] = read_pid(folder / "munged.pid")
        subprocess.run(["slurmctld", "-c", "-f", str(conf)], env=env, check=True, timeout=10, capture_output=True)
        cluster.pids["slurmctld"] = read_pid(folder / "slurmctld.pid")
        subprocess.run(["slurmd", "-f", str(conf), "-N", NODE], env=env, check=True, timeout=10, capture_output=True)
        cluster.pids["slurmd"] = read_pid(folder / f"slurmd-{NODE}.pid")
        wait_idle(cluster)
        yield cluster
    finally:
        cluster.stop()


def read_pid(path: Path, timeout_s: float = 5.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            return int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            time.sleep(0.05)
    raise RuntimeError(f"no pid in {path}")


def wait_idle(cluster: SlurmCluster, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    state = ""
    while time.monotonic() < deadline:
        done = cluster.run("sinfo", "-h", "-o", "%T", check=False)
        state = done.stdout.strip() or done.stderr.strip()
        if state == "idle":
            return
        time.sleep(0.2)
    logs = "; ".join(
        f"{name}: {' | '.join(lines[-3:])}"
        for name in ("slurmctld.log", "slurmd.log")
        for lines in [(cluster.folder / name).read_text().splitlines() if (cluster.folder / name).exists() else []]
    )
    raise RuntimeError(f"the test Slurm did not come up in {timeout_s:g} s (sinfo: {state!r}; {logs})")
