"""Talking to RunPod: the official `runpod` SDK, and its GraphQL transport for the one call it lacks.

The SDK has no call for interruptible (spot) pods, so that mutation is written here, after
RunPod's documented `podRentInterruptable`, and sent through the SDK's own `run_graphql_query`.
Every error becomes one line with secrets masked: the SDK's errors can carry the query text,
and the query carries the pod's environment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import ModuleType

from agent.errors import UserError
from agent.fleet.pods import PodSpec, Secrets


class RunPodError(UserError):
    """RunPod refused or could not be reached; the message is one line, with secrets masked."""


@dataclass(frozen=True)
class GpuPrice:
    """RunPod's current lowest prices for a GPU type, in US dollars per GPU per hour."""

    display_name: str
    on_demand: float | None
    min_bid: float | None
    """The lowest accepted bid for an interruptible GPU."""

    def per_gpu(self, interruptible: bool) -> float | None:
        return self.min_bid if interruptible else self.on_demand


class RunPod:
    """The SDK with our key set; one object per command."""

    def __init__(self, secrets: Secrets):
        try:
            import runpod
        except ImportError:
            raise RunPodError("the RunPod SDK is not installed: pip install 'runpod>=1.12,<2'") from None
        # The SDK reads its key from a module global (some of its calls take no key argument).
        runpod.api_key = secrets.runpod_api_key
        self.sdk: ModuleType = runpod
        self.secrets = secrets

    def gpu_price(self, gpu_type: str, gpu_count: int) -> GpuPrice:
        gpu = self._call(self.sdk.get_gpu, gpu_type, gpu_count)
        lowest = gpu.get("lowestPrice") or {}
        return GpuPrice(
            gpu.get("displayName") or gpu_type, lowest.get("uninterruptablePrice"), lowest.get("minimumBidPrice")
        )

    def create_pod(self, spec: PodSpec, bid_per_gpu: float | None) -> dict:
        if spec.interruptible:
            return self._create_interruptible(spec, bid_per_gpu)
        return self._call(
            self.sdk.create_pod,
            name=spec.name,
            image_name=spec.image_name,
            gpu_type_id=spec.gpu_type_id,
            cloud_type=spec.cloud_type,
            gpu_count=spec.gpu_count,
            container_disk_in_gb=spec.container_disk_in_gb,
            volume_in_gb=spec.volume_in_gb,
            volume_mount_path=spec.volume_mount_path,
            network_volume_id=spec.network_volume_id,
            docker_args=spec.docker_args,
            env=dict(spec.env),
        )

    def list_pods(self) -> list[dict]:
        return self._call(self.sdk.get_pods)

    def terminate_pod(self, pod_id: str) -> None:
        self._call(self.sdk.terminate_pod, pod_id)

    def _create_interruptible(self, spec: PodSpec, bid_per_gpu: float | None) -> dict:
        if bid_per_gpu is None:
            raise RunPodError(f"RunPod offers no interruptible {spec.gpu_type_id} now: try without --interruptible")
        data_center = self.network_volume_data_center(spec.network_volume_id)
        query = interruptible_pod_mutation(spec, bid_per_gpu, data_center)
        from runpod.api.graphql import run_graphql_query

        try:
            answer = self._call(run_graphql_query, query, api_key=self.secrets.runpod_api_key)
        except RunPodError as error:
            # RunPod has said it is removing interruptible pods from its API: when its GraphQL answer
            # is about that mutation, say so plainly; any other failure (the network) is itself.
            if "podRentInterruptable" not in str(error):
                raise
            raise RunPodError(f"RunPod refused an interruptible pod ({error}): run without --interruptible") from None
        return answer["data"]["podRentInterruptable"]

    def network_volume_data_center(self, volume_id: str | None) -> str | None:
        # A network volume lives in one data center and the pod must be placed there; the SDK
        # looks this up the same way for on-demand pods.
        if volume_id is None:
            return None
        volumes = self._call(self.sdk.get_user).get("networkVolumes") or []
        for volume in volumes:
            if volume.get("id") == volume_id:
                return volume.get("dataCenterId")
        raise RunPodError(f"network volume {volume_id} not found in this RunPod account")

    def _call(self, function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except Exception as error:  # the SDK raises its own errors, requests' and ValueError alike
            message = " ".join(str(error).split()) or type(error).__name__
            raise RunPodError(f"RunPod: {self.secrets.mask(message)}") from None


def interruptible_pod_mutation(spec: PodSpec, bid_per_gpu: float, data_center: str | None) -> str:
    """RunPod's documented `podRentInterruptable`, with every string a JSON (and GraphQL) literal."""
    fields = {
        # repr is the shortest exact form: `:g` would round 0.1234567 to 0.123457, or 0.1234564 below the minimum.
        "bidPerGpu": repr(float(bid_per_gpu)),
        "cloudType": spec.cloud_type,
        "gpuCount": str(spec.gpu_count),
        "volumeInGb": str(spec.volume_in_gb),
        "containerDiskInGb": str(spec.container_disk_in_gb),
        "gpuTypeId": json.dumps(spec.gpu_type_id),
        "name": json.dumps(spec.name),
        "imageName": json.dumps(spec.image_name),
        "dockerArgs": json.dumps(spec.docker_args),
        "volumeMountPath": json.dumps(spec.volume_mount_path),
        "env": "[" + ", ".join(f"{{key: {json.dumps(k)}, value: {json.dumps(v)}}}" for k, v in spec.env.items()) + "]",
    }
    if spec.network_volume_id:
        fields["networkVolumeId"] = json.dumps(spec.network_volume_id)
    if data_center:
        fields["dataCenterId"] = json.dumps(data_center)
    body = ", ".join(f"{key}: {value}" for key, value in fields.items())
    return f"mutation {{ podRentInterruptable(input: {{{body}}}) {{ id imageName machineId costPerHr }} }}"
