"""What `lora-sweep pods up` asks RunPod for: one pod spec per pod, named after the sweep.

Only plain data here; talking to RunPod lives in agent/fleet/runpod_api.py. The secrets go into
the pods' environment and nowhere else: everything shown to the user goes through `shown()`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources import files

from agent.errors import UserError
from agent.records import safe_name

POD_PREFIX = "lora-sweep"
SWEEP_LABEL = "LORA_SWEEP_ID"
MASK = "***"
# RunPod's PyTorch image: CUDA 12.8 drivers and a Python with pip; the torch index matches its CUDA.
DEFAULT_IMAGE = "runpod/pytorch:2.8.0-py3.11-cuda12.8.1-cudnn-devel-ubuntu22.04"
DEFAULT_TORCH_INDEX = "https://download.pytorch.org/whl/cu128"
WORKDIR = "/workspace"
# Unpacks the shipped start script from the pod's environment and runs it. The script removes
# the pod on every path; should it not even start, the pod removes itself here instead. RunPod's
# mutation takes this as a double-quoted string, so it holds no double quotes.
START_COMMAND = (
    "bash -c 'echo $LORA_SWEEP_START | base64 -d > /tmp/lora-sweep-start.sh"
    " && exec bash /tmp/lora-sweep-start.sh || runpodctl pod delete $RUNPOD_POD_ID'"
)


class PodError(UserError):
    """The pods cannot be planned as asked; the message is one line for the user."""


@dataclass(frozen=True)
class Secrets:
    """Keys from the user's environment. Never printed, logged, or written anywhere but a pod's env."""

    runpod_api_key: str = field(repr=False)
    wandb_api_key: str = field(repr=False)
    hf_token: str | None = field(default=None, repr=False)

    def pod_env(self) -> dict[str, str]:
        env = {"WANDB_API_KEY": self.wandb_api_key}
        return env | ({"HF_TOKEN": self.hf_token} if self.hf_token else {})

    def mask(self, text: str) -> str:
        for secret in (self.runpod_api_key, self.wandb_api_key, self.hf_token):
            if secret:
                text = text.replace(secret, MASK)
        return text


def secrets_from(env: Mapping[str, str], for_pods: bool = True) -> Secrets:
    """The keys from the user's environment, or one line naming the first that is missing.

    Creating pods needs the W&B key too (the agents on them need it); listing and removing them
    needs only RunPod's.
    """
    needed = [("RUNPOD_API_KEY", "to manage RunPod pods")]
    needed += [("WANDB_API_KEY", "for the agents on the pods to reach W&B")] if for_pods else []
    for name, why in needed:
        if not env.get(name):
            raise PodError(f"{name} is not set: export it {why}")
    return Secrets(env["RUNPOD_API_KEY"], env.get("WANDB_API_KEY", ""), env.get("HF_TOKEN") or None)


@dataclass(frozen=True)
class PodPlan:
    """What the user asked `pods up` for."""

    sweep_id: str
    count: int
    gpu_type: str
    gpus_per_pod: int = 1
    interruptible: bool = False
    image: str = DEFAULT_IMAGE
    network_volume: str | None = None
    max_hours: float = 12.0
    package: str = "lora-sweep"
    torch_index: str = DEFAULT_TORCH_INDEX
    container_disk_gb: int = 50
    cloud_type: str = "ALL"


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
    volume_mount_path: str
    docker_args: str
    env: Mapping[str, str] = field(repr=False)
    interruptible: bool

    def shown(self, secrets: Secrets) -> dict:
        """The spec as printed by --dry-run: every secret as ***, the start script by its size."""
        spec = {key: getattr(self, key) for key in self.__dataclass_fields__ if key != "env"}
        env = {key: (MASK if key in secrets.pod_env() else value) for key, value in self.env.items()}
        env["LORA_SWEEP_START"] = f"<pod_start.sh, {len(self.env['LORA_SWEEP_START'])} base64 chars>"
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
        SWEEP_LABEL: plan.sweep_id,
        "LORA_SWEEP_PACKAGE": plan.package,
        "LORA_SWEEP_TORCH_INDEX": plan.torch_index,
        "LORA_SWEEP_WORKDIR": WORKDIR,
        "LORA_SWEEP_START": base64.b64encode(start_script().encode()).decode(),
        **secrets.pod_env(),
    }
    if plan.network_volume:
        # Model weights downloaded once per volume, not once per pod.
        env["HF_HOME"] = f"{WORKDIR}/.cache/huggingface"
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
            volume_mount_path=WORKDIR,
            docker_args=START_COMMAND,
            env={**env, "LORA_SWEEP_MAX_HOURS": f"{pod_hours(plan, index):g}"},
            interruptible=plan.interruptible,
        )
        for index in range(1, plan.count + 1)
    ]


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
