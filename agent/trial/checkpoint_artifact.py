"""A run's checkpoints kept in W&B, for machines with no shared volume (`checkpoint_dir` empty).

The run folder's newest complete checkpoint and `launches.json` are logged as the artifact
`checkpoint-<run_id>`, type `checkpoint`, each time they change: when a launch begins, when a
checkpoint is sealed, when a launch ends. Every version takes the `latest` alias, which W&B moves
only once a version is committed, so an upload cut short by SIGKILL never becomes what a relaunch
downloads. A relaunch on any machine downloads `:latest` before it looks for a checkpoint, unless
its own folder is as far along. The download goes to a sibling folder and replaces the run folder
only once every file a resume needs is there: a download cut short leaves the run folder as it was.
Only the newest versions are kept: before logging one, the committed versions that `latest` has
moved past are deleted (not while a preemption's grace runs out: that waits for the next launch).

W&B's calls (listing, deleting, staging a version) run on a thread of their own, so a periodic
checkpoint does not hold up training while they go to the server.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any, Protocol

from agent.errors import one_line
from agent.trial.checkpoint import LAUNCHES_FILE, latest_checkpoint, read_launches, step_of
from agent.trial.stopping import StopRequest

ARTIFACT_TYPE = "checkpoint"
LATEST = "latest"
DOWNLOAD_TRIES = 3  # a connection dropped mid-file is not retried by W&B's client


class PullFailed(Exception):
    """The newest version could not be downloaded whole: nothing was trained, a requeued launch tries again."""


class CheckpointMirror(Protocol):
    def pull(self, folder: Path) -> None: ...

    def push(self, folder: Path) -> None: ...

    def wait(self, timeout_s: float | None = None) -> bool: ...


class NoMirror:
    """Checkpoints stay in the run folder alone: a volume every machine mounts, or this machine's disk."""

    def pull(self, folder: Path) -> None:
        pass

    def push(self, folder: Path) -> None:
        pass

    def wait(self, timeout_s: float | None = None) -> bool:
        return True


def artifact_name(run_id: str) -> str:
    return f"checkpoint-{run_id}"


class ArtifactMirror:
    """The run folder mirrored to the run's `checkpoint-<run_id>` artifact."""

    def __init__(self, run: Any, api: Any, stop: StopRequest):
        self.run, self.api, self.stop = run, api, stop
        self.path = f"{run.entity}/{run.project}/{artifact_name(run.id)}"
        self.pushing: threading.Thread | None = None

    def pull(self, folder: Path) -> None:
        """Replace `folder` with the newest version if that is further along (another machine ran the run
        since), and leave it otherwise (a first launch, or an upload cut short here)."""
        remove_leftovers(folder)
        try:
            if not self.api.artifact_exists(f"{self.path}:{LATEST}", type=ARTIFACT_TYPE):
                return
            artifact = self.api.artifact(f"{self.path}:{LATEST}", type=ARTIFACT_TYPE)
        except Exception as error:  # W&B's client raises many kinds for one failed request
            raise PullFailed(f"could not look up {self.path}:{LATEST}: {one_line(error)}") from None
        expected = progress_of(artifact.metadata)
        if expected <= progress(folder):
            return
        incoming = sibling(folder, "incoming")
        try:
            download(artifact, incoming)
            if progress(incoming) != expected:
                raise PullFailed(f"{self.path}:{artifact.version} downloaded without a complete checkpoint")
            swap_in(incoming, folder)
        finally:
            shutil.rmtree(incoming, ignore_errors=True)
        print(f"checkpoint: downloaded {self.path}:{artifact.version} into {folder}", file=sys.stderr)

    def push(self, folder: Path) -> None:
        """Log `folder` as a new version, on a thread of its own, once the previous push is done."""
        self.wait()
        prune = not self.stop.preempted  # no W&B round trips while the grace runs out
        self.pushing = threading.Thread(target=self._push, args=(folder, prune), name="checkpoint-push", daemon=True)
        self.pushing.start()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for the push under way; False if it is still running after `timeout_s` (it is then abandoned
        at exit, and the version it was logging never becomes `latest`)."""
        if self.pushing is not None:
            self.pushing.join(timeout_s)
        return self.pushing is None or not self.pushing.is_alive()

    def _push(self, folder: Path, prune: bool) -> None:
        import wandb

        try:
            if prune:
                self._delete_superseded()
            launches, step = progress(folder)
            artifact = wandb.Artifact(
                artifact_name(self.run.id), type=ARTIFACT_TYPE, metadata={"launches": launches, "step": step}
            )
            # What the version claims and nothing else: not a checkpoint the Trainer is still writing.
            checkpoint = latest_checkpoint(folder)
            if checkpoint is not None:
                artifact.add_dir(str(checkpoint), name=checkpoint.name)
            if (folder / LAUNCHES_FILE).exists():
                artifact.add_file(str(folder / LAUNCHES_FILE))
            self.run.log_artifact(artifact, aliases=[LATEST])
        except Exception as error:  # a lost version costs a relaunch elsewhere some steps, never this run
            print(f"warning: could not log a checkpoint version of {self.path}: {one_line(error)}", file=sys.stderr)

    def _delete_superseded(self) -> None:
        # A failure here costs storage, never the run: the next push tries again.
        try:
            for version in self.api.artifacts(ARTIFACT_TYPE, self.path):
                if LATEST not in version.aliases:
                    version.delete()
        except Exception as error:  # W&B's client raises many kinds for one failed request
            print(
                f"warning: could not delete old checkpoint versions of {self.path}: {one_line(error)}", file=sys.stderr
            )


def download(artifact: Any, incoming: Path) -> None:
    """The whole version into `incoming`, or PullFailed."""
    for _ in range(DOWNLOAD_TRIES):
        shutil.rmtree(incoming, ignore_errors=True)
        try:
            artifact.download(root=str(incoming), skip_cache=True)
            return
        except Exception as error:  # requests, W&B and the OS all raise their own kinds
            last = error
    raise PullFailed(f"could not download {artifact.name}: {one_line(last)}")


def sibling(folder: Path, role: str) -> Path:
    return folder.with_name(f"{folder.name}.pull-{os.getpid()}-{role}")


def remove_leftovers(folder: Path) -> None:
    """What a launch killed in the middle of a pull left beside the run folder."""
    for leftover in folder.parent.glob(f"{folder.name}.pull-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def swap_in(incoming: Path, folder: Path) -> None:
    """`incoming` becomes the run folder. Killed between the renames, the next pull starts over."""
    old = sibling(folder, "old")
    if folder.exists():
        folder.rename(old)
    incoming.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def progress(folder: Path) -> tuple[int, int]:
    """How far a run folder is along: launches recorded, then the newest complete checkpoint's step."""
    checkpoint = latest_checkpoint(folder)
    return len(read_launches(folder)), step_of(checkpoint) if checkpoint else -1


def progress_of(metadata: dict) -> tuple[int, int]:
    """A version's progress, as `_push` wrote it (`attempts`: the name versions logged before the rename gave it)."""
    return metadata.get("launches", metadata.get("attempts", -1)), metadata.get("step", -1)


def checkpoint_mirror(checkpoint_dir: str, run: Any, stop: StopRequest) -> CheckpointMirror:
    """An artifact for an online run with no volume; offline, the folder alone (W&B can sync it, not serve it)."""
    if checkpoint_dir or run.offline or run.disabled:
        return NoMirror()
    import wandb

    return ArtifactMirror(run, wandb.Api(), stop)
