"""`pods up`, `pods status` and `pods down`: what each does with RunPod, and what it tells the user.

RunPod forgets a pod once it is removed, so `pods up` keeps its own list of the pods it created
(a JSON line each, `.lora-sweep/pods.jsonl` where it ran): `pods status` can then say which pods
are gone and what that means, and `pods down` forgets them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from agent.fleet.package_check import PackageCheck
from agent.fleet.pods import WORKDIR, PodError, PodPlan, PodSpec, Secrets, is_pod_of, pod_hours, priced
from agent.fleet.runpod_api import GpuPrice, RunPod, RunPodError
from agent.fleet.volume_files import S3_ACCESS_KEY_ENV, S3_SECRET_KEY_ENV, S3Keys, VolumeFiles, VolumeReadError

Echo = Callable[[str], None]
LEDGER = Path(".lora-sweep", "pods.jsonl")
POD_STATE = ".lora-sweep/pods"
"""Where, under its workdir, each pod's start script keeps its state: `<pod id>/ended`, `pod.log`."""


@dataclass(frozen=True)
class CreatedPod:
    """A pod `pods up` created, as this machine remembers it."""

    id: str
    name: str
    sweep_id: str
    created_at: str
    network_volume: str | None


def remember(ledger: Path, pod: CreatedPod) -> None:
    ledger.parent.mkdir(parents=True, exist_ok=True)
    with ledger.open("a", encoding="utf-8") as lines:
        lines.write(json.dumps(dataclasses.asdict(pod)) + "\n")


def remembered(ledger: Path, sweep_id: str | None, echo: Echo) -> list[CreatedPod]:
    """The pods `pods up` created from here; a line that is no pod record (hand-edited, cut short)
    is skipped with a warning rather than failing `pods status` and `pods down`."""
    if not ledger.exists():
        return []
    pods = []
    for number, line in enumerate(ledger.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            pods += [CreatedPod(**json.loads(line))] if line.strip() else []
        except (ValueError, TypeError):  # not JSON, or not this record's fields
            echo(f"warning: {ledger} line {number} is not a pod record: skipped")
    return [pod for pod in pods if sweep_id in (None, pod.sweep_id)]


def forget(ledger: Path, sweep_id: str | None, echo: Echo) -> None:
    kept = [pod for pod in remembered(ledger, None, echo) if sweep_id not in (None, pod.sweep_id)]
    if ledger.exists():
        ledger.write_text("".join(json.dumps(dataclasses.asdict(pod)) + "\n" for pod in kept), encoding="utf-8")


@dataclass(frozen=True)
class PodAccount:
    """What a removed pod left of itself: why it ended, in its own words (None: not read), and where
    its account is kept, if anywhere."""

    ended: str | None
    where: str


def describe_gone(pod: CreatedPod, account: PodAccount) -> str:
    """What can be said of a pod RunPod no longer lists: it removed itself (a failed pod stops
    instead, and stays listed), why, and where its own account is kept."""
    why = account.ended or (
        "its work was over (the sweep had no more runs for it, it was reclaimed or stopped, or its deadline came) "
        "or it kept being restarted"
    )
    return f"gone: {pod.id} {pod.name} (created {pod.created_at}) removed itself: {why}; {account.where}"


def pod_account(pod: CreatedPod, keys: S3Keys | None, data_center: Callable[[str], str | None]) -> PodAccount:
    """A removed pod's `ended` file, read from its network volume with an S3 API key."""
    if not pod.network_volume:
        return PodAccount(None, "it had no network volume, so nothing of it is kept but its runs in W&B")
    where = f"its log is in {WORKDIR}/{POD_STATE}/{pod.id}/ (pod.log, ended) on network volume {pod.network_volume}"
    if keys is None:
        return PodAccount(
            None,
            f"{where}, which `pods status` reads given an S3 API key in {S3_ACCESS_KEY_ENV} and {S3_SECRET_KEY_ENV}",
        )
    try:
        files = VolumeFiles(keys, pod.network_volume, data_center(pod.network_volume) or "")
        ended = files.read_text(f"{POD_STATE}/{pod.id}/ended")
    except (RunPodError, VolumeReadError) as error:
        return PodAccount(None, f"{where}, which could not be read: {error}")
    if ended is None:
        return PodAccount(None, f"{where}, which holds no `ended` for it: its start script never got to write one")
    return PodAccount(f"its start script ended with '{' '.join(ended.split())}'", where)


def describe_cost(plan: PodPlan, price: GpuPrice) -> str:
    per_gpu = price.per_gpu(plan.interruptible)
    kind = "interruptible, lowest bid" if plan.interruptible else "on demand"
    if per_gpu is None:
        return f"cost: RunPod gives no {kind} price for {price.display_name} now"
    per_pod = per_gpu * plan.gpus_per_pod
    total = per_pod * plan.count
    # Each pod stops at its own deadline (staggered), so the bound is the sum of theirs.
    bound = per_pod * sum(pod_hours(plan, index) for index in range(1, plan.count + 1))
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
    api: RunPod,
    plan: PodPlan,
    specs: list[PodSpec],
    secrets: Secrets,
    dry_run: bool,
    echo: Echo,
    ledger: Path = LEDGER,
) -> int:
    """Create the pods (or, for a dry run, print them); returns how many were created. The checks
    before renting (`check_before_renting`, the sweep's bound) come first, at the command."""
    if dry_run:
        try:
            price = api.gpu_price(plan.gpu_type, plan.gpus_per_pod)
        except RunPodError as error:
            price, cost = None, f"cost: price unavailable ({error})"
        else:
            specs, cost = priced(specs, price.per_gpu(plan.interruptible)), describe_cost(plan, price)
        for spec in specs:
            echo(json.dumps(spec.shown(secrets), indent=2))
        echo(cost)
        echo(f"dry run: no pod created ({len(specs)} would be)")
        return 0
    price = api.gpu_price(plan.gpu_type, plan.gpus_per_pod)
    specs = priced(specs, price.per_gpu(plan.interruptible))
    created = []
    for spec in specs:
        try:
            pod = api.create_pod(spec, price.min_bid)
        except RunPodError:
            if created:
                echo(f"created {len(created)} of {len(specs)} pods before this; `lora-sweep pods down {plan.sweep_id}`")
            raise
        created.append(pod["id"])
        now = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        remember(ledger, CreatedPod(pod["id"], spec.name, plan.sweep_id, now, plan.network_volume))
        echo(f"created pod {pod['id']} {spec.name}")
    echo(describe_cost(plan, price))
    return len(created)


def our_pods(api: RunPod, sweep_id: str | None) -> list[dict]:
    return [pod for pod in api.list_pods() if is_pod_of(pod, sweep_id)]


def pods_status(api: RunPod, sweep_id: str | None, echo: Echo, env: Mapping[str, str], ledger: Path = LEDGER) -> None:
    # Only named fields are shown: a listed pod also carries its env, secrets included.
    pods = our_pods(api, sweep_id)
    listed = {pod["id"] for pod in pods}
    keys, data_center = S3Keys.from_env(env), functools.cache(api.network_volume_data_center)
    for gone in remembered(ledger, sweep_id, echo):
        if gone.id not in listed:
            echo(describe_gone(gone, pod_account(gone, keys, data_center)))
    if not pods:
        echo(f"no lora-sweep pods{f' for {sweep_id}' if sweep_id else ''} on RunPod")
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


def pods_down(api: RunPod, sweep_id: str | None, echo: Echo, ledger: Path = LEDGER) -> int:
    pods = our_pods(api, sweep_id)
    for pod in pods:
        api.terminate_pod(pod["id"])
        echo(f"removed pod {pod['id']} {pod['name']}")
    forget(ledger, sweep_id, echo)
    if not pods:
        echo(f"no lora-sweep pods{f' for {sweep_id}' if sweep_id else ''} to remove")
    return len(pods)
