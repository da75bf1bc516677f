"""The fleet's commands: `agent` (one local agent here, or supervised agents, one per GPU) and `pods`.

Keys and the environment are read here, at the entry point, and passed down; logic lives in this
package and in agent/local/.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import click
from click.core import ParameterSource

from agent.env_vars import AGENTS_PER_GPU_ENV
from agent.fleet.field_options import field_options, from_params
from agent.fleet.pods import PodPlan
from agent.fleet.supervisor import SupervisorOptions
from agent.local.cli import STORE_OPTION, agent_flags, agent_options, agent_options_from, price_env, program_env
from agent.records import is_wandb_path


def echo_err(line: str) -> None:
    click.echo(line, err=True)


@click.command("agent")
@click.argument("sweep_id")
@agent_options
@STORE_OPTION
@click.option(
    "--gpus",
    metavar="all|0,1,3",
    help="One supervised agent per GPU, each seeing only its own (CUDA_VISIBLE_DEVICES). `all`: every visible GPU.",
)
@click.option(
    "--agents-per-gpu",
    envvar=AGENTS_PER_GPU_ENV,
    show_envvar=True,
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="With --gpus: agents on each GPU, each trial capped at 1/N of its memory (docs/gpu.md).",
)
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Supervised agents: a log file per agent here  [default: .lora-sweep/logs/<sweep>]",
)
@field_options(SupervisorOptions)
@click.pass_context
def agent_command(ctx: click.Context, sweep_id: str, store_path, gpus, log_dir, **_) -> None:
    """Run the runs of sweep SWEEP_ID: a local sweep id, or entity/project/id on W&B.

    \b
    Examples:
      lora-sweep agent 3k9x2abc --count 4            # one local agent, in this process
      lora-sweep agent 3k9x2abc --gpus 0,1           # one local agent per GPU
      lora-sweep agent me/lora/8f3k2x1q --gpus all   # `wandb agent` per visible GPU
      lora-sweep agent 3k9x2abc --gpus all --agents-per-gpu 4   # four agents per GPU

    Without --gpus a local sweep runs its runs one after another, as `wandb agent` would; start
    several agents to run in parallel, they share the store. Ctrl-C stops the current run and
    puts it back in the queue (exit 130). Exits 1 when every run of the sweep failed, when runs keep
    failing, or when the store fails.

    With --gpus, and always for a W&B sweep, agents run supervised: for a W&B sweep the real
    `wandb agent` with signal forwarding, for a local one the local agent; one per GPU with
    --gpus, N per GPU with --agents-per-gpu N. A crashed agent is restarted, SIGINT and SIGTERM
    reach every agent, --count applies to each agent. See docs/gpu.md.
    """
    options = agent_options_from(ctx.params)
    if ctx.params["agents_per_gpu"] > 1 and gpus is None:
        raise click.ClickException("--agents-per-gpu needs --gpus: say which GPUs the agents share, such as --gpus all")
    if gpus is not None or is_wandb_path(sweep_id):
        supervise_agents(ctx, sweep_id, store_path, gpus, log_dir)
    else:
        run_local_agent(sweep_id, store_path, options, price_env(ctx.params))


def run_local_agent(sweep_id: str, store_path: str | None, options, price: dict[str, str]) -> None:
    """One local agent in this process, until the sweep has no more runs (or --count)."""
    from agent.local.store import open_store

    store = open_store(store_path, writable=True)  # a bad store is one line before the runner's imports
    from agent.local.runner import run_agent

    result = run_agent(store, sweep_id, options, echo=echo_err, env={**program_env(), **price})
    echo_err(f"agent: {len(result.outcomes)} run(s); stopping: {result.reason}")
    if result.failed:
        raise SystemExit(130 if result.reason == "interrupted" else 1)


def supervise_agents(ctx: click.Context, sweep_id: str, store_path: str | None, gpus_spec, log_dir) -> None:
    """Supervised agents, one per GPU: `wandb agent` for a W&B sweep, the local agent for a local one."""
    from agent.fleet.agents import (
        children_per_gpu,
        default_log_dir,
        local_agent_argv,
        single_child,
        wandb_agent_argv,
        wandb_agent_env,
        wandb_agent_options,
    )
    from agent.fleet.gpus import parse_gpus
    from agent.fleet.supervisor import Supervisor
    from agent.local.store import open_store

    env = {**os.environ, **price_env(ctx.params)}  # every run of every agent logs its cost
    nvidia_smi = shutil.which("nvidia-smi", path=env.get("PATH"))
    gpus = parse_gpus(gpus_spec, env.get("CUDA_VISIBLE_DEVICES"), nvidia_smi) if gpus_spec is not None else None
    if is_wandb_path(sweep_id):
        wandb = shutil.which("wandb", path=env.get("PATH"))
        if wandb is None:
            raise click.ClickException("`wandb` is not on PATH: install it in this environment (pip install wandb)")
        wandb_options = wandb_agent_options(ctx.params, typed_options(ctx))
        argv = wandb_agent_argv(wandb, sweep_id, wandb_options)
        env = wandb_agent_env(env, wandb_options)
    else:
        store = open_store(store_path)
        store.sweep_record(sweep_id)  # an unknown id is one line here, not one per agent
        argv = local_agent_argv(sys.executable, sweep_id, Path(store.path).resolve(), agent_flags(ctx))
    log_dir = log_dir or default_log_dir(sweep_id)
    per_gpu = ctx.params["agents_per_gpu"]
    children = children_per_gpu(argv, gpus, env, log_dir, per_gpu) if gpus else single_child(argv, env, log_dir)
    options = SupervisorOptions(**from_params(SupervisorOptions, ctx.params))
    echo_err(f"supervising {len(children)} agent(s) for {sweep_id}; logs in {log_dir}/")
    result = Supervisor(children, options, echo_err, notice=log_dir / f"supervisor-{os.getpid()}.notice").run()
    echo_err(result.summary())
    raise SystemExit(result.exit_code)


def typed_options(ctx: click.Context) -> frozenset[str]:
    """The options typed on the command line; one from the environment that a W&B sweep's agents
    cannot take is only noted, since the user may have exported it for local sweeps."""
    from agent.fleet.agents import LOCAL_ONLY

    for param in ctx.command.params:
        if param.name in LOCAL_ONLY and ctx.get_parameter_source(param.name) == ParameterSource.ENVIRONMENT:
            echo_err(f"note: {param.envvar} is ignored: it is for local sweeps, not W&B's")
    return frozenset(name for name in ctx.params if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE)


# RunPod pods ------------------------------------------------------------------------------------


@click.group("pods")
def pods_group() -> None:
    """RunPod pods that work a W&B sweep, one agent per GPU (or N), and remove themselves.

    \b
    Example:
      export RUNPOD_API_KEY=... WANDB_API_KEY=... HF_TOKEN=...
      lora-sweep pods up me/lora/8f3k2x1q --count 2 --gpu-type "NVIDIA GeForce RTX 4090" --dry-run
      lora-sweep pods status me/lora/8f3k2x1q
      lora-sweep pods down me/lora/8f3k2x1q

    Needs RunPod's SDK: `make install` includes it; elsewhere pip install 'runpod>=1.12,<2'. See docs/gpu.md.
    """


def runpod(for_pods: bool, from_runpod: frozenset[str] = frozenset()):
    """RunPod's client and the secrets pods get, both from this process's environment (except the
    keys the pods take from RunPod secrets)."""
    from agent.fleet.pods import secrets_from
    from agent.fleet.runpod_api import RunPod

    secrets = secrets_from(dict(os.environ), for_pods, from_runpod)
    return RunPod(secrets), secrets


def default_package() -> str:
    from importlib.metadata import version

    from agent.fleet.package_check import default_package

    return default_package(Path(__file__).resolve().parents[2], version("lora-sweep"), dict(os.environ), echo_err)


@pods_group.command("up")
@click.argument("sweep_id", metavar="ENTITY/PROJECT/SWEEP_ID")
@field_options(PodPlan)
@click.option("--dry-run", is_flag=True, help="Print the pod specs (secrets as ***) and the cost; create nothing.")
def pods_up_command(dry_run: bool, **params) -> None:
    """Rent COUNT pods that each run `lora-sweep agent SWEEP_ID --gpus all`, then remove themselves.

    The package is checked before anything is rented. Every pod installs it, runs one `wandb agent`
    per GPU (N with --agents-per-gpu) until the sweep has no more runs, and ends itself on every
    path: removed when done, stopped or past --max-hours; stopped (kept for its log) when setup or
    the agents failed. Every run logs its cost at RunPod's price (its share, on a shared GPU).
    RUNPOD_API_KEY and WANDB_API_KEY (and HF_TOKEN, when set) are read from the environment and
    passed to the pods as environment; they are never printed. With --secret-env a pod takes a key
    from a RunPod secret instead, and this environment need not hold it.

    \b
    Example:
      lora-sweep pods up me/lora/8f3k2x1q --count 2 --gpu-type "NVIDIA GeForce RTX 4090" \\
          --gpus-per-pod 2 --interruptible --max-hours 6 --dry-run
    """
    from agent.fleet.package_check import check_package
    from agent.fleet.pod_actions import check_before_renting, pods_up
    from agent.fleet.pods import pod_specs, secret_references
    from agent.fleet.sweep_bound import check_bounded

    plan = PodPlan(**params)
    if not is_wandb_path(plan.sweep_id):
        raise click.ClickException(
            f"{plan.sweep_id!r}: pods work a W&B sweep, entity/project/id (a local sweep's store stays on this machine)"
        )
    references = secret_references(plan.secret_env)
    api, secrets = runpod(for_pods=True, from_runpod=frozenset(references))
    if plan.package is None:
        plan = replace(plan, package=default_package())
    specs = pod_specs(plan, secrets)
    # Nothing is rented before both checks pass; the package's comes first, as the likelier fix.
    check_before_renting(check_package(plan.package, dict(os.environ)), dry_run, click.echo)
    max_hours_given = click.get_current_context().get_parameter_source("max_hours") != ParameterSource.DEFAULT
    click.echo(check_bounded(plan.sweep_id, max_hours_given, dry_run))
    pods_up(api, plan, specs, secrets, dry_run, echo=click.echo)


@pods_group.command("status")
@click.argument("sweep_id", required=False, metavar="[ENTITY/PROJECT/SWEEP_ID]")
def pods_status_command(sweep_id) -> None:
    """List the pods of SWEEP_ID (or of every sweep): status, GPUs, cost per hour, uptime.

    Pods that `pods up` created from this folder and RunPod no longer lists are named too, with
    why they ended: read from the pod's network volume through RunPod's S3 API, given an S3 API
    key in RUNPOD_S3_ACCESS_KEY and RUNPOD_S3_SECRET_KEY (docs/gpu.md, What is kept, and where).

    \b
    Example:
      lora-sweep pods status me/lora/8f3k2x1q
    """
    from agent.fleet.pod_actions import pods_status

    api, _ = runpod(for_pods=False)
    pods_status(api, sweep_id, echo=click.echo, env=os.environ)


@pods_group.command("down")
@click.argument("sweep_id", required=False, metavar="[ENTITY/PROJECT/SWEEP_ID]")
@click.option("--all", "all_sweeps", is_flag=True, help="Remove the pods of every sweep.")
def pods_down_command(sweep_id, all_sweeps) -> None:
    """Remove the pods of SWEEP_ID, or with --all every lora-sweep pod; other pods are left alone.

    Pods of those sweeps that RunPod no longer lists are forgotten here too.

    \b
    Example:
      lora-sweep pods down me/lora/8f3k2x1q
    """
    from agent.fleet.pod_actions import pods_down

    if bool(sweep_id) == all_sweeps:
        raise click.ClickException("give a SWEEP_ID, or --all for the pods of every sweep")
    api, _ = runpod(for_pods=False)
    pods_down(api, sweep_id, echo=click.echo)
