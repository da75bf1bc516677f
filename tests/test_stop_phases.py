"""A SIGTERM at every phase of a trial's life is a preemption or a finish, never a failure.

The program, run by tests/programs/sigterm_at.py, sends itself a real SIGTERM just after the boundary
that one names (`StopRequest.boundary`), so the signal lands in the phase that follows, keyed to the
program's own progress rather than to sleeps. One run id is launched again and again, each launch stopped one phase
later than the one before, as a pool that keeps reclaiming the machine would; the launch that finishes
must end where a run never stopped ends. W&B runs offline; the supervisor's notice is absent, so every
SIGTERM is a preemption.
"""

from __future__ import annotations

import shutil

import pytest
from helpers import REPO, adapter, assert_same_weights, inspect_summary
from test_preemption import finish, launch, launch_dirs, marked_preempting, train_steps

from agent.trial.checkpoint import read_launches

pytestmark = pytest.mark.e2e

# The shortest trial with every phase: a baseline, an evaluation and a checkpoint in training, the last ones.
SHORT = ("--max_steps=4", "--eval_steps=2", "--logging_steps=1")
NO_GRACE = "--preempt_grace_s=0"  # after training, nothing is left time to finish: the launch exits preempted

# (boundary just after which SIGTERM arrives, flags, exit code). In the order of a launch's life.
PHASES = [
    ("start", (), 143),  # during the imports: no run exists yet
    ("init", (), 143),  # during wandb.init
    ("run", (), 143),  # while the trial config is rebuilt from the run's
    ("pull", (), 143),  # during the checkpoint pull
    ("pulled", (), 143),  # while the launch is counted
    ("load", (), 143),  # while data and model load
    ("baseline", (), 143),  # during the untuned baseline's evaluation
    ("train", (), 143),  # during the first training step: a checkpoint at step 1
    ("trained", (NO_GRACE,), 143),  # during the final scoring; training is done, the relaunch trains nothing
    ("save", (NO_GRACE,), 143),  # during the adapter's save
    ("upload", (NO_GRACE,), 143),  # during its upload
    ("uploaded", (), 0),  # during the bookkeeping at the end: it finishes
]


def launch_stopped_at(cwd, dialogues, run_id, phase, *flags):
    program = (str(REPO / "tests" / "programs" / "sigterm_at.py"), phase)
    return finish(launch(cwd, dialogues, run_id, *SHORT, *flags, program=program))


@pytest.fixture(scope="module")
def never_stopped(tiny_model_dir, dialogues, tmp_path_factory) -> dict:
    cwd = tmp_path_factory.mktemp("never-stopped")
    code, stderr = finish(launch(cwd, dialogues, "straight", *SHORT))
    assert code == 0, stderr[-3000:]
    [run_dir] = launch_dirs(cwd, "straight")
    summary = inspect_summary(run_dir)["summary"]
    return {"cwd": cwd, "summary": summary, "best": adapter(cwd / "outputs" / "straight" / "best_adapter")}


def assert_ends_as_a_run_never_stopped(cwd, run_id, never_stopped) -> dict:
    summary = inspect_summary(launch_dirs(cwd, run_id)[-1])["summary"]
    for key in ("eval/rougeL", "final/rougeL", "final/rouge1"):
        assert summary[key] == never_stopped["summary"][key], key
    assert_same_weights(adapter(cwd / "outputs" / run_id / "best_adapter"), never_stopped["best"])
    return summary


def test_a_sigterm_at_every_phase_is_a_preemption_or_a_finish_and_the_run_ends_as_if_never_stopped(
    never_stopped, dialogues, tmp_path
):
    for phase, flags, expected in PHASES:
        runs_before = len(launch_dirs(tmp_path, "often"))
        code, stderr = launch_stopped_at(tmp_path, dialogues, "often", phase, *flags)
        assert code == expected, f"SIGTERM after {phase!r}: exit {code}\n{stderr[-3000:]}"
        assert "Traceback" not in stderr, f"SIGTERM after {phase!r}:\n{stderr[-3000:]}"
        new_runs = launch_dirs(tmp_path, "often")[runs_before:]
        assert len(new_runs) == (0 if phase == "start" else 1), phase  # no run is made once a SIGTERM is known
        if code == 143 and new_runs:
            assert marked_preempting(new_runs[0]), f"SIGTERM after {phase!r}: not marked preempting"

    # Launches stopped before the pull had begun no launch record; every later one is counted, none as failed.
    assert [a["outcome"] for a in read_launches(tmp_path / "volume" / "often")] == ["preempted"] * 7 + ["finished"]
    summary = assert_ends_as_a_run_never_stopped(tmp_path, "often", never_stopped)
    assert summary["launch/resumed_from_step"] == 4
    assert train_steps(launch_dirs(tmp_path, "often")[-1]) == []  # the launches after training trained nothing


def test_a_sigterm_after_training_lets_the_launch_finish_when_the_rest_fits_the_grace(
    never_stopped, dialogues, tmp_path
):
    code, stderr = launch_stopped_at(tmp_path, dialogues, "fits", "trained")
    assert code == 0 and "Traceback" not in stderr, stderr[-3000:]
    assert [a["outcome"] for a in read_launches(tmp_path / "volume" / "fits")] == ["finished"]
    assert_ends_as_a_run_never_stopped(tmp_path, "fits", never_stopped)


def test_a_relaunch_with_another_config_is_refused_in_one_line(never_stopped, dialogues, tmp_path):
    volume = tmp_path / "volume"
    shutil.copytree(never_stopped["cwd"] / "volume", volume)  # the run's checkpoints, as a requeue finds them
    history = read_launches(volume / "straight")

    code, stderr = finish(launch(tmp_path, dialogues, "straight", *SHORT, "--learning_rate=1e-4", "--lora_r=4"))
    assert code == 1
    assert stderr.strip().splitlines()[-1].startswith("error: "), stderr[-3000:]
    assert "learning_rate" in stderr and "lora_r" in stderr and "Traceback" not in stderr, stderr[-3000:]
    assert read_launches(volume / "straight") == history  # refused before it counted as a launch
    assert not marked_preempting(launch_dirs(tmp_path, "straight")[-1])  # not requeued: it would be refused again
