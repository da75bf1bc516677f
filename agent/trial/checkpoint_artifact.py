"""A run's checkpoints kept in W&B, for machines with no shared volume (`checkpoint_dir` empty).

The run folder (the newest complete checkpoint and `attempts.json`) is logged as the artifact
`checkpoint-<run_id>`, type `checkpoint`, each time it changes: when a launch begins, when a
checkpoint is sealed, when a launch ends. Every version takes the `latest` alias, which W&B moves
only once a version is committed, so an upload cut short by SIGKILL never becomes what a relaunch
downloads. A relaunch on any machine downloads `:latest` into its run folder before it looks for a
checkpoint, unless its own folder is as far along. Only the newest versions are kept: before
logging one, the committed versions that `latest` has moved past are deleted (not while a
preemption's grace runs out: that waits for the next launch).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any, Protocol

from agent.trial.checkpoint import latest_checkpoint, read_attempts, step_of
from agent.trial.stopping import StopRequest

ARTIFACT_TYPE = "checkpoint"
LATEST = "latest"


class CheckpointMirror(Protocol):
    def pull(self, folder: Path) -> None: ...

    def push(self, folder: Path) -> None: ...


class NoMirror:
    """Checkpoints stay in the run folder alone: a volume every machine mounts, or this machine's disk."""

    def pull(self, folder: Path) -> None:
        pass

    def push(self, folder: Path) -> None:
        pass


def artifact_name(run_id: str) -> str:
    return f"checkpoint-{run_id}"


class ArtifactMirror:
    """The run folder mirrored to the run's `checkpoint-<run_id>` artifact."""

    def __init__(self, run: Any, api: Any, stop: StopRequest):
        self.run, self.api, self.stop = run, api, stop
        self.path = f"{run.entity}/{run.project}/{artifact_name(run.id)}"

    def pull(self, folder: Path) -> None:
        """Replace `folder` with the newest version if that is further along (another machine ran the run
        since), and leave it otherwise (a first launch, or an upload cut short here)."""
        if not self.api.artifact_exists(f"{self.path}:{LATEST}", type=ARTIFACT_TYPE):
            return
        artifact = self.api.artifact(f"{self.path}:{LATEST}", type=ARTIFACT_TYPE)
        if progress_of(artifact.metadata) <= progress(folder):
            return
        shutil.rmtree(folder, ignore_errors=True)
        artifact.download(root=str(folder), skip_cache=True)
        print(f"checkpoint: downloaded {self.path}:{artifact.version} into {folder}", file=sys.stderr)

    def push(self, folder: Path) -> None:
        """Log `folder` as a new version (uploaded in the background), after removing the superseded ones."""
        import wandb

        if not self.stop.preempted:
            self._delete_superseded()
        attempts, step = progress(folder)
        artifact = wandb.Artifact(
            artifact_name(self.run.id), type=ARTIFACT_TYPE, metadata={"attempts": attempts, "step": step}
        )
        artifact.add_dir(str(folder))
        self.run.log_artifact(artifact, aliases=[LATEST])

    def _delete_superseded(self) -> None:
        # A failure here costs storage, never the run: the next push tries again.
        try:
            for version in self.api.artifacts(ARTIFACT_TYPE, self.path):
                if LATEST not in version.aliases:
                    version.delete()
        except Exception as error:  # W&B's client raises many kinds for one failed request
            print(f"warning: could not delete old checkpoint versions of {self.path}: {error}", file=sys.stderr)


def progress(folder: Path) -> tuple[int, int]:
    """How far a run folder is along: launches recorded, then the newest complete checkpoint's step."""
    checkpoint = latest_checkpoint(folder)
    return len(read_attempts(folder)), step_of(checkpoint) if checkpoint else -1


def progress_of(metadata: dict) -> tuple[int, int]:
    return metadata.get("attempts", -1), metadata.get("step", -1)


def checkpoint_mirror(checkpoint_dir: str, run: Any, stop: StopRequest) -> CheckpointMirror:
    """An artifact for an online run with no volume; offline, the folder alone (W&B can sync it, not serve it)."""
    if checkpoint_dir or run.offline or run.disabled:
        return NoMirror()
    import wandb

    return ArtifactMirror(run, wandb.Api(), stop)
