"""Checkpoints kept as a W&B artifact, for pods with no shared volume: pushed, pulled on another machine, pruned.

W&B's server is the boundary. Runs are real offline runs: `log_artifact` writes the version it would
upload to the run's transaction log. `wandb_artifacts.FakeArtifactServer` commits those records and
serves them back through W&B's own public API (GraphQL via `wandb_backend.FakeCore`, the manifest
and files over HTTP on loopback), so `Api().artifact(...).download()`, `.artifacts()` and `.delete()`
run unmodified.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import wandb
from wandb_artifacts import FakeArtifactServer, artifact_records
from wandb_backend import serve

from agent.trial.checkpoint import begin_attempt, end_attempt, latest_checkpoint, read_attempts, seal
from agent.trial.checkpoint_artifact import ArtifactMirror, NoMirror, artifact_name, checkpoint_mirror
from agent.trial.stopping import PREEMPT, StopRequest

RUN_ID = "r8pod1"


@pytest.fixture
def server(monkeypatch, tmp_path):
    for name, value in {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_ENTITY": "me",
        "WANDB_PROJECT": "lora",
        "WANDB_DATA_DIR": str(tmp_path / "wandb-data"),  # artifact staging
        "WANDB_CACHE_DIR": str(tmp_path / "wandb-cache"),
    }.items():
        monkeypatch.setenv(name, value)
    fake = FakeArtifactServer("me", "lora")
    serve(monkeypatch, fake)
    yield fake
    fake.http.close()


def launch_on(machine: Path):
    """One launch of the run on a machine of its own: its own disk, the same run id."""
    return wandb.init(id=RUN_ID, dir=str(machine), mode="offline")


def write_checkpoint(folder: Path, step: int) -> Path:
    checkpoint = folder / f"checkpoint-{step}"
    checkpoint.mkdir(parents=True)
    (checkpoint / "adapter_model.safetensors").write_bytes(bytes([step]) * 1000)
    (checkpoint / "trainer_state.json").write_text(f'{{"global_step": {step}}}')
    seal(checkpoint)
    return checkpoint


def upload(server: FakeArtifactServer, machine: Path) -> list[dict]:
    """What W&B does with the run's log once it syncs: each logged version committed, in order."""
    run_dir = next((machine / "wandb").glob(f"offline-run-*-{RUN_ID}"))
    records = artifact_records(run_dir)
    for record in records:
        server.receive(record)
    return records


def folder_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_run_preempted_on_one_pod_resumes_on_another_from_the_artifact_and_old_versions_are_deleted(server, tmp_path):
    # Pod A: the launch begins, two periodic checkpoints, then a preemption.
    run = launch_on(tmp_path / "pod-a")
    mirror = ArtifactMirror(run, wandb.Api(), StopRequest())
    folder_a = tmp_path / "pod-a" / "checkpoints"
    mirror.pull(folder_a)  # the run's first launch: nothing to download
    begin_attempt(folder_a)
    mirror.push(folder_a)
    write_checkpoint(folder_a, 4)
    mirror.push(folder_a)
    write_checkpoint(folder_a, 8)  # checkpoint-4 removed once checkpoint-8 is complete
    mirror.push(folder_a)
    end_attempt(folder_a, "preempted")
    mirror.push(folder_a)
    run.finish(exit_code=143)
    upload(server, tmp_path / "pod-a")
    assert server.live_versions(artifact_name(RUN_ID)) == [0, 1, 2, 3]  # nothing was committed to prune yet

    # Pod B: another machine, an empty disk.
    run = launch_on(tmp_path / "pod-b")
    mirror = ArtifactMirror(run, wandb.Api(), StopRequest())
    folder_b = tmp_path / "pod-b" / "checkpoints"
    mirror.pull(folder_b)
    assert folder_files(folder_b) == folder_files(folder_a)
    assert latest_checkpoint(folder_b).name == "checkpoint-8"
    attempt = begin_attempt(folder_b)
    assert attempt.number == 2 and attempt.failures_before == 0  # the preemption is not a failure
    mirror.push(folder_b)  # deletes every committed version but `latest` before logging its own
    run.finish()
    upload(server, tmp_path / "pod-b")

    assert server.live_versions(artifact_name(RUN_ID)) == [3, 4]
    deleted = [m for m in server.mutations if m[0] == "DeleteArtifact"]
    assert len(deleted) == 3
    assert [a["outcome"] for a in read_attempts(folder_b)] == ["preempted", "running"]


def test_a_push_during_a_preemptions_grace_only_logs_the_version(server, tmp_path):
    run = launch_on(tmp_path / "pod")
    stop = StopRequest()
    stop.kind = PREEMPT
    folder = tmp_path / "pod" / "checkpoints"
    write_checkpoint(folder, 4)
    server.mutations.clear()
    ArtifactMirror(run, wandb.Api(), stop).push(folder)
    run.finish(exit_code=143)
    upload(server, tmp_path / "pod")

    assert server.mutations == []  # no W&B round trips eat into the grace
    assert server.live_versions(artifact_name(RUN_ID)) == [0]
    (record,) = artifact_records(next((tmp_path / "pod" / "wandb").glob("offline-run-*")))
    assert (record["type"], record["aliases"]) == ("checkpoint", ["latest"])


def online_run() -> SimpleNamespace:
    """What `checkpoint_mirror` reads of an online run. A real one needs W&B's server to start, which
    is the boundary here: `wandb.init(mode="online")` would block on it."""
    return SimpleNamespace(offline=False, disabled=False, entity="me", project="lora", id=RUN_ID)


@pytest.mark.parametrize(
    "checkpoint_dir, mode, chosen",
    [
        ("", "online", ArtifactMirror),  # no volume, and W&B can serve the artifact to the next machine
        ("/workspace/checkpoints", "online", NoMirror),  # a volume every machine mounts
        ("", "offline", NoMirror),  # W&B can sync an offline run's artifact later, not serve it now
        ("", "disabled", NoMirror),  # no W&B at all
    ],
)
def test_the_artifact_is_used_only_by_online_runs_without_a_volume(server, tmp_path, checkpoint_dir, mode, chosen):
    run = online_run() if mode == "online" else wandb.init(id=RUN_ID, dir=str(tmp_path), mode=mode)
    mirror = checkpoint_mirror(checkpoint_dir, run, StopRequest())
    assert type(mirror) is chosen
    if chosen is ArtifactMirror:
        assert mirror.path == f"me/lora/checkpoint-{RUN_ID}"
        mirror.pull(tmp_path / "checkpoints")  # asks W&B (the fake server) for `:latest`: none yet
        assert not (tmp_path / "checkpoints").exists()
    if mode != "online":
        run.finish()


def test_every_checkpoint_is_handed_on_once_it_is_complete(tmp_path):
    from transformers import TrainerControl, TrainerState

    from agent.trial.callbacks import BestAdapterKeeper, CheckpointKeeper

    handed = []
    keeper = CheckpointKeeper(
        StopRequest(), BestAdapterKeeper(), grace_s=4.0, on_sealed=lambda folder: handed.append(folder_files(folder))
    )
    for step in (4, 8):
        (tmp_path / f"checkpoint-{step}").mkdir()  # as the Trainer leaves it before on_save
        keeper.on_save(SimpleNamespace(output_dir=str(tmp_path)), TrainerState(global_step=step), TrainerControl())

    assert [sorted(files) for files in handed] == [["checkpoint-4/complete"], ["checkpoint-8/complete"]]


def test_a_relaunch_keeps_its_own_folder_when_it_is_as_far_along_and_replaces_a_stale_one(server, tmp_path):
    pod_a, pod_b = tmp_path / "pod-a" / "checkpoints", tmp_path / "pod-b" / "checkpoints"
    run = launch_on(tmp_path / "pod-a")
    begin_attempt(pod_a)
    write_checkpoint(pod_a, 4)
    ArtifactMirror(run, wandb.Api(), StopRequest()).push(pod_a)
    run.finish()
    (pushed,) = upload(server, tmp_path / "pod-a")  # committed: attempts 1, step 4
    write_checkpoint(pod_a, 8)  # the SIGTERM save, whose upload SIGKILL cut short: never committed

    run = launch_on(tmp_path / "pod-a")
    ArtifactMirror(run, wandb.Api(), StopRequest()).pull(pod_a)
    run.finish()
    assert latest_checkpoint(pod_a).name == "checkpoint-8"  # not thrown away for the older upload

    begin_attempt(pod_b)  # a pod that ran the run's first launch long ago, then a crash
    end_attempt(pod_b, "failed", "RuntimeError: boom")
    server.receive({**pushed, "metadata": '{"attempts": 2, "step": 8}'})  # since then pod A got further
    run = launch_on(tmp_path / "pod-b")
    ArtifactMirror(run, wandb.Api(), StopRequest()).pull(pod_b)
    run.finish()
    assert read_attempts(pod_b) == [{"number": 1, "outcome": "running"}]  # pod A's copy replaced pod B's
