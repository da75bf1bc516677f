"""The SkyPilot and Kubernetes commands: `sky task` writes a task YAML, `k8s job` prints a Job.

Both are recipes around `lora-sweep agent`, not controllers: they write the scheduler's own file
and start nothing. The environment is read here, at the entry point, to resolve and check --package
as `pods up` does; the files themselves are built in agent/clusters/sky.py and k8s.py.
"""

from __future__ import annotations

import os
from dataclasses import replace

import click

from agent.clusters.install import check_sweep_id
from agent.clusters.k8s import K8sJob, manifest_yaml
from agent.clusters.sky import SkyTask, task_yaml
from agent.fleet.cli import default_package
from agent.fleet.field_options import field_options


def echo_err(line: str) -> None:
    click.echo(line, err=True)


def resolved_package(package: str | None) -> str:
    """--package, or its default, checked as a dry run of `pods up` checks it: a requirement that
    cannot be installed is one line and nothing is written; one that could not be checked (offline)
    is noted, and the file is written."""
    from agent.fleet.package_check import check_package
    from agent.fleet.pod_actions import check_before_renting

    package = package or default_package()
    check_before_renting(check_package(package, dict(os.environ)), True, echo_err)
    return package


@click.group("sky")
def sky_group() -> None:
    """SkyPilot tasks that work a W&B sweep, one agent per GPU on every node.

    \b
    Example:
      lora-sweep sky task me/lora/8f3k2x1q --gpus A100:1 --count 4 --spot
      sky jobs launch .lora-sweep/sky/me-lora-8f3k2x1q.yaml --secret WANDB_API_KEY

    See docs/cluster.md, SkyPilot.
    """


@sky_group.command("task")
@click.argument("sweep_id", metavar="ENTITY/PROJECT/SWEEP_ID")
@field_options(SkyTask)
def sky_task_command(**params) -> None:
    """Write a SkyPilot task whose COUNT nodes each run `lora-sweep agent SWEEP_ID --gpus all`.

    Each node installs --package (checked first, as `pods up` checks it; offline the check is noted
    and the file still written) and runs one agent per GPU until the sweep has no more runs for it.
    WANDB_API_KEY is named in the task's secrets, never written: SkyPilot takes its value at launch
    (`--secret WANDB_API_KEY`, from your shell). As a managed job (`sky jobs launch`), a job hit by a
    spot reclaim is relaunched and its agents start again; W&B hands them the runs it requeued.

    \b
    Example:
      lora-sweep sky task me/lora/8f3k2x1q --gpus A100:1 --gpus H100:1 --count 2 --spot
    """
    task = SkyTask(**params)
    check_sweep_id(task.sweep_id, "SkyPilot nodes")
    task.accelerators(), task.secret_names()  # a bad --gpus or --secret is one line before the package check
    task = replace(task, package=resolved_package(task.package))
    path = task.path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(task_yaml(task))
    click.echo(f"wrote {path}")


@click.group("k8s")
def k8s_group() -> None:
    """Kubernetes Jobs that work a W&B sweep, one agent per GPU in every pod.

    \b
    Example:
      kubectl create secret generic wandb --from-literal=WANDB_API_KEY="$WANDB_API_KEY"
      lora-sweep k8s job me/lora/8f3k2x1q --gpus-per-pod 2 --parallelism 4 | kubectl apply -f -

    See docs/cluster.md, Kubernetes.
    """


@k8s_group.command("job")
@click.argument("sweep_id", metavar="ENTITY/PROJECT/SWEEP_ID")
@field_options(K8sJob)
def k8s_job_command(**params) -> None:
    """Print an Indexed Job whose pods each run `lora-sweep agent SWEEP_ID --gpus all`.

    Each pod installs --package (checked first, as `pods up` checks it; offline the check is noted
    and the Job still printed), then runs one agent per GPU until the sweep has no more runs for it.
    WANDB_API_KEY comes from the Secret --secret. A pod that ends preempted (SIGTERM, exit 143, or
    evicted by the cluster) is replaced without counting against --backoff-limit. The manifest goes
    to stdout, every note to stderr.

    \b
    Example:
      lora-sweep k8s job me/lora/8f3k2x1q --gpus-per-pod 2 --parallelism 4 > job.yaml
    """
    job = K8sJob(**params)
    check_sweep_id(job.sweep_id, "Kubernetes pods")
    job.check()
    job = replace(job, package=resolved_package(job.package))
    click.echo(manifest_yaml(job), nl=False)
