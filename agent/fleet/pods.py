"""What `lora-sweep pods up` asks RunPod for: one pod spec per pod, named after the sweep.

Only plain data here; talking to RunPod lives in agent/fleet/runpod_api.py. The secrets go into
the pods' environment and nowhere else: everything shown to the user goes through `shown()`.
A RunPod secret's reference (`--secret-env`) is no secret: RunPod fills in the value in the pod.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib.resources import files
from typing import Literal

from agent.env_vars import (
    AGENTS_PER_GPU_ENV,
    GPU_HOURLY_USD_ENV,
    MAX_HOURS_ENV,
    PACKAGE_ENV,
    RECLAIM_GRACE_ENV,
    RUN_DIR_ENV,
    START_ENV,
    STOP_GRACE_ENV,
    SWEEP_ID_ENV,
    TORCH_INDEX_ENV,
    WORKDIR_ENV,
)
from agent.errors import UserError
from agent.fleet.field_options import option
from agent.records import safe_name

POD_PREFIX = "lora-sweep"
MASK = "***"
# RunPod's PyTorch image: CUDA 12.8 drivers and a Python with pip; the torch index matches its CUDA.
DEFAULT_IMAGE = "runpod/pytorch:2.8.0-py3.11-cuda12.8.1-cudnn-devel-ubuntu22.04"
DEFAULT_TORCH_INDEX = "https://download.pytorch.org/whl/cu128"
WORKDIR = "/workspace"
# Without a network volume, a small volume disk at WORKDIR: RunPod keeps it across a stop or a
# container restart (the container disk is lost), so the pod script's boot count, deadline and
# reason for ending survive them. A network volume replaces it.
POD_VOLUME_GB = 1
RUN_DIR_WITHOUT_VOLUME = "/root/lora-sweep"
"""Where the agents run when there is no network volume: the container disk, which has room for
checkpoints and adapters (the 1 GB volume disk holds only the pod's state)."""
RUNPOD_KILL_AFTER_S = 5.0
"""RunPod sends SIGKILL this long after the SIGTERM that reclaims or stops a pod (docs/preemption.md)."""
RECLAIM_GRACE_S = 3.5
"""On SIGTERM, the pod script gives its agents this long, then kills them and removes the pod with
what is left of RUNPOD_KILL_AFTER_S. The trial's `preempt_grace_s` counts inside it: a SIGTERM save
it starts must end before its agent is killed."""
DEADLINE_GRACE_S = 60.0
"""At the --max-hours deadline, how long the pod script gives its agents to stop."""
# Unpacks the shipped start script from the pod's environment and runs it. The script removes
# the pod on every path; should it not even start, the pod removes itself here instead. RunPod's
# mutation takes this as a double-quoted string, so it holds no double quotes.
START_COMMAND = (
    f"bash -c 'echo ${START_ENV} | base64 -d > /tmp/lora-sweep-start.sh"
    " && exec bash /tmp/lora-sweep-start.sh || runpodctl pod delete $RUNPOD_POD_ID'"
)


class PodError(UserError):
    """The pods cannot be planned as asked; the message is one line for the user."""


@dataclass(frozen=True)
class Secrets:
    """Keys from the user's environment. Never printed, logged, or written anywhere but a pod's env."""

    runpod_api_key: str = field(repr=False)
    wandb_api_key: str | None = field(default=None, repr=False)
    """None when the pods take it from a RunPod secret (--secret-env)."""
    hf_token: str | None = field(default=None, repr=False)

    def pod_env(self) -> dict[str, str]:
        keys = {"WANDB_API_KEY": self.wandb_api_key, "HF_TOKEN": self.hf_token}
        return {name: value for name, value in keys.items() if value}

    def mask(self, text: str) -> str:
        for secret in (self.runpod_api_key, self.wandb_api_key, self.hf_token):
            if secret:
                text = text.replace(secret, MASK)
        return text


def secrets_from(env: Mapping[str, str], for_pods: bool = True, from_runpod: Collection[str] = ()) -> Secrets:
    """The keys from the user's environment, or one line naming the first that is missing.

    Creating pods needs the W&B key too (the agents on them need it), unless the pods take it from
    a RunPod secret; listing and removing them needs only RunPod's. A key the pods take from a
    RunPod secret is not read here at all, so it never travels from this machine.
    """
    needed = [("RUNPOD_API_KEY", "to manage RunPod pods")]
    if for_pods and "WANDB_API_KEY" not in from_runpod:
        needed.append(("WANDB_API_KEY", "for the agents on the pods to reach W&B (or pass it as --secret-env)"))
    for name, why in needed:
        if not env.get(name):
            raise PodError(f"{name} is not set: export it {why}")

    def local(name: str) -> str | None:
        return None if name in from_runpod else env.get(name) or None

    return Secrets(env["RUNPOD_API_KEY"], local("WANDB_API_KEY"), local("HF_TOKEN"))


SECRET_ENV = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)=RUNPOD_SECRET_(?P<secret>[A-Za-z0-9_.-]+)")


def secret_references(pairs: Iterable[str]) -> dict[str, str]:
    """`--secret-env NAME=RUNPOD_SECRET_name`: the pods' NAME as RunPod's reference to its secret
    `name`, `{{ RUNPOD_SECRET_name }}`, which RunPod fills in as the pod starts. The reference is
    no secret: it is sent, and shown, as it is; the value stays in RunPod."""
    references: dict[str, str] = {}
    for pair in pairs:
        match = SECRET_ENV.fullmatch(pair.strip())
        if match is None:
            raise PodError(
                f"--secret-env {pair!r}: give NAME=RUNPOD_SECRET_name, naming a secret of your RunPod account"
            )
        name = match["name"]
        if name.startswith(("LORA_SWEEP_", "RUNPOD_")) or name in references:
            why = "given twice" if name in references else "set by lora-sweep or RunPod itself"
            raise PodError(f"--secret-env {name}: {why}")
        references[name] = "{{ RUNPOD_SECRET_" + match["secret"] + " }}"
    return references


@dataclass(frozen=True)
class PodPlan:
    """What the user asked `pods up` for. Each field with help is one of its options (field_options.py)."""

    sweep_id: str
    count: int = option(help="How many pods.", min=1)
    gpu_type: str = option(help='RunPod GPU type id, e.g. "NVIDIA GeForce RTX 4090".')
    gpus_per_pod: int = option(1, help="One agent per GPU.", min=1)
    interruptible: bool = option(False, help="Spot pods at RunPod's lowest bid: cheaper, can be reclaimed.")
    image: str = option(DEFAULT_IMAGE, help="Container image (by default RunPod's PyTorch image, CUDA 12.8).")
    network_volume: str | None = option(None, help="RunPod network volume mounted at /workspace.", metavar="ID")
    max_hours: float = option(
        12.0,
        help="Watchdog: the last pod stops its agents and removes itself this long after its first boot; "
        "the others earlier (staggered, up to half earlier).",
        min=0,
        min_open=True,
    )
    package: str | None = option(
        None,
        help="pip requirement installed on the pod, name==version or name @ git+URL@REF; checked before renting",
        default_help="this clone's commit on its origin, else this version",
    )
    """None until `pods up` resolves it (`default_package`), before anything is checked or rented."""
    torch_index: str = option(
        DEFAULT_TORCH_INDEX,
        help='pip index of the torch build for the image, by default CUDA 12.8 wheels ("" keeps its torch).',
    )
    container_disk_gb: int = option(50, help="GB per pod.", min=10)
    cloud_type: Literal["ALL", "SECURE", "COMMUNITY"] = option(
        "ALL", help="RunPod's secure cloud, community cloud, or either."
    )
    secret_env: tuple[str, ...] = option(
        (),
        help="Set NAME on the pods from your RunPod secret `name` instead of from this environment "
        "(e.g. WANDB_API_KEY=RUNPOD_SECRET_wandb_key); repeatable.",
        metavar="NAME=RUNPOD_SECRET_name",
    )
    agents_per_gpu: int = option(
        1,
        help="Agents that share each GPU (`lora-sweep agent --agents-per-gpu`); each run pays its share of the price.",
        min=1,
    )


@dataclass(frozen=True)
class PodSpec:
    """One pod as RunPod is asked for it."""

    name: str
    image_name: str
    gpu_type_id: str
    gpu_count: int
    cloud_type: str
    container_disk_in_gb: int
    network_volume_id: str | None
    volume_in_gb: int
    volume_mount_path: str
    docker_args: str
    env: Mapping[str, str] = field(repr=False)
    interruptible: bool

    def shown(self, secrets: Secrets) -> dict:
        """The spec as printed by --dry-run: every secret as ***, the start script by its size."""
        spec = {key: getattr(self, key) for key in self.__dataclass_fields__ if key != "env"}
        env = {key: (MASK if key in secrets.pod_env() else value) for key, value in self.env.items()}
        env[START_ENV] = f"<pod_start.sh, {len(self.env[START_ENV])} base64 chars>"
        return spec | {"env": env}


def pod_name(sweep_id: str, index: int) -> str:
    return f"{POD_PREFIX}-{safe_name(sweep_id)}-{index}"


def is_pod_of(pod: Mapping, sweep_id: str | None) -> bool:
    """Whether a pod listed by RunPod is one of ours (of this sweep, or of any sweep for None)."""
    name = pod.get("name") or ""
    pattern = re.escape(safe_name(sweep_id)) if sweep_id else ".+"
    return re.fullmatch(rf"{POD_PREFIX}-{pattern}-\d+", name) is not None


def start_script() -> str:
    return files("agent.fleet").joinpath("pod_start.sh").read_text(encoding="utf-8")


def pod_specs(plan: PodPlan, secrets: Secrets) -> list[PodSpec]:
    env = {
        SWEEP_ID_ENV: plan.sweep_id,
        PACKAGE_ENV: plan.package,
        TORCH_INDEX_ENV: plan.torch_index,
        WORKDIR_ENV: WORKDIR,
        RECLAIM_GRACE_ENV: f"{RECLAIM_GRACE_S:g}",
        STOP_GRACE_ENV: f"{DEADLINE_GRACE_S:g}",
        # Read by `lora-sweep agent` on the pod through its option's environment variable.
        AGENTS_PER_GPU_ENV: str(plan.agents_per_gpu),
        START_ENV: base64.b64encode(start_script().encode()).decode(),
        **secrets.pod_env(),
        **secret_references(plan.secret_env),
    }
    if plan.network_volume:
        # Model weights downloaded once per volume, not once per pod.
        env["HF_HOME"] = f"{WORKDIR}/.cache/huggingface"
    else:
        env[RUN_DIR_ENV] = RUN_DIR_WITHOUT_VOLUME
    check_env_values(env)
    return [
        PodSpec(
            name=pod_name(plan.sweep_id, index),
            image_name=plan.image,
            gpu_type_id=plan.gpu_type,
            gpu_count=plan.gpus_per_pod,
            cloud_type=plan.cloud_type,
            container_disk_in_gb=plan.container_disk_gb,
            network_volume_id=plan.network_volume,
            volume_in_gb=0 if plan.network_volume else POD_VOLUME_GB,
            volume_mount_path=WORKDIR,
            docker_args=START_COMMAND,
            env={**env, MAX_HOURS_ENV: f"{pod_hours(plan, index):g}"},
            interruptible=plan.interruptible,
        )
        for index in range(1, plan.count + 1)
    ]


def priced(specs: list[PodSpec], gpu_hourly_usd: float | None) -> list[PodSpec]:
    """The specs with RunPod's price of one GPU-hour in their environment, so every run logs its
    cost (a run that shares its GPU pays its share); unchanged when RunPod gives no price."""
    if gpu_hourly_usd is None:
        return specs
    return [replace(spec, env={**spec.env, GPU_HOURLY_USD_ENV: f"{gpu_hourly_usd:.6g}"}) for spec in specs]


# Deadlines are staggered: pod n of n runs the full --max-hours, each one before it stops this
# share of it earlier (at most half of it), so the last pods outlive the others and pick up the
# runs the first ones left requeued, rather than every run in flight being cut at once.
DEADLINE_STAGGER = 0.05


def pod_hours(plan: PodPlan, index: int) -> float:
    earlier = min(DEADLINE_STAGGER * (plan.count - index), 0.5)
    return round(plan.max_hours * (1 - earlier), 3)


def check_env_values(env: Mapping[str, str]) -> None:
    # RunPod's SDK writes env values into its GraphQL text unescaped: a quote or backslash would
    # break the request or change it. Name the variable, never its value.
    for key, value in env.items():
        if any(char in value for char in '"\\\n'):
            raise PodError(f"{key} holds a quote, backslash or newline, which RunPod's API cannot take")
