"""`lora-sweep k8s job`: a Kubernetes Indexed Job whose every pod runs one `lora-sweep agent` per GPU.

Plain data in, a manifest out: nothing here talks to a cluster. Each pod installs the package, then
`exec`s the supervisor, so that it is the container's main process: Kubernetes sends SIGTERM to that
process only, and the supervisor forwards it to every agent. A pod that ends preempted (exit 143, or
evicted with the DisruptionTarget condition) is replaced without counting against --backoff-limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.clusters.install import (
    AGENT,
    INSTALL,
    PREEMPTED_EXIT,
    WANDB_KEY,
    ClusterError,
    dump_yaml,
    package_option,
    torch_index_option,
)
from agent.env_vars import PACKAGE_ENV, SWEEP_ID_ENV, TORCH_INDEX_ENV
from agent.fleet.field_options import option
from agent.fleet.pods import DEFAULT_IMAGE, WORKDIR
from agent.fleet.supervisor import LEFTOVER_GRACE_S

CONTAINER = "agent"
RUN_SAVE_GRACE_S = 3.0
"""The trial's `preempt_grace_s` default: a run's last checkpoint must be written this soon after
SIGTERM (tests/test_clusters_k8s.py holds it to agent.trial.config.PreemptArgs)."""
GRACE_S = 30
"""Kubernetes' own default grace: the runs' save, the agents' exit and W&B's upload of the checkpoint
fit in it with room. A sweep that raises `preempt_grace_s` needs a longer --grace."""
HF_TOKEN = "HF_TOKEN"


@dataclass(frozen=True)
class K8sJob:
    """What the user asked `k8s job` for. Each field with help is one of its options (field_options.py)."""

    sweep_id: str
    gpus_per_pod: int = option(help="GPUs of each pod (nvidia.com/gpu), one agent each.", min=1)
    parallelism: int = option(1, help="Pods at once.", min=1)
    completions: int | None = option(
        None, help="Pods that must end with the sweep done for them.", min=1, default_help="--parallelism"
    )
    image: str = option(DEFAULT_IMAGE, help="Container image with python, pip and git (by default the pods' image).")
    package: str | None = package_option("in each pod")
    """None until the command resolves it (`default_package`), before it is checked."""
    torch_index: str = torch_index_option()
    secret: str = option(
        "wandb",
        help=f"Secret holding {WANDB_KEY} (and, optionally, {HF_TOKEN}) under those keys.",
        metavar="NAME",
    )
    namespace: str | None = option(None, help="The Job's namespace.", default_help="kubectl's current one")
    grace_s: int = option(
        GRACE_S, help="Seconds a pod gets after SIGTERM before SIGKILL (terminationGracePeriodSeconds).", min=1
    )
    backoff_limit: int = option(3, help="Failed pods before the Job fails; preempted pods do not count.", min=0)
    volume_claim: str | None = option(
        None,
        help=f"PersistentVolumeClaim mounted at {WORKDIR}, where the agents run; a shared one keeps checkpoints.",
        metavar="NAME",
    )

    def check(self) -> None:
        least = RUN_SAVE_GRACE_S + LEFTOVER_GRACE_S
        if self.grace_s < least:
            raise ClusterError(
                f"--grace {self.grace_s}: a pod needs at least {least:g} s after SIGTERM (the runs' "
                f"{RUN_SAVE_GRACE_S:g} s save and the supervisor's {LEFTOVER_GRACE_S:g} s for runs left behind)"
            )


def job_name(sweep_id: str) -> str:
    """A DNS label from the sweep id (Kubernetes' rule for a Job's name): lower case, `-`, at most 63."""
    name = "lora-sweep-" + re.sub(r"[^a-z0-9]+", "-", sweep_id.lower()).strip("-")
    return name[:63].rstrip("-")


def container_env(job: K8sJob) -> list[dict]:
    def from_secret(name: str, optional: bool) -> dict:
        return {"name": name, "valueFrom": {"secretKeyRef": {"name": job.secret, "key": name, "optional": optional}}}

    plain = {SWEEP_ID_ENV: job.sweep_id, PACKAGE_ENV: job.package, TORCH_INDEX_ENV: job.torch_index}
    return [{"name": key, "value": value} for key, value in plain.items()] + [
        from_secret(WANDB_KEY, optional=False),
        from_secret(HF_TOKEN, optional=True),
    ]


def job_manifest(job: K8sJob) -> dict:
    """The Job as `kubectl apply -f` takes it; `job.package` is resolved by now."""
    container = {
        "name": CONTAINER,
        "image": job.image,
        "command": ["bash", "-c", "set -e\n" + INSTALL + AGENT],
        "env": container_env(job),
        "resources": {"limits": {"nvidia.com/gpu": str(job.gpus_per_pod)}},  # a quantity, as the API returns it
    }
    pod: dict = {"restartPolicy": "Never", "terminationGracePeriodSeconds": job.grace_s, "containers": [container]}
    if job.volume_claim:
        container["workingDir"] = WORKDIR
        container["volumeMounts"] = [{"name": "work", "mountPath": WORKDIR}]
        pod["volumes"] = [{"name": "work", "persistentVolumeClaim": {"claimName": job.volume_claim}}]
    metadata: dict = {"name": job_name(job.sweep_id), "labels": {"app.kubernetes.io/name": "lora-sweep"}}
    if job.namespace:
        metadata["namespace"] = job.namespace
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "completionMode": "Indexed",
            "completions": job.completions or job.parallelism,
            "parallelism": job.parallelism,
            "backoffLimit": job.backoff_limit,
            # A preempted pod is replaced and not counted as a failure: evicted or preempted by the
            # cluster (the DisruptionTarget condition), or ended by SIGTERM and exited 143.
            "podFailurePolicy": {
                "rules": [
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                    {
                        "action": "Ignore",
                        "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": [PREEMPTED_EXIT]},
                    },
                ]
            },
            "template": {"metadata": {"labels": {"app.kubernetes.io/name": "lora-sweep"}}, "spec": pod},
        },
    }


def manifest_yaml(job: K8sJob) -> str:
    header = (
        f"# Written by `lora-sweep k8s job` for the W&B sweep {job.sweep_id}.\n"
        "# Apply: kubectl apply -f FILE (docs/cluster.md, Kubernetes)\n"
    )
    return header + dump_yaml(job_manifest(job))
