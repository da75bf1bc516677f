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

from agent.trial.checkpoint import CHECKPOINT_FILES, latest_checkpoint, read_launches, seal
from agent.trial.checkpoint_artifact import ArtifactMirror, NoMirror, PullFailed, artifact_name, checkpoint_mirror
from agent.trial.launches import begin_launch, end_launch
from agent.trial.stopping import StopKind, StopRequest

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
    """Every file a resume needs (stand-in bytes), then sealed."""
    checkpoint = folder / f"checkpoint-{step}"
    checkpoint.mkdir(parents=True)
    for name in CHECKPOINT_FILES:
        (checkpoint / name).write_bytes(bytes([step]) * 1000)
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


def push(mirror: ArtifactMirror, folder: Path) -> None:
    """A push, waited for: its W&B calls run on a thread of their own."""
    mirror.push(folder)
    assert mirror.wait(timeout_s=60)


def folder_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_run_preempted_on_one_pod_resumes_on_another_from_the_artifact_and_old_versions_are_deleted(server, tmp_path):
    # Pod A: the launch begins, two periodic checkpoints, then a preemption.
    run = launch_on(tmp_path / "pod-a")
    mirror = ArtifactMirror(run, wandb.Api(), StopRequest())
    folder_a = tmp_path / "pod-a" / "checkpoints"
    mirror.pull(folder_a)  # the run's first launch: nothing to download
    begin_launch(folder_a)
    push(mirror, folder_a)
    write_checkpoint(folder_a, 4)
    push(mirror, folder_a)
    write_checkpoint(folder_a, 8)  # checkpoint-4 removed once checkpoint-8 is complete
    push(mirror, folder_a)
    end_launch(folder_a, "preempted")
    push(mirror, folder_a)
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
    launch = begin_launch(folder_b)
    assert launch.number == 2 and launch.failures_before == 0  # the preemption is not a failure
    push(mirror, folder_b)  # deletes every committed version but `latest` before logging its own
    run.finish()
    upload(server, tmp_path / "pod-b")

    assert server.live_versions(artifact_name(RUN_ID)) == [3, 4]
    deleted = [m for m in server.mutations if m[0] == "DeleteArtifact"]
    assert len(deleted) == 3
    assert [a["outcome"] for a in read_launches(folder_b)] == ["preempted", "running"]


def test_a_push_during_a_preemptions_grace_only_logs_the_version(server, tmp_path):
    run = launch_on(tmp_path / "pod")
    stop = StopRequest()
    stop.kind = StopKind.PREEMPT
    folder = tmp_path / "pod" / "checkpoints"
    write_checkpoint(folder, 4)
    server.mutations.clear()
    push(ArtifactMirror(run, wandb.Api(), stop), folder)
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

    class Recorder(NoMirror):
        def push(self, folder: Path) -> None:
            handed.append(sorted(folder_files(folder)))

    handed = []
    keeper = CheckpointKeeper(
        StopRequest(), BestAdapterKeeper(), grace_s=4.0, mirror=Recorder(), config_params={"a": 1}
    )
    for step in (4, 8):
        (tmp_path / f"checkpoint-{step}").mkdir()  # as the Trainer leaves it before on_save
        keeper.on_save(SimpleNamespace(output_dir=str(tmp_path)), TrainerState(global_step=step), TrainerControl())

    sealed = ["complete", "trial_config.json"]
    assert handed == [[f"checkpoint-4/{f}" for f in sealed], [f"checkpoint-8/{f}" for f in sealed]]


def test_a_relaunch_keeps_its_own_folder_when_it_is_as_far_along_and_replaces_a_stale_one(server, tmp_path):
    pod_a, pod_b = tmp_path / "pod-a" / "checkpoints", tmp_path / "pod-b" / "checkpoints"
    run = launch_on(tmp_path / "pod-a")
    begin_launch(pod_a)
    write_checkpoint(pod_a, 4)
    push(ArtifactMirror(run, wandb.Api(), StopRequest()), pod_a)
    run.finish()
    upload(server, tmp_path / "pod-a")  # committed: launches 1, step 4
    write_checkpoint(pod_a, 8)  # the SIGTERM save, whose upload SIGKILL cut short: never committed

    run = launch_on(tmp_path / "pod-a")
    ArtifactMirror(run, wandb.Api(), StopRequest()).pull(pod_a)
    run.finish()
    assert latest_checkpoint(pod_a).name == "checkpoint-8"  # not thrown away for the older upload

    begin_launch(pod_b)  # a pod that ran the run's first launch long ago, then a crash
    end_launch(pod_b, "failed", "RuntimeError: boom")
    run = launch_on(tmp_path / "pod-a-again")  # since then pod A got further: 2 launches, step 8, committed
    begin_launch(pod_a)
    push(ArtifactMirror(run, wandb.Api(), StopRequest()), pod_a)
    run.finish()
    upload(server, tmp_path / "pod-a-again")
    run = launch_on(tmp_path / "pod-b")
    ArtifactMirror(run, wandb.Api(), StopRequest()).pull(pod_b)
    run.finish()
    assert folder_files(pod_b) == folder_files(pod_a)  # pod A's copy replaced pod B's
    assert len(read_launches(pod_b)) == 2


def pushed_by_another_pod(server, tmp_path) -> Path:
    """Pod A ran the run to a checkpoint at step 8 and was preempted; its last version is committed."""
    run = launch_on(tmp_path / "pod-a")
    mirror = ArtifactMirror(run, wandb.Api(), StopRequest())
    folder = tmp_path / "pod-a" / "checkpoints"
    begin_launch(folder)
    write_checkpoint(folder, 8)
    end_launch(folder, "preempted")
    push(mirror, folder)
    mirror.wait()
    run.finish(exit_code=143)
    upload(server, tmp_path / "pod-a")
    return folder


@pytest.mark.parametrize(
    "cut",
    [
        ("checkpoint-8/adapter_model.safetensors", 0),
        ("checkpoint-8/optimizer.pt", 500),
        ("checkpoint-8/trainer_state.json", 3),
        ("launches.json", 10),
    ],
)
def test_a_download_cut_off_mid_file_leaves_the_run_folder_as_it_was_and_the_next_pull_resumes(server, tmp_path, cut):
    pod_a = pushed_by_another_pod(server, tmp_path)
    pod_b = tmp_path / "pod-b" / "checkpoints"
    begin_launch(pod_b)  # this pod ran the run's first launch long ago
    write_checkpoint(pod_b, 2)
    before = folder_files(pod_b)

    server.cut = cut  # every try is cut at the same byte
    run = launch_on(tmp_path / "pod-b")
    with pytest.raises(PullFailed, match="could not download"):
        ArtifactMirror(run, wandb.Api(), StopRequest()).pull(pod_b)
    assert folder_files(pod_b) == before  # nothing half-downloaded where a resume would look
    assert [p.name for p in pod_b.parent.iterdir() if p.name.startswith("checkpoints")] == ["checkpoints"]

    server.cut = None  # the requeued launch, on a network that holds
    ArtifactMirror(run, wandb.Api(), StopRequest()).pull(pod_b)
    run.finish()
    assert folder_files(pod_b) == folder_files(pod_a)
    assert latest_checkpoint(pod_b).name == "checkpoint-8"


def test_what_a_launch_killed_mid_pull_left_is_ignored_and_removed(server, tmp_path):
    pushed_by_another_pod(server, tmp_path)
    pod_b = tmp_path / "pod-b" / "checkpoints"
    # A pull killed in the middle, as the old in-place download left it: the marker came, the state did not.
    broken = pod_b / "checkpoint-8"
    broken.mkdir(parents=True)
    (broken / "complete").write_text("")
    (broken / "adapter_model.safetensors").write_bytes(b"x")
    (pod_b / "launches.json").write_text('[{"number": 1, "outc')  # cut mid-write
    leftover = pod_b.with_name("checkpoints.pull-999-incoming") / "checkpoint-8"
    leftover.mkdir(parents=True)
    assert latest_checkpoint(pod_b) is None  # the marker alone does not make a checkpoint

    run = launch_on(tmp_path / "pod-b")
    ArtifactMirror(run, wandb.Api(), StopRequest()).pull(pod_b)
    run.finish()
    assert latest_checkpoint(pod_b).name == "checkpoint-8"
    assert not leftover.parent.exists()
    assert read_launches(pod_b)[-1]["outcome"] == "preempted"


@pytest.mark.parametrize("failed_before, preempted", [(0, True), (1, False)])
def test_a_pull_that_keeps_failing_ends_the_run_instead_of_requeuing_it_forever(
    server, tmp_path, monkeypatch, failed_before, preempted
):
    """The launch is not counted (the count is in the folder the pull could not bring),
    so the run's summary counts failed pulls in a row; at max_attempts the run ends failed."""
    from agent.records import PULL_FAILURES_KEY
    from agent.trial import checkpoint_artifact, program
    from agent.trial.config import TrialConfig
    from agent.trial.stopping import Preempted

    class FailingPull(NoMirror):
        def pull(self, folder: Path) -> None:
            raise PullFailed("could not download checkpoint-run1:latest: connection reset")

    monkeypatch.setattr(checkpoint_artifact, "checkpoint_mirror", lambda *args: FailingPull())
    config = TrialConfig.from_params({"max_attempts": 2, "output_dir": str(tmp_path / "outputs")})
    run = launch_on(tmp_path / "machine")
    if failed_before:
        run.summary[PULL_FAILURES_KEY] = failed_before  # as W&B keeps it across requeues
    try:
        if preempted:
            with pytest.raises(Preempted):  # requeued: the next launch pulls again
                program.run_trial(config, run, StopRequest(), program.Surroundings.read({}))
        else:
            assert (
                program.run_trial(config, run, StopRequest(), program.Surroundings.read({})) == 1
            )  # ends failed, not marked preempting
        assert run.summary[PULL_FAILURES_KEY] == failed_before + 1
    finally:
        run.finish()
