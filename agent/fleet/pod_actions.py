"""`pods up`, `pods status` and `pods down`: what each does with RunPod, and what it tells the user."""

from __future__ import annotations

import json
from collections.abc import Callable

from agent.fleet.package_check import PackageCheck
from agent.fleet.pods import PodError, PodPlan, PodSpec, Secrets, is_pod_of
from agent.fleet.runpod_api import GpuPrice, RunPod, RunPodError

Echo = Callable[[str], None]


def describe_cost(plan: PodPlan, specs: list[PodSpec], price: GpuPrice) -> str:
    per_gpu = price.per_gpu(plan.interruptible)
    kind = "interruptible, lowest bid" if plan.interruptible else "on demand"
    if per_gpu is None:
        return f"cost: RunPod gives no {kind} price for {price.display_name} now"
    per_pod = per_gpu * plan.gpus_per_pod
    total = per_pod * plan.count
    # Each pod stops at its own deadline (staggered), so the bound is the sum of theirs.
    bound = per_pod * sum(float(spec.env["LORA_SWEEP_MAX_HOURS"]) for spec in specs)
    return (
        f"cost: ${per_gpu:.3f}/h per {price.display_name} ({kind}), ${per_pod:.3f}/h per pod, "
        f"${total:.3f}/h for {plan.count} pod(s); at most ${bound:.2f}, when every pod runs to its deadline"
    )


def check_before_renting(package: PackageCheck, dry_run: bool, echo: Echo) -> None:
    """A package the pods cannot install rents nothing; one that could not be checked stops a real
    `up` (it would fail the same way on the pods) but not a dry run, which works offline."""
    if package.installable is False or (package.installable is None and not dry_run):
        raise PodError(package.message + ("" if package.installable is False else ": check it, then run again"))
    echo(f"package: {package.message}")


def pods_up(
    api: RunPod, plan: PodPlan, specs: list[PodSpec], secrets: Secrets, package: PackageCheck, dry_run: bool, echo: Echo
) -> int:
    """Create the pods (or, for a dry run, print them); returns how many were created."""
    check_before_renting(package, dry_run, echo)
    if dry_run:
        for spec in specs:
            echo(json.dumps(spec.shown(secrets), indent=2))
        try:
            echo(describe_cost(plan, specs, api.gpu_price(plan.gpu_type, plan.gpus_per_pod)))
        except RunPodError as error:
            echo(f"cost: price unavailable ({error})")
        echo(f"dry run: no pod created ({len(specs)} would be)")
        return 0
    price = api.gpu_price(plan.gpu_type, plan.gpus_per_pod)
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
    echo(describe_cost(plan, specs, price))
    return len(created)


def our_pods(api: RunPod, sweep_id: str | None) -> list[dict]:
    return [pod for pod in api.list_pods() if is_pod_of(pod, sweep_id)]


def pods_status(api: RunPod, sweep_id: str | None, echo: Echo) -> None:
    # Only named fields are shown: a listed pod also carries its env, secrets included.
    pods = our_pods(api, sweep_id)
    if not pods:
        echo(f"no lora-sweep pods{f' for {sweep_id}' if sweep_id else ''}")
        return
    echo(f"{'ID':<16} {'NAME':<40} {'STATUS':<10} {'GPUS':>4} {'$/H':>7} {'UPTIME':>8}  LAST CHANGE")
    for pod in pods:
        uptime = f"{(pod.get('uptimeSeconds') or 0) / 3600:.1f}h"
        cost = pod.get("costPerHr") or 0
        status = pod.get("desiredStatus", "?")
        change = pod.get("lastStatusChange") or ""
        echo(
            f"{pod['id']:<16} {pod['name']:<40} {status:<10} {pod.get('gpuCount') or 0:>4} {cost:>7.3f} {uptime:>8}"
            f"  {change}".rstrip()
        )
    total = sum(pod.get("costPerHr") or 0 for pod in pods)
    echo(f"{len(pods)} pod(s), ${total:.3f}/h")
    stopped = [pod["id"] for pod in pods if pod.get("desiredStatus") == "EXITED"]
    if stopped:
        # A pod stops itself (rather than removing itself) only when it failed: its log says why.
        echo(
            f"stopped after a failure: {', '.join(stopped)}; its last log line says why "
            "(RunPod's console, or `runpodctl pod logs ID`); `lora-sweep pods down` removes it"
        )


def pods_down(api: RunPod, sweep_id: str | None, echo: Echo) -> int:
    pods = our_pods(api, sweep_id)
    for pod in pods:
        api.terminate_pod(pod["id"])
        echo(f"removed pod {pod['id']} {pod['name']}")
    if not pods:
        echo(f"no lora-sweep pods{f' for {sweep_id}' if sweep_id else ''} to remove")
    return len(pods)
