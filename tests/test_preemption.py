"""Preemption and resume: the real trial program in subprocesses, stopped by real signals; and, in
process, the decisions it takes on the way (when to save within the grace, which launches count).

A second launch with the same WANDB_RUN_ID and checkpoint_dir is what a requeue does (W&B gives a
requeued run its id back). W&B runs offline; each launch writes its own offline run folder.
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

import pytest
from helpers import REPO, adapter, assert_same_weights, inspect_summary, logged_rows

from agent.env_vars import CLAIM_ENV
from agent.local.launch import FLUSH_INTERVAL_ENV
from agent.local.metrics import inspect_command
from agent.local.processes import end_marked
from agent.records import RunState
from agent.trial.checkpoint import COMPLETE_MARKER, read_launches

TRIAL = ("-m", "agent.train")
FLAGS = [
    "--model_name_or_path=builtin:tiny-llama",
    "--max_steps=30",
    "--eval_steps=10",
    "--eval_subset_size=8",
    "--max_new_tokens=8",
    "--per_device_train_batch_size=4",
    "--learning_rate=1e-3",
    "--logging_steps=1",  # every step in the history: steps lost are counted exactly
]


def launch(
    cwd: Path, dataset: Path, run_id: str, *extra: str, env: dict[str, str] | None = None, program: tuple = TRIAL
) -> subprocess.Popen:
    """The trial program (or `program`, one that runs it) as an agent launches it; a relaunch with the
    same run id is a requeue."""
    # As the local agent launches it: W&B writes the run's log every second, so what the run marked
    # (preempting) is on disk before a kill that comes seconds later.
    log = cwd / f"launch-{len(list(cwd.glob('launch-*.log')))}.log"
    # Marked as the local agent marks a claim, so `kill` ends what it started (its wandb-core) too.
    claim = f"{log.with_suffix('')}/{run_id}"
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_RUN_ID": run_id, FLUSH_INTERVAL_ENV: "1", **(env or {})}
    env[CLAIM_ENV] = claim
    args = [sys.executable, *program, *FLAGS, f"--dataset={dataset}", f"--checkpoint_dir={cwd / 'volume'}", *extra]
    with log.open("w") as stderr:
        process = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    process.log, process.claim = log, claim
    return process


def kill(process: subprocess.Popen) -> None:
    """SIGKILL the program and everything it started, as an agent ends a dead claim: W&B's
    wandb-core runs in its own session and would otherwise hold the run id for the relaunch."""
    process.kill()
    process.wait()
    end_marked(CLAIM_ENV, process.claim)


def finish(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    process.wait(timeout=timeout)
    return process.returncode, process.log.read_text()


def steps_done(process: subprocess.Popen) -> int:
    """How far the Trainer's progress bar has got (W&B may not store the last rows of a killed run)."""
    done = re.findall(r"(\d+)/30 \[", process.log.read_text())
    return int(done[-1]) if done else 0


def wait_until(process: subprocess.Popen, ready, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, f"the run ended before {what}: {process.log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.2)


def wait_for_checkpoint(process: subprocess.Popen, folder: Path) -> None:
    wait_until(process, (folder / COMPLETE_MARKER).exists, str(folder))


def launch_dirs(cwd: Path, run_id: str) -> list[Path]:
    """The offline run folders of one run id, one per launch, oldest first."""
    return sorted((cwd / "wandb").glob(f"offline-run-*-{run_id}"))


def train_steps(run_dir: Path) -> list[int]:
    return [row["train/global_step"] for row in logged_rows(run_dir) if "train/loss" in row]


def eval_points(run_dir: Path) -> dict[int, float]:
    return {row["train/global_step"]: row["eval/rougeL"] for row in logged_rows(run_dir) if "eval/rougeL" in row}


def marked_preempting(run_dir: Path) -> bool:
    out = subprocess.run(inspect_command(run_dir, "--json"), capture_output=True, text=True, timeout=120)
    return any(json.loads(line).get("type") == "preempting" for line in out.stdout.splitlines() if line.strip())


@pytest.fixture(scope="module")
def straight(tiny_model_dir, dialogues, tmp_path_factory) -> dict:
    """The reference: the same trial, never stopped."""
    cwd = tmp_path_factory.mktemp("straight")
    code, stderr = finish(launch(cwd, dialogues, "straight"))
    assert code == 0, stderr[-3000:]
    [run_dir] = launch_dirs(cwd, "straight")
    return {
        "summary": inspect_summary(run_dir)["summary"],
        "evals": eval_points(run_dir),
        "best": adapter(cwd / "outputs" / "straight" / "best_adapter"),
        "last": adapter(cwd / "volume" / "straight" / "checkpoint-30"),
    }


@pytest.mark.e2e
def test_a_run_killed_then_preempted_continues_as_if_never_stopped(straight, dialogues, tmp_path):
    volume = tmp_path / "volume" / "twice"

    # 1. SIGKILL, no warning: the periodic checkpoint at step 10 is what survives.
    first = launch(tmp_path, dialogues, "twice")
    wait_for_checkpoint(first, volume / "checkpoint-10")
    wait_until(first, lambda: steps_done(first) >= 12, "step 12")  # steps past the checkpoint, which the kill loses
    kill(first)
    finish(first)
    lost_to_kill = steps_done(first) - 10
    assert 2 <= lost_to_kill < 10  # at most one eval interval
    [killed] = launch_dirs(tmp_path, "twice")
    assert marked_preempting(killed)  # marked early: on W&B, the lost heartbeat requeues it

    # 2. The requeued run resumes at step 11; SIGTERM once it has passed step 20.
    second = launch(tmp_path, dialogues, "twice")
    wait_for_checkpoint(second, volume / "checkpoint-20")
    second.send_signal(signal.SIGTERM)
    code, stderr = finish(second)
    assert code == 143, stderr[-3000:]
    saved = re.search(r"preempted: checkpoint at step (\d+) written ([\d.]+) s after SIGTERM", stderr)
    assert saved, stderr[-3000:]
    step, seconds = int(saved[1]), float(saved[2])
    assert seconds < 3.0  # preempt_grace_s, the default
    _, preempted = launch_dirs(tmp_path, "twice")
    assert train_steps(preempted)[0] == 11  # the step count continues, never back to 0
    assert max(train_steps(preempted)) == step  # nothing trained is lost to an announced preemption
    assert marked_preempting(preempted)
    assert sorted(p.name for p in volume.glob("checkpoint-*")) == [f"checkpoint-{step}"]  # only the newest

    # 3. Requeued again: it finishes, equal to the run never stopped.
    code, stderr = finish(launch(tmp_path, dialogues, "twice"))
    assert code == 0, stderr[-3000:]
    *_, last = launch_dirs(tmp_path, "twice")
    assert train_steps(last)[0] == step + 1
    summary = inspect_summary(last)
    assert summary["exit_code"] == 0
    assert summary["summary"]["launch/number"] == 3 and summary["summary"]["launch/resumed_from_step"] == step
    assert [a["outcome"] for a in read_launches(volume)] == ["running", "preempted", "finished"]

    evals = {k: v for run_dir in launch_dirs(tmp_path, "twice") for k, v in eval_points(run_dir).items()}
    assert evals.items() <= straight["evals"].items()  # the same curve, point for point
    assert {20, 30} <= evals.keys()
    assert summary["summary"]["eval/rougeL"] == straight["summary"]["eval/rougeL"]
    assert summary["summary"]["final/rougeL"] == straight["summary"]["final/rougeL"]
    assert_same_weights(adapter(tmp_path / "outputs" / "twice" / "best_adapter"), straight["best"])
    assert_same_weights(adapter(volume / "checkpoint-30"), straight["last"])
    print(f"steps lost: SIGKILL {lost_to_kill}, SIGTERM 0; SIGTERM to checkpoint {seconds:.2f} s")


@pytest.mark.e2e
def test_a_run_that_fails_on_every_launch_ends_failed_after_max_attempts(tiny_model_dir, dialogues, tmp_path):
    # A real failure on every launch: the adapter cannot be saved, because output_dir is a file.
    (tmp_path / "outputs").write_text("not a folder")
    failing = ["--max_steps=10", "--max_attempts=2"]
    codes = []
    for _ in range(3):  # the third launch stands for a controller that requeues anyway
        code, stderr = finish(launch(tmp_path, dialogues, "crash", *failing))
        codes.append(code)
        assert "Traceback" in stderr or "gave up" in stderr, stderr[-3000:]
    dirs = launch_dirs(tmp_path, "crash")
    assert codes == [1, 1, 1]
    # The first launch is marked preempting, so W&B requeues it; the last allowed one is not.
    assert [marked_preempting(d) for d in dirs] == [True, False, False]
    last = inspect_summary(dirs[1])["summary"]
    assert last["launch/outcome"] == "failed"
    assert last["failure_reason"].startswith("failed on launch 2, the last of max_attempts=2: NotADirectoryError")
    given_up = inspect_summary(dirs[2])["summary"]
    assert given_up["failure_reason"].startswith(
        "gave up after 2 failed launches (max_attempts=2); last: NotADirectory"
    )
    assert "train/loss" not in given_up  # nothing trained on a run that has used its max_attempts


def test_a_resumed_runs_config_is_rebuilt_from_our_parameters_but_a_sweep_typo_still_fails(tmp_path):
    from agent.trial.config import ConfigError, TrialConfig
    from agent.trial.program import sweep_parameter_names, trial_params

    # What wandb.config holds on a resumed run: ours, transformers' TrainingArguments, W&B's own key.
    resumed = {"lora_r": 16, "learning_rate": 1e-4, "adam_beta1": 0.9, "lr_scheduler_type": "linear", "_wandb": {}}
    sweep_file = tmp_path / "config-abc.yaml"
    sweep_file.write_text("wandb_version: 1\nlora_r:\n  value: 16\n")
    config = TrialConfig.from_params(trial_params(resumed, sweep_parameter_names(str(sweep_file))))
    assert config.lora.lora_r == 16 and config.train.learning_rate == 1e-4

    sweep_file.write_text("wandb_version: 1\nlora_rank:\n  value: 16\n")
    with pytest.raises(ConfigError, match="unknown parameter 'lora_rank': did you mean lora_r?"):
        TrialConfig.from_params(trial_params({**resumed, "lora_rank": 16}, sweep_parameter_names(str(sweep_file))))


def test_announced_preemptions_do_not_count_against_max_attempts(tmp_path):
    from agent.trial.launches import begin_launch, end_launch

    assert begin_launch(tmp_path).failures_before == 0
    end_launch(tmp_path, RunState.PREEMPTED)
    second = begin_launch(tmp_path)  # then killed without a word
    assert (second.number, second.failures_before) == (2, 0)
    third = begin_launch(tmp_path)
    assert third.failures_before == 1 and "without warning" in third.last_failure
    end_launch(tmp_path, RunState.FAILED, "OutOfMemoryError: CUDA out of memory")
    fourth = begin_launch(tmp_path)
    assert fourth.failures_before == 2 and fourth.last_failure.startswith("OutOfMemoryError")
    assert fourth.is_last(max_attempts=3) and not fourth.exhausted(max_attempts=3)


def test_sigterm_saves_only_when_the_last_measured_save_fits_in_the_grace():
    from transformers import TrainerControl, TrainerState

    from agent.trial.callbacks import BestAdapterKeeper, CheckpointKeeper
    from agent.trial.stopping import StopKind, StopRequest

    request = StopRequest()
    request.kind, request.received_at = StopKind.PREEMPT, time.monotonic() - 1.0  # SIGTERM came 1 s ago
    keeper = CheckpointKeeper(request, BestAdapterKeeper(), grace_s=4.0)
    state = TrainerState(global_step=13)

    keeper.save_seconds = 2.0  # 1 + 2 <= 4: there is time
    control = TrainerControl()
    keeper.on_step_end(None, state, control)
    assert control.should_save and control.should_training_stop

    keeper.save_seconds = 3.5  # 1 + 3.5 > 4: SIGKILL would cut the save short; the periodic one stands
    control = TrainerControl(should_save=True)  # even at a periodic step
    keeper.on_step_end(None, state, control)
    assert not control.should_save and control.should_training_stop


def test_a_sigterm_during_a_periodic_save_is_answered_by_the_next_steps_save(tmp_path, capsys):
    """The periodic checkpoint a SIGTERM lands in was not written for it: the preemption's own save, at
    the end of the step under way, is the one reported (the run's last trained step is that one)."""
    from types import SimpleNamespace

    from transformers import TrainerControl, TrainerState

    from agent.trial.callbacks import BestAdapterKeeper, CheckpointKeeper
    from agent.trial.stopping import StopKind, StopRequest

    request = StopRequest()
    keeper = CheckpointKeeper(request, BestAdapterKeeper(), grace_s=4.0)
    args = SimpleNamespace(output_dir=str(tmp_path))

    keeper.on_step_end(args, TrainerState(global_step=20), TrainerControl(should_save=True))  # periodic
    (tmp_path / "checkpoint-20").mkdir()  # as the Trainer leaves it before on_save
    request.kind, request.received_at = StopKind.PREEMPT, time.monotonic()  # SIGTERM, while it is being written
    keeper.on_save(args, TrainerState(global_step=20), TrainerControl())
    assert "preempted" not in capsys.readouterr().err

    control = TrainerControl()
    keeper.on_step_end(args, TrainerState(global_step=21), control)
    assert control.should_save and control.should_training_stop
    (tmp_path / "checkpoint-21").mkdir()
    keeper.on_save(args, TrainerState(global_step=21), control)
    assert "preempted: checkpoint at step 21 written" in capsys.readouterr().err


@pytest.mark.e2e
def test_sigint_ends_training_early_and_keeps_the_best_adapter(tiny_model_dir, dialogues, tmp_path):
    process = launch(tmp_path, dialogues, "stop")
    wait_for_checkpoint(process, tmp_path / "volume" / "stop" / "checkpoint-10")
    process.send_signal(signal.SIGINT)
    code, stderr = finish(process)
    assert code == 0, stderr[-3000:]  # a person's stop: finished, never requeued
    [run_dir] = launch_dirs(tmp_path, "stop")
    summary = inspect_summary(run_dir)["summary"]
    assert summary["launch/outcome"] == "stopped" and "final/rougeL" in summary
    assert max(train_steps(run_dir)) < 30
    assert (tmp_path / "outputs" / "stop" / "best_adapter" / "adapter_model.safetensors").exists()
