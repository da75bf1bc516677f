"""One supervised agent per GPU, run as real processes with real signals; refusals, which start
nothing, run in-process.

W&B's server is the boundary: `tests/fleet_bin/wandb` stands in for the `wandb` executable
(first on PATH) and records the argv, environment and signals each agent got. Local sweeps run
the real local agents over a small grid of tests/programs/record_args.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner
from helpers import agent_env, assert_one_line, create_sweep, logged_points, record_args_sweep, runs_of, wait_for

from agent.cli import main
from agent.fleet.supervisor import AgentLog

FLEET_BIN = Path(__file__).parent / "fleet_bin"
SWEEP = "me/lora/8f3k2x1q"


def supervisor_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = agent_env(STANDIN_RECORD=str(tmp_path / "wandb.jsonl"), **extra)
    env["PATH"] = f"{FLEET_BIN}{os.pathsep}{env['PATH']}"
    if "CUDA_VISIBLE_DEVICES" not in extra:
        env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


def start_supervisor(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "agent", *args, "--log-dir", str(tmp_path / "logs")],
        cwd=tmp_path,
        env=env or supervisor_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_supervisor(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    process = start_supervisor(tmp_path, *args, env=env)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def launches(stderr: str) -> list[tuple[str, float]]:
    """When the supervisor launched each agent, by its own clock: (label, seconds since it began)."""
    found = re.findall(r"^\[(gpu [^\]]+)\] started at \+([\d.]+)s \(pid \d+\)", stderr, re.MULTILINE)
    return [(label, float(at)) for label, at in found]


def events(tmp_path: Path, event: str) -> list[dict]:
    record = tmp_path / "wandb.jsonl"
    lines = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    return [line for line in lines if line["event"] == event]


@pytest.mark.e2e
def test_a_wandb_sweep_gets_one_forwarding_wandb_agent_per_gpu_staggered(tmp_path):
    done = run_supervisor(tmp_path, SWEEP, "--gpus", "0,3", "--count", "2", "--stagger", "0.5")

    assert done.returncode == 0, done.stderr
    starts = sorted(events(tmp_path, "start"), key=lambda start: start["time"])
    assert [start["gpu"] for start in starts] == ["0", "3"]
    for start in starts:
        assert Path(start["argv"][0]).name == "agent"
        assert start["argv"] == ["agent", "--forward-signals", "--count", "2", SWEEP]
        assert start["env"]["CUDA_VISIBLE_DEVICES"] == start["gpu"]
    # The supervisor's own record: it launches the second agent no sooner than 0.5 s after it began.
    [(first, first_at), (second, second_at)] = launches(done.stderr)
    assert (first, second) == ("gpu 0", "gpu 3")
    assert second_at >= 0.5 and second_at - first_at > 0
    assert "[gpu 0] stand-in wandb agent on GPU '0', start 1" in done.stderr
    assert "[gpu 3] stand-in wandb agent on GPU '3', start 1" in done.stderr
    assert done.stderr.strip().splitlines()[-1] == "agents: gpu 0 ok, gpu 3 ok: ok"
    assert "stand-in wandb agent on GPU '3'" in (tmp_path / "logs" / "gpu-3.log").read_text()
    assert "GPU '0'" not in (tmp_path / "logs" / "gpu-3.log").read_text()


@pytest.mark.e2e
def test_a_wandb_sweep_without_gpus_runs_one_supervised_agent_on_the_gpus_it_sees(tmp_path):
    done = run_supervisor(tmp_path, SWEEP, env=supervisor_env(tmp_path, CUDA_VISIBLE_DEVICES="1,2"))

    assert done.returncode == 0, done.stderr
    [start] = events(tmp_path, "start")
    assert start["argv"] == ["agent", "--forward-signals", SWEEP]
    assert start["env"]["CUDA_VISIBLE_DEVICES"] == "1,2"
    assert (tmp_path / "logs" / "agent.log").exists()


@pytest.mark.e2e
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_reaches_every_agent_once_and_the_supervisor_says_it_was_stopped(tmp_path, sig, code):
    env = supervisor_env(tmp_path, STANDIN_WANDB_SLEEP="60")
    supervisor = start_supervisor(tmp_path, SWEEP, "--gpus", "0,1", "--stagger", "0", env=env)
    wait_for(lambda: len(events(tmp_path, "start")) == 2, 30, "both agents to start")

    sent = time.time()
    supervisor.send_signal(sig)
    out, err = supervisor.communicate(timeout=30)

    assert supervisor.returncode == code, err
    got = events(tmp_path, "signal")
    assert sorted((event["gpu"], event["signal"]) for event in got) == [("0", sig.name), ("1", sig.name)]
    assert all(event["preemption"] for event in got)  # announced before forwarding: runs checkpoint and requeue
    # The notice says when the supervisor got the signal, so each run's grace counts from there.
    assert all(sent <= event["sent_at"] <= event["time"] for event in got)
    assert err.strip().splitlines()[-1] == f"agents: gpu 0 ok, gpu 1 ok; stopped by {sig.name}: exit {code}"
    assert list((tmp_path / "logs").glob("*.notice")) == []


@pytest.mark.e2e
def test_a_sigterm_the_supervisor_did_not_forward_is_a_controllers_stop(tmp_path):
    # `wandb agent` stops a run (hyperband's early termination) with SIGTERM: it must not be requeued.
    env = supervisor_env(tmp_path, STANDIN_WANDB_SLEEP="60")
    supervisor = start_supervisor(tmp_path, SWEEP, "--gpus", "0,1", "--stagger", "0", env=env)
    starts = wait_for(lambda: len(events(tmp_path, "start")) == 2 and events(tmp_path, "start"), 30, "both agents")

    os.kill(starts[0]["pid"], signal.SIGTERM)
    wait_for(lambda: events(tmp_path, "signal"), 10, "the stopped agent to record its signal")
    supervisor.send_signal(signal.SIGTERM)
    supervisor.communicate(timeout=30)

    got = {event["pid"]: event["preemption"] for event in events(tmp_path, "signal")}
    assert got == {starts[0]["pid"]: False, starts[1]["pid"]: True}


@pytest.mark.e2e
def test_a_killed_supervisor_leaves_no_agent_running_and_signals_each_once(tmp_path):
    # Each agent takes a second to stop, as one whose run saves a checkpoint would: a parent-death
    # signal sent again meanwhile would be recorded. The kernel sends one each time a dying parent's
    # thread hands the child on to another of its threads; the supervisor has one.
    env = supervisor_env(tmp_path, STANDIN_WANDB_SLEEP="60", STANDIN_WANDB_STOP_S="1")
    supervisor = start_supervisor(tmp_path, SWEEP, "--gpus", "0,1", "--stagger", "0", env=env)
    starts = wait_for(lambda: len(events(tmp_path, "start")) == 2 and events(tmp_path, "start"), 30, "both agents")
    threads = psutil.Process(supervisor.pid).num_threads()

    supervisor.kill()  # SIGKILL: no handler of ours runs
    supervisor.communicate(timeout=30)
    for start in starts:
        wait_for(lambda pid=start["pid"]: not psutil.pid_exists(pid), 10, f"agent {start['pid']} to exit")

    assert threads == 1
    got = events(tmp_path, "signal")
    assert sorted((event["gpu"], event["signal"]) for event in got) == [("0", "SIGTERM"), ("1", "SIGTERM")]
    assert all(event["preemption"] for event in got)  # no supervisor left to ask: taken for a preemption


WANDB_BIN = Path(__file__).parent / "wandb_bin"
SLOW_STOP = Path(__file__).parent / "programs" / "slow_stop.py"


@pytest.mark.e2e
@pytest.mark.usefixtures("no_leaked_processes")
def test_a_killed_supervisor_lets_each_real_wandb_agent_stop_its_run_once_with_grace(tmp_path):
    # wandb's own `wandb agent --forward-signals` (W&B's server answered at its transport) takes a
    # second SIGTERM for "terminate the runs" and a third for "kill them": a run that got more than
    # one, or was killed, would lose the checkpoint it was saving for its requeue.
    env = supervisor_env(tmp_path, STANDIN_SWEEP_PROGRAM=str(SLOW_STOP), STANDIN_SWEEP_ARGS=json.dumps({"stop_s": 1}))
    env["PATH"] = os.pathsep.join([str(WANDB_BIN), env["PATH"]])
    supervisor = start_supervisor(tmp_path, SWEEP, "--gpus", "0,1", "--stagger", "0", env=env)
    runs = wait_for(lambda: len(events(tmp_path, "run_start")) == 2 and events(tmp_path, "run_start"), 120, "runs")

    supervisor.kill()
    supervisor.communicate(timeout=30)
    for run in runs:
        wait_for(lambda pid=run["pid"]: not psutil.pid_exists(pid), 30, f"run {run['pid']} to exit")

    sigterms = sorted(event["pid"] for event in events(tmp_path, "run_sigterm"))
    assert sigterms == sorted(run["pid"] for run in runs)  # one each
    assert sorted(event["pid"] for event in events(tmp_path, "run_exit")) == sigterms  # each stopped itself


@pytest.mark.e2e
def test_a_crashed_agent_is_restarted_with_growing_backoff(tmp_path):
    env = supervisor_env(tmp_path, STANDIN_WANDB_EXITS="3,3,0")
    done = run_supervisor(tmp_path, SWEEP, "--gpus", "0", "--restart-backoff", "0.3", env=env)

    assert done.returncode == 0, done.stderr
    assert len(events(tmp_path, "start")) == 3
    # By the supervisor's clock, each launch comes at least the backoff after the one before, and the wait doubles.
    starts = [at for _, at in launches(done.stderr)]
    assert len(starts) == 3 and starts[1] - starts[0] >= 0.3 and starts[2] - starts[1] >= 0.6
    assert "[gpu 0] exited with 3; restart 1/3 in 0.3s" in done.stderr
    assert "[gpu 0] exited with 3; restart 2/3 in 0.6s" in done.stderr
    assert done.stderr.strip().splitlines()[-1] == "agents: gpu 0 ok after 2 restart(s): ok"
    assert (tmp_path / "logs" / "gpu-0.log").read_text().count("stand-in wandb agent") == 3


@pytest.mark.e2e
@pytest.mark.usefixtures("no_leaked_processes")
def test_a_crashed_agents_run_is_ended_before_another_agent_starts_on_its_gpu(tmp_path):
    # `wandb agent` starts its run in a process group of its own, with no parent-death signal: when
    # the agent crashes, the run goes on. A second agent there would start a second run on that GPU.
    env = supervisor_env(tmp_path, STANDIN_WANDB_EXITS="3,3,0", STANDIN_WANDB_ORPHAN_S="60")
    done = run_supervisor(tmp_path, SWEEP, "--gpus", "0", "--restart-backoff", "0", env=env)

    assert done.returncode == 0, done.stderr
    assert len(events(tmp_path, "run")) == 2
    assert [start["runs_alive"] for start in events(tmp_path, "start")] == [[], [], []]


@pytest.mark.e2e
@pytest.mark.usefixtures("no_leaked_processes")
def test_a_run_its_agent_left_behind_at_a_stop_is_ended_before_the_supervisor_returns(tmp_path):
    # The stand-in agent starts a run in its own process group, then exits at once on SIGTERM.
    env = supervisor_env(tmp_path, STANDIN_WANDB_EXITS="3", STANDIN_WANDB_SLEEP="60", STANDIN_WANDB_ORPHAN_S="60")
    supervisor = start_supervisor(tmp_path, SWEEP, "--gpus", "0", env=env)
    [run] = wait_for(lambda: events(tmp_path, "run"), 30, "the run to start")

    supervisor.send_signal(signal.SIGTERM)
    _, err = supervisor.communicate(timeout=30)

    assert not psutil.pid_exists(run["run_pid"]) or psutil.Process(run["run_pid"]).status() == psutil.STATUS_ZOMBIE
    assert "[gpu 0] ended 1 process(es) its agent left running" in err


@pytest.mark.e2e
def test_an_agent_that_keeps_crashing_is_given_up_and_the_exit_code_says_so(tmp_path):
    env = supervisor_env(tmp_path, STANDIN_WANDB_EXITS="0", STANDIN_WANDB_EXITS_1="3")
    done = run_supervisor(
        tmp_path, SWEEP, "--gpus", "0,1", "--stagger", "0", "--max-restarts", "2", "--restart-backoff", "0", env=env
    )

    assert done.returncode == 1
    assert sorted(start["gpu"] for start in events(tmp_path, "start")) == ["0", "1", "1", "1"]
    assert "[gpu 1] exited with 3; giving up after 2 restart(s)" in done.stderr
    assert done.stderr.strip().splitlines()[-1] == "agents: gpu 0 ok, gpu 1 failed (exit 3) after 2 restart(s): exit 1"


@pytest.mark.e2e
def test_gpus_all_means_the_gpus_nvidia_smi_lists(tmp_path):
    done = run_supervisor(
        tmp_path, SWEEP, "--gpus", "all", "--stagger", "0", env=supervisor_env(tmp_path, STANDIN_GPUS="0 1 2")
    )

    assert done.returncode == 0, done.stderr
    assert sorted(start["env"]["CUDA_VISIBLE_DEVICES"] for start in events(tmp_path, "start")) == ["0", "1", "2"]


@pytest.mark.e2e
def test_gpus_all_honours_a_narrowed_cuda_visible_devices(tmp_path):
    env = supervisor_env(tmp_path, CUDA_VISIBLE_DEVICES="GPU-5b1c,GPU-77aa")
    done = run_supervisor(tmp_path, SWEEP, "--gpus", "all", "--stagger", "0", env=env)

    assert done.returncode == 0, done.stderr
    assert sorted(start["gpu"] for start in events(tmp_path, "start")) == ["GPU-5b1c", "GPU-77aa"]
    assert (tmp_path / "logs" / "gpu-GPU-5b1c.log").exists()


def refused(tmp_path: Path, *args: str, path: str | None = None):
    """`lora-sweep agent ARGS` in-process, for refusals that come before any agent starts."""
    env = {"CUDA_VISIBLE_DEVICES": None, **({"PATH": path} if path else {})}
    return CliRunner().invoke(main, ["agent", *args, "--log-dir", str(tmp_path / "logs")], env=env)


def test_gpus_all_on_a_machine_without_gpus_is_one_line_and_starts_nothing(tmp_path):
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "wandb").symlink_to(FLEET_BIN / "wandb")  # wandb is there, nvidia-smi is not
    done = refused(tmp_path, SWEEP, "--gpus", "all", path=str(bare))

    assert_one_line(done, "Error: --gpus all: no GPU visible (no nvidia-smi on PATH); pass ids such as --gpus 0,1")
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize("spec", ["0,,1", "0,0"])
def test_bad_gpu_lists_are_one_line(tmp_path, spec):
    assert_one_line(refused(tmp_path, SWEEP, "--gpus", spec), "Error: --gpus")


@pytest.mark.e2e
def test_a_local_sweep_gets_one_real_local_agent_per_gpu_sharing_its_grid(tmp_path):
    store_path, log = tmp_path / "sweeps.db", tmp_path / "ran.jsonl"
    sweep_id = create_sweep(store_path, record_args_sweep(log, list(range(6)), sleep=0.5))
    done = run_supervisor(tmp_path, sweep_id, "--store", str(store_path), "--gpus", "0,1", "--stagger", "0.2")

    assert done.returncode == 0, done.stderr
    assert sorted(logged_points(log)) == list(range(6))
    assert {run.state for run in runs_of(store_path, sweep_id)} == {"finished"}
    logs = [(tmp_path / "logs" / f"gpu-{gpu}.log").read_text() for gpu in "01"]
    assert all("finished" in text for text in logs), logs  # both GPUs' agents ran runs
    assert done.stderr.strip().splitlines()[-1] == "agents: gpu 0 ok, gpu 1 ok: ok"


@pytest.mark.e2e
def test_two_agents_per_gpu_share_a_local_grid_each_point_once_each_run_told_its_share(tmp_path):
    store_path, log = tmp_path / "sweeps.db", tmp_path / "ran.jsonl"
    sweep_id = create_sweep(store_path, record_args_sweep(log, list(range(8)), sleep=0.5))
    done = run_supervisor(
        tmp_path, sweep_id, "--store", str(store_path), "--gpus", "0,1", "--agents-per-gpu", "2", "--stagger", "0.2"
    )

    assert done.returncode == 0, done.stderr
    assert sorted(logged_points(log)) == list(range(8))  # every point once, none twice
    assert {run.state for run in runs_of(store_path, sweep_id)} == {"finished"}
    runs = [json.loads(line) for line in log.read_text().splitlines() if '"done"' in line]
    assert {run["gpu"]["LORA_SWEEP_GPU_SHARE"] for run in runs} == {"1/2"}
    assert {run["gpu"]["CUDA_VISIBLE_DEVICES"] for run in runs} <= {"0", "1"}
    names = ["0-0", "1-0", "0-1", "1-1"]  # gpu 0.1 logs to gpu-0-1.log: the shared file-name rule has no dots
    assert sorted(path.name for path in (tmp_path / "logs").glob("gpu-*.log")) == sorted(f"gpu-{n}.log" for n in names)
    assert done.stderr.strip().splitlines()[-1] == "agents: gpu 0.0 ok, gpu 1.0 ok, gpu 0.1 ok, gpu 1.1 ok: ok"


def test_agents_per_gpu_without_gpus_is_one_line(tmp_path):
    assert_one_line(refused(tmp_path, SWEEP, "--agents-per-gpu", "2"), "Error: --agents-per-gpu needs --gpus")


def test_an_unknown_local_sweep_is_one_line_before_any_agent_starts(tmp_path):
    store_path = tmp_path / "sweeps.db"
    create_sweep(store_path, {"method": "grid", "program": "x.py", "parameters": {"a": {"values": [1]}}})
    done = refused(tmp_path, "nosuchid", "--store", str(store_path), "--gpus", "0")

    assert_one_line(done, "nosuchid")
    assert not (tmp_path / "logs").exists()


@pytest.mark.e2e
def test_sigint_reaches_every_local_agent_and_their_runs_go_back_in_the_queue(tmp_path):
    store_path, log = tmp_path / "sweeps.db", tmp_path / "ran.jsonl"
    sweep_id = create_sweep(store_path, record_args_sweep(log, [1, 2, 3], sleep=60.0))
    supervisor = start_supervisor(tmp_path, sweep_id, "--store", str(store_path), "--gpus", "0,1", "--stagger", "0")
    wait_for(lambda: len([r for r in runs_of(store_path, sweep_id) if r.pid]) == 2, 60, "a run on each GPU")

    supervisor.send_signal(signal.SIGINT)
    out, err = supervisor.communicate(timeout=60)

    assert supervisor.returncode == 130, err
    assert {run.state for run in runs_of(store_path, sweep_id)} == {"pending"}  # nothing lost, nothing left running
    assert err.count("requeued") == 2
    assert err.strip().splitlines()[-1].endswith("; stopped by SIGINT: exit 130")


def test_an_agent_log_drops_the_lines_that_come_after_it_was_closed(tmp_path):
    # A run its agent left behind may hold the agent's pipe and write after the log was closed.
    log = AgentLog(tmp_path / "gpu-0.log")
    for i in range(3):
        log.write(f"line {i}\n")
    log.close()
    log.write("late\n")

    assert (tmp_path / "gpu-0.log").read_text().splitlines() == ["line 0", "line 1", "line 2"]
