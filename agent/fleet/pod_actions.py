"""`pods up`, `pods status` and `pods down`: what each does with RunPod, and what it tells the user."""

from __future__ import annotations

import json
from collections.abc import Callable

from agent.fleet.pods import PodPlan, PodSpec, Secrets, is_pod_of
from agent.fleet.runpod_api import GpuPrice, RunPod, RunPodError

Echo = Callable[[str], None]


def describe_cost(plan: PodPlan, price: GpuPrice) -> str:
    per_gpu = price.per_gpu(plan.interruptible)
    kind = "interruptible, lowest bid" if plan.interruptible else "on demand"
    if per_gpu is None:
        return f"cost: RunPod gives no {kind} price for {price.display_name} now"
    per_pod = per_gpu * plan.gpus_per_pod
    total = per_pod * plan.count
    cap = total * plan.max_hours
    return (
        f"cost: ${per_gpu:.3f}/h per {price.display_name} ({kind}), ${per_pod:.3f}/h per pod, "
        f"${total:.3f}/h for {plan.count} pod(s); --max-hours {plan.max_hours:g} caps it at ${cap:.2f}"
    )


def pods_up(api: RunPod, plan: PodPlan, specs: list[PodSpec], secrets: Secrets, dry_run: bool, echo: Echo) -> int:
    """Create the pods (or, for a dry run, print them); returns how many were created."""
    price = api.gpu_price(plan.gpu_type, plan.gpus_per_pod)
    if dry_run:
        for spec in specs:
            echo(json.dumps(spec.shown(secrets), indent=2))
        echo(describe_cost(plan, price))
        echo(f"dry run: no pod created ({len(specs)} would be)")
        return 0
    created = []
    for spec in specs:
        try:
            pod = api.create_pod(spec, price.min_bid)
        except RunPodError:
            if created:
                echo(f"created {len(created)} of {len(specs)} pods before this; `lora-sweep pods down {plan.sweep_id}`")
            raise
        created.append(pod["id"])
        echo(f"created pod {pod['id']} {spec.name}")
    echo(describe_cost(plan, price))
    return len(created)


def our_pods(api: RunPod, sweep_id: str | None) -> list[dict]:
    return [pod for pod in api.list_pods() if is_pod_of(pod, sweep_id)]


def pods_status(api: RunPod, sweep_id: str | None, echo: Echo) -> None:
    # Only named fields are shown: a listed pod also carries its env, secrets included.
    pods = our_pods(api, sweep_id)
    if not pods:
        echo(f"no lora-sweep pods{f' for {sweep_id}' if sweep_id else ''}")
        return
    echo(f"{'ID':<16} {'NAME':<40} {'STATUS':<10} {'GPUS':>4} {'$/H':>7} {'UPTIME':>8}")
    for pod in pods:
        uptime = f"{(pod.get('uptimeSeconds') or 0) / 3600:.1f}h"
        cost = pod.get("costPerHr") or 0
        status = pod.get("desiredStatus", "?")
        echo(f"{pod['id']:<16} {pod['name']:<40} {status:<10} {pod.get('gpuCount') or 0:>4} {cost:>7.3f} {uptime:>8}")
    total = sum(pod.get("costPerHr") or 0 for pod in pods)
    echo(f"{len(pods)} pod(s), ${total:.3f}/h")


def pods_down(api: RunPod, sweep_id: str | None, echo: Echo) -> int:
    pods = our_pods(api, sweep_id)
    for pod in pods:
        api.terminate_pod(pod["id"])
        echo(f"removed pod {pod['id']} {pod['name']}")
    if not pods:
        echo(f"no lora-sweep pods{f' for {sweep_id}' if sweep_id else ''} to remove")
    return len(pods)
