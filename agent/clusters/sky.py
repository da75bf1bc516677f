"""`lora-sweep sky task`: a SkyPilot task YAML whose every node runs one `lora-sweep agent` per GPU.

Plain data in, text out: nothing here talks to SkyPilot or reads the environment. The file is meant
for `sky jobs launch FILE --secret WANDB_API_KEY` (a managed job, which SkyPilot recovers after a
spot reclaim) and works with `sky launch` too; docs/cluster.md, SkyPilot, says what each part does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.clusters.install import (
    AGENT,
    ENV_NAME,
    INSTALL,
    PREEMPTED_EXIT,
    WANDB_KEY,
    ClusterError,
    check_gpu_spec,
    dump_yaml,
    package_option,
    torch_index_option,
)
from agent.env_vars import PACKAGE_ENV, SWEEP_ID_ENV, TORCH_INDEX_ENV
from agent.fleet.field_options import option
from agent.records import safe_name


@dataclass(frozen=True)
class SkyTask:
    """What the user asked `sky task` for. Each field with help is one of its options (field_options.py)."""

    sweep_id: str
    gpus: tuple[str, ...] = option(
        help="Accelerators of each node, TYPE:N (SkyPilot's names, e.g. A100:1); repeat it for any of several.",
        metavar="TYPE:N",
    )
    count: int = option(1, help="Nodes (SkyPilot's num_nodes), each running one agent per GPU.", min=1)
    spot: bool = option(False, help="Spot instances: cheaper, can be reclaimed; a managed job is then recovered.")
    max_restarts: int = option(
        3, help="Managed job: restarts after a node fails (exit other than 0 and 143) before the job fails.", min=0
    )
    package: str | None = package_option("on each node")
    """None until the command resolves it (`default_package`), before it is checked."""
    torch_index: str = torch_index_option()
    secret: tuple[str, ...] = option(
        (),
        help=f"Another secret the nodes get by name, as {WANDB_KEY} does (e.g. HF_TOKEN); repeatable.",
        metavar="NAME",
    )
    out: str | None = option(None, help="Where to write the task.", default_help=".lora-sweep/sky/<sweep>.yaml")

    def accelerators(self) -> list[str]:
        return [f"{kind}:{count}" for kind, count in map(check_gpu_spec, self.gpus)]

    def secret_names(self) -> list[str]:
        for name in self.secret:
            if not ENV_NAME.fullmatch(name):
                raise ClusterError(f"--secret {name!r}: give the name of an environment variable, such as HF_TOKEN")
        return list(dict.fromkeys((WANDB_KEY, *self.secret)))

    def path(self) -> Path:
        return Path(self.out) if self.out else Path(".lora-sweep/sky") / f"{safe_name(self.sweep_id)}.yaml"


def task_config(task: SkyTask) -> dict:
    """The task as SkyPilot's YAML holds it; `task.package` is resolved by now."""
    accelerators = task.accelerators()
    one = len(accelerators) == 1
    resources: dict = (
        {"accelerators": accelerators[0]} if one else {"any_of": [{"accelerators": each} for each in accelerators]}
    )
    resources["use_spot"] = task.spot
    # A managed job: a node whose agents ended on SIGTERM (143) is recovered without counting as a restart.
    resources["job_recovery"] = {
        "strategy": "EAGER_NEXT_REGION",
        "max_restarts_on_errors": task.max_restarts,
        "recover_on_exit_codes": [PREEMPTED_EXIT],
    }
    return {
        "name": f"lora-sweep-{safe_name(task.sweep_id)}",
        "num_nodes": task.count,
        "resources": resources,
        "envs": {SWEEP_ID_ENV: task.sweep_id, PACKAGE_ENV: task.package, TORCH_INDEX_ENV: task.torch_index},
        # A null value: SkyPilot takes it at launch from `--secret NAME` (this shell's variable) or its
        # secrets store, and never writes it into the task.
        "secrets": {name: None for name in task.secret_names()},
        "setup": "set -e\n" + INSTALL,
        "run": AGENT,
    }


def task_yaml(task: SkyTask) -> str:
    """The file: how to launch it, then the task. Multi-line scripts as YAML blocks, as people write them."""
    secrets = " ".join(f"--secret {name}" for name in task_config(task)["secrets"])
    header = (
        f"# Written by `lora-sweep sky task` for the W&B sweep {task.sweep_id}.\n"
        f"# Launch (recovered after a spot reclaim): sky jobs launch {task.path()} {secrets}\n"
        "# Each node installs lora-sweep, then runs one `lora-sweep agent` per GPU (docs/cluster.md).\n"
    )
    return header + dump_yaml(task_config(task))
