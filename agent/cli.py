"""`lora-sweep`: validate, run and review LoRA sweeps, on W&B or fully offline."""

from __future__ import annotations

import os
from pathlib import Path

import click

from agent.fleet.supervisor import SupervisorOptions
from agent.local import options as agent_defaults


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lora-sweep")
def main() -> None:
    """Sweeps of LoRA fine-tuning runs on W&B, or offline with an embedded local controller.

    \b
    Typical offline session:
      lora-sweep validate sweeps/smoke.yaml
      lora-sweep sweep sweeps/smoke.yaml --local
      lora-sweep agent <sweep-id>
      lora-sweep report <sweep-id>
    """


@main.command()
@click.argument("sweep_yaml", type=click.Path(dir_okay=False))
def validate(sweep_yaml: str) -> None:
    """Check a sweep YAML before any run starts: W&B's schema, then every parameter.

    Also refused: a file that is not UTF-8 text, what `wandb sweep` itself rejects (a min/max pair
    mixing int and float), and a sweep with neither program nor command. Parameters are checked
    against the trial program's (name, type, range) when the sweep runs `agent.train`, and
    target_modules against Llama's layer names when every model it can use is a Llama. Every
    problem is printed, one line each. For a grid, prints its run count; for a metric without a
    goal, W&B's default (minimize).

    \b
    Example:
      lora-sweep validate sweeps/lora_rank.yaml
    """
    from agent.records import objective_of
    from agent.sweep_config import grid_size

    config = _checked_sweep(sweep_yaml)
    size = grid_size(config)
    runs = (
        f"a grid of {size} runs" if size is not None else f"{config['method']} search (runs until run_cap or --count)"
    )
    metric = objective_of(config)
    objective = f", optimizing {metric.name} ({metric.goal})" if metric.name else ""
    click.echo(f"{sweep_yaml}: valid, {runs}{objective}")


def _checked_sweep(sweep_yaml: str) -> dict:
    """The sweep config, or every problem on stderr, one line each, and exit 1."""
    from agent.sweep_config import load_valid_sweep
    from agent.trial.config import ConfigError

    try:
        return load_valid_sweep(sweep_yaml)
    except ConfigError as error:
        for problem in error.problems:
            click.echo(f"error: {sweep_yaml}: {problem}", err=True)
        raise SystemExit(1) from None


# --- local controller: sweep, agent, runs, demo -------------------------------------------------
# The commands are thin: logic lives in agent/local/. Bad input (a sweep id the store does not
# know, a YAML with problems) becomes one line on stderr and a non-zero exit.

_STORE_OPTION = click.option(
    "--store",
    "store_path",
    type=click.Path(dir_okay=False),
    envvar="LORA_SWEEP_STORE",
    help="SQLite file of local sweeps [env LORA_SWEEP_STORE; default ./.lora-sweep/sweeps.db].",
)


def _open_store(store_path: str | None, must_exist: bool = True, writable: bool = False):
    from agent.local.store import StoreError, open_store

    try:
        return open_store(store_path, must_exist=must_exist, writable=writable)
    except StoreError as error:
        raise click.ClickException(str(error)) from None


def _program_env(**defaults: str) -> dict[str, str]:
    """The environment runs start from: ours, read here at the entry point, plus defaults."""
    return {**defaults, **os.environ}


def _agent_command(sweep_id: str, store_path: str | None) -> str:
    store_flag = f" --store {store_path}" if store_path else ""
    return f"lora-sweep agent {sweep_id}{store_flag}"


@main.command("sweep")
@click.argument("target", metavar="SWEEP_YAML | SWEEP_ID")
@click.option("--local", is_flag=True, help="Create the sweep in the local store (no W&B server).")
@click.option("--project", help="W&B project the runs log to (also used by a later `wandb sync`).")
@click.option("--name", help="A name for the sweep.")
@click.option("--stop", "action", flag_value="FINISHED", help="Take no new runs; running ones finish.")
@click.option("--cancel", "action", flag_value="CANCELED", help="Take no new runs and stop running ones.")
@click.option("--pause", "action", flag_value="PAUSED", help="Take no new runs until --resume.")
@click.option("--resume", "action", flag_value="RUNNING", help="Take new runs again.")
@_STORE_OPTION
def sweep_command(target, local, project, name, action, store_path) -> None:
    """Create a local sweep from SWEEP_YAML, or control one by SWEEP_ID.

    \b
    Example:
      lora-sweep sweep sweeps/smoke.yaml --local
      lora-sweep agent <sweep-id>
      lora-sweep sweep --pause <sweep-id>

    The YAML is checked as `lora-sweep validate` checks it. Without --local, create the sweep on
    W&B with `wandb sweep SWEEP_YAML` instead.
    """
    if action is not None:
        from agent.local.store import StoreError, UnknownSweep

        store = _open_store(store_path, writable=True)
        try:
            store.set_sweep_state(target, action)
        except UnknownSweep as error:
            raise click.ClickException(f"{error} (a W&B sweep? use `wandb sweep`)") from None
        except StoreError as error:
            raise click.ClickException(str(error)) from None
        click.echo(f"sweep {target}: {action.lower()}")
        return
    if not local:
        raise click.ClickException("only local sweeps are created here: add --local, or use `wandb sweep SWEEP_YAML`")
    from agent.local.store import StoreError
    from agent.sweep_config import grid_size

    config = _checked_sweep(target)
    store = _open_store(store_path, must_exist=False)
    try:
        sweep_id = store.create_sweep(config, project or config.get("project"), name or config.get("name"))
    except StoreError as error:
        raise click.ClickException(str(error)) from None
    size = grid_size(config)
    runs = f"{size} runs" if size is not None else f"{config['method']} search"
    click.echo(f"Created local sweep {sweep_id} ({runs}) in {store.path}")
    click.echo(f"Run an agent: {_agent_command(sweep_id, store_path)}")


@main.command("agent")
@click.argument("sweep_id")
@click.option("--count", type=click.IntRange(min=1), help="Run at most this many runs, then exit.")
@click.option(
    "--max-consecutive-failed-runs",
    type=click.IntRange(min=1),
    help="Exit once this many runs have failed back to back.",
)
@click.option(
    "--heartbeat-timeout",
    type=float,
    default=agent_defaults.HEARTBEAT_TIMEOUT_S,
    show_default=True,
    envvar="LORA_SWEEP_HEARTBEAT_TIMEOUT",
    help=(
        "Seconds without a heartbeat after which a dead agent's run is requeued; agents beat every"
        f" {agent_defaults.HEARTBEAT_INTERVAL_S:g}s, so at least {agent_defaults.MIN_HEARTBEAT_TIMEOUT_S:g}."
    ),
)
@click.option(
    "--kill-grace",
    type=click.FloatRange(min=0),
    default=agent_defaults.KILL_GRACE_S,
    show_default=True,
    envvar="WANDB_AGENT_KILL_DELAY",
    help="Seconds between SIGTERM and SIGKILL when a run is stopped (as `wandb agent`).",
)
@_STORE_OPTION
@click.option(
    "--gpus",
    metavar="all|0,1,3",
    help="One supervised agent per GPU, each seeing only its own (CUDA_VISIBLE_DEVICES). `all`: every visible GPU.",
)
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Supervised agents: a log file per GPU here  [default: .lora-sweep/logs/<sweep>]",
)
@click.option(
    "--stagger",
    envvar="LORA_SWEEP_STAGGER",
    show_envvar=True,
    type=click.FloatRange(min=0),
    default=SupervisorOptions.stagger_s,
    show_default=True,
    help="Supervised agents: seconds between one agent's start and the next.",
)
@click.option(
    "--max-restarts",
    envvar="LORA_SWEEP_MAX_RESTARTS",
    show_envvar=True,
    type=click.IntRange(min=0),
    default=SupervisorOptions.max_restarts,
    show_default=True,
    help="Supervised agents: restarts of a crashed agent before it is given up.",
)
@click.option(
    "--restart-backoff",
    envvar="LORA_SWEEP_RESTART_BACKOFF",
    show_envvar=True,
    type=click.FloatRange(min=0),
    default=SupervisorOptions.backoff_s,
    show_default=True,
    help="Supervised agents: seconds before the first restart; doubles each time, "
    f"at most {SupervisorOptions.backoff_max_s:g}.",
)
def agent_command(
    sweep_id,
    count,
    max_consecutive_failed_runs,
    heartbeat_timeout,
    kill_grace,
    store_path,
    gpus,
    log_dir,
    stagger,
    max_restarts,
    restart_backoff,
) -> None:
    """Run the runs of sweep SWEEP_ID: a local sweep id, or entity/project/id on W&B.

    \b
    Examples:
      lora-sweep agent 3k9x2abc --count 4            # one local agent, in this process
      lora-sweep agent 3k9x2abc --gpus 0,1           # one local agent per GPU
      lora-sweep agent me/lora/8f3k2x1q --gpus all   # `wandb agent` per visible GPU

    Without --gpus a local sweep runs its runs one after another, as `wandb agent` would; start
    several agents to run in parallel, they share the store. Ctrl-C stops the current run and
    puts it back in the queue (exit 130). Exits 1 when every run of the sweep failed, when runs keep
    failing, or when the store fails.

    With --gpus, and always for a W&B sweep, agents run supervised: for a W&B sweep the real
    `wandb agent` with signal forwarding, for a local one the local agent; one per GPU with
    --gpus. A crashed agent is restarted, SIGINT and SIGTERM reach every agent, --count applies
    to each agent. See docs/gpu.md.
    """
    problem = agent_defaults.heartbeat_timeout_problem(heartbeat_timeout)
    if problem:
        raise click.ClickException(problem)
    from agent.review.fetch import is_wandb_path

    if gpus is not None or is_wandb_path(sweep_id):
        options = SupervisorOptions(stagger_s=stagger, max_restarts=max_restarts, backoff_s=restart_backoff)
        # Every option of the single agent travels to each local child.
        agent_flags = [f"--heartbeat-timeout={heartbeat_timeout}", f"--kill-grace={kill_grace}"]
        agent_flags += [f"--count={count}"] if count else []
        agent_flags += (
            [f"--max-consecutive-failed-runs={max_consecutive_failed_runs}"] if max_consecutive_failed_runs else []
        )
        _supervise_agents(sweep_id, gpus, count, tuple(agent_flags), store_path, log_dir, options)
        return
    from agent.local.store import StoreError

    store = _open_store(store_path, writable=True)  # a bad store is one line before the runner's imports
    from agent.local.runner import run_agent

    options = agent_defaults.AgentOptions(
        count=count,
        max_consecutive_failed_runs=max_consecutive_failed_runs,
        heartbeat_timeout_s=heartbeat_timeout,
        kill_grace_s=kill_grace,
    )
    try:
        result = run_agent(store, sweep_id, options, echo=lambda line: click.echo(line, err=True), env=_program_env())
    except StoreError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"agent: {len(result.outcomes)} run(s); stopping: {result.reason}", err=True)
    if result.failed:
        raise SystemExit(130 if result.reason == "interrupted" else 1)


def _supervise_agents(sweep_id, gpus_spec, count, agent_flags, store_path, log_dir, options):
    import os
    import shutil
    import sys

    from agent.fleet.agents import (
        children_per_gpu,
        default_log_dir,
        local_agent_argv,
        single_child,
        wandb_agent_argv,
    )
    from agent.fleet.gpus import GpuError, parse_gpus
    from agent.fleet.supervisor import Supervisor
    from agent.local.store import UnknownSweep
    from agent.review.fetch import is_wandb_path

    env = dict(os.environ)
    nvidia_smi = shutil.which("nvidia-smi", path=env.get("PATH"))
    try:
        gpus = parse_gpus(gpus_spec, env.get("CUDA_VISIBLE_DEVICES"), nvidia_smi) if gpus_spec is not None else None
    except GpuError as error:
        raise click.ClickException(str(error)) from None
    if is_wandb_path(sweep_id):
        wandb = shutil.which("wandb", path=env.get("PATH"))
        if wandb is None:
            raise click.ClickException("`wandb` is not on PATH: install it in this environment (pip install wandb)")
        argv = wandb_agent_argv(wandb, sweep_id, count)
    else:
        store = _open_store(store_path)
        try:
            store.sweep_record(sweep_id)
        except UnknownSweep as error:
            raise click.ClickException(str(error)) from None
        argv = local_agent_argv(sys.executable, sweep_id, Path(store.path).resolve(), agent_flags)
    log_dir = log_dir or default_log_dir(sweep_id)
    children = children_per_gpu(argv, gpus, env, log_dir) if gpus else single_child(argv, env, log_dir)
    echo = lambda line: click.echo(line, err=True)  # noqa: E731
    echo(f"supervising {len(children)} agent(s) for {sweep_id}; logs in {log_dir}/")
    result = Supervisor(children, options, echo, notice=log_dir / f"supervisor-{os.getpid()}.notice").run()
    echo(result.summary())
    raise SystemExit(result.exit_code)


@main.command("runs")
@click.argument("sweep_id")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_STORE_OPTION
def runs_command(sweep_id, output_format, store_path) -> None:
    """State, parameters, objective and runtime of every run of local sweep SWEEP_ID.

    \b
    Example:
      lora-sweep runs 3k9x2abc --format json | jq '.runs[] | select(.state=="finished")'
    """
    from agent.local.listing import runs_as_json, runs_as_table
    from agent.local.store import StoreError

    store = _open_store(store_path)
    try:
        record = store.sweep_record(sweep_id)
    except StoreError as error:
        raise click.ClickException(str(error)) from None
    click.echo(runs_as_json(record) if output_format == "json" else runs_as_table(record))


# The shipped sweeps sit beside the package in the checkout that `make install` installs from.
SMOKE_SWEEP = Path(__file__).resolve().parents[1] / "sweeps" / "smoke.yaml"


@main.command("demo")
@click.option(
    "--sweep-yaml",
    default=str(SMOKE_SWEEP),
    show_default="sweeps/smoke.yaml",
    type=click.Path(exists=True, dir_okay=False),
)
@_STORE_OPTION
def demo_command(sweep_yaml, store_path) -> None:
    """Run the smoke sweep locally to the end, offline on CPU, and show the best configuration.

    \b
    Example:
      lora-sweep demo        # a few minutes on a laptop CPU, no W&B account
    """
    from agent.local.demo import run_demo
    from agent.local.store import StoreError

    config = _checked_sweep(sweep_yaml)
    store = _open_store(store_path, must_exist=False)
    try:
        # The demo never needs an account: runs stay local unless the user chose a W&B mode.
        ok = run_demo(store, config, sweep_yaml, echo=click.echo, env=_program_env(WANDB_MODE="offline"))
    except StoreError as error:
        raise click.ClickException(str(error)) from None
    if not ok:
        raise SystemExit(1)


# RunPod pods ------------------------------------------------------------------------------------
# Keys are read here, at the entry point, and passed down; logic lives in agent/fleet/.


@main.group("pods")
def pods_group() -> None:
    """RunPod pods that work a W&B sweep, one agent per GPU, and remove themselves.

    \b
    Example:
      export RUNPOD_API_KEY=... WANDB_API_KEY=... HF_TOKEN=...
      lora-sweep pods up me/lora/8f3k2x1q --count 2 --gpu-type "NVIDIA GeForce RTX 4090" --dry-run
      lora-sweep pods status me/lora/8f3k2x1q
      lora-sweep pods down me/lora/8f3k2x1q

    Needs the RunPod extra: pip install 'lora-sweep[runpod]'. See docs/gpu.md.
    """


def _runpod(for_pods: bool):
    import os

    from agent.fleet.pods import PodError, secrets_from
    from agent.fleet.runpod_api import RunPod, RunPodError

    try:
        secrets = secrets_from(dict(os.environ), for_pods)
        return RunPod(secrets), secrets
    except (PodError, RunPodError) as error:
        raise click.ClickException(str(error)) from None


def _installed_package() -> str:
    from importlib.metadata import version

    return f"lora-sweep=={version('lora-sweep')}"


@pods_group.command("up")
@click.argument("sweep_id", metavar="ENTITY/PROJECT/SWEEP_ID")
@click.option("--count", type=click.IntRange(min=1), required=True, help="How many pods.")
@click.option("--gpu-type", required=True, help='RunPod GPU type id, e.g. "NVIDIA GeForce RTX 4090".')
@click.option("--gpus-per-pod", type=click.IntRange(min=1), default=1, show_default=True, help="One agent per GPU.")
@click.option("--interruptible", is_flag=True, help="Spot pods at RunPod's lowest bid: cheaper, can be reclaimed.")
@click.option("--image", default=None, help="Container image  [default: RunPod's PyTorch image, CUDA 12.8]")
@click.option("--network-volume", metavar="ID", help="RunPod network volume mounted at /workspace.")
@click.option(
    "--max-hours",
    type=click.FloatRange(min=0, min_open=True),
    default=12.0,
    show_default=True,
    help="Watchdog: a pod stops its agents and removes itself after this long.",
)
@click.option("--package", default=None, help="pip requirement installed on the pod  [default: this version]")
@click.option(
    "--torch-index",
    default=None,
    help='pip index of the torch build for the image ("" keeps its torch)  [default: CUDA 12.8 wheels]',
)
@click.option("--container-disk", type=click.IntRange(min=10), default=50, show_default=True, help="GB per pod.")
@click.option("--dry-run", is_flag=True, help="Print the pod specs (secrets as ***) and the cost; create nothing.")
def pods_up_command(
    sweep_id,
    count,
    gpu_type,
    gpus_per_pod,
    interruptible,
    image,
    network_volume,
    max_hours,
    package,
    torch_index,
    container_disk,
    dry_run,
) -> None:
    """Rent COUNT pods that each run `lora-sweep agent SWEEP_ID --gpus all`, then remove themselves.

    Every pod installs lora-sweep, runs one `wandb agent` per GPU until the sweep has no more runs,
    and removes itself on every path (done, setup failed, crashed, stopped, --max-hours reached).
    RUNPOD_API_KEY and WANDB_API_KEY (and HF_TOKEN, when set) are read from the environment and
    passed to the pods as environment; they are never printed.

    \b
    Example:
      lora-sweep pods up me/lora/8f3k2x1q --count 2 --gpu-type "NVIDIA GeForce RTX 4090" \\
          --gpus-per-pod 2 --interruptible --max-hours 6 --dry-run
    """
    from agent.fleet.pod_actions import pods_up
    from agent.fleet.pods import DEFAULT_IMAGE, DEFAULT_TORCH_INDEX, PodError, PodPlan, pod_specs
    from agent.fleet.runpod_api import RunPodError
    from agent.review.fetch import is_wandb_path

    if not is_wandb_path(sweep_id):
        raise click.ClickException(
            f"{sweep_id!r}: pods work a W&B sweep, entity/project/id (a local sweep's store stays on this machine)"
        )
    api, secrets = _runpod(for_pods=True)
    plan = PodPlan(
        sweep_id=sweep_id,
        count=count,
        gpu_type=gpu_type,
        gpus_per_pod=gpus_per_pod,
        interruptible=interruptible,
        image=image or DEFAULT_IMAGE,
        network_volume=network_volume,
        max_hours=max_hours,
        package=package or _installed_package(),
        torch_index=DEFAULT_TORCH_INDEX if torch_index is None else torch_index,
        container_disk_gb=container_disk,
    )
    try:
        pods_up(api, plan, pod_specs(plan, secrets), secrets, dry_run, echo=click.echo)
    except (PodError, RunPodError) as error:
        raise click.ClickException(str(error)) from None


@pods_group.command("status")
@click.argument("sweep_id", required=False, metavar="[ENTITY/PROJECT/SWEEP_ID]")
def pods_status_command(sweep_id) -> None:
    """List the pods of SWEEP_ID (or of every sweep): status, GPUs, cost per hour, uptime.

    \b
    Example:
      lora-sweep pods status me/lora/8f3k2x1q
    """
    from agent.fleet.pod_actions import pods_status
    from agent.fleet.runpod_api import RunPodError

    api, _ = _runpod(for_pods=False)
    try:
        pods_status(api, sweep_id, echo=click.echo)
    except RunPodError as error:
        raise click.ClickException(str(error)) from None


@pods_group.command("down")
@click.argument("sweep_id", required=False, metavar="[ENTITY/PROJECT/SWEEP_ID]")
@click.option("--all", "all_sweeps", is_flag=True, help="Remove the pods of every sweep.")
def pods_down_command(sweep_id, all_sweeps) -> None:
    """Remove the pods of SWEEP_ID, or with --all every lora-sweep pod; other pods are left alone.

    \b
    Example:
      lora-sweep pods down me/lora/8f3k2x1q
    """
    from agent.fleet.pod_actions import pods_down
    from agent.fleet.runpod_api import RunPodError

    if bool(sweep_id) == all_sweeps:
        raise click.ClickException("give a SWEEP_ID, or --all for the pods of every sweep")
    api, _ = _runpod(for_pods=False)
    try:
        pods_down(api, sweep_id, echo=click.echo)
    except RunPodError as error:
        raise click.ClickException(str(error)) from None


# report ------------------------------------------------------------------------------------------


@main.command()
@click.argument("sweep_id")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for report.html, summary.md, the PNGs and best.yaml  [default: outputs/review/<sweep>]",
)
@_STORE_OPTION
def report(sweep_id: str, out: Path | None, store_path: str | None) -> None:
    """Review a sweep: results table, parallel coordinates, importance, verdicts and best.yaml.

    SWEEP_ID is a local sweep id, or entity/project/id for a W&B sweep (read through the
    W&B public API).

    \b
    Example:
      lora-sweep report 3fk2a9 --out review/
      python -m agent.train --config review/best.yaml   # rerun the winner
    """
    from agent.review.report import ReviewError, default_out_dir, review_sweep

    out = out or default_out_dir(sweep_id)
    try:
        review = review_sweep(sweep_id, out, store_path)
    except ReviewError as error:
        raise click.ClickException(str(error)) from None
    click.echo(review.format_terminal())
    click.echo(f"\nWrote {out}/: {', '.join(review.files)}")


@main.command("dashboard")
@click.argument("sweep_path", metavar="ENTITY/PROJECT/SWEEP_ID")
@click.option(
    "--report",
    "with_report",
    is_flag=True,
    help="Also publish a W&B Report: the same panels, the verdicts and the winning configuration.",
)
def dashboard_command(sweep_path: str, with_report: bool) -> None:
    """Save a W&B workspace view made for one W&B sweep, and print its URL.

    The view shows only the sweep's runs: parallel coordinates of the swept parameters (in the
    sweep file's order, the sweep's metric last), parameter importance for that metric, the
    metric and train/loss against train/global_step, peak GPU memory, tokens/s and runtime per
    run. Running it again updates the same view. Needs `wandb login` (or WANDB_API_KEY).

    \b
    Example:
      lora-sweep dashboard my-team/lora/8x2kq0ab --report
    """
    from agent.review.dashboard import DashboardError, publish
    from agent.review.fetch import is_wandb_path

    if not is_wandb_path(sweep_path):
        raise click.ClickException(f"{sweep_path!r} is not a W&B sweep path entity/project/sweep_id")
    try:
        urls = publish(sweep_path, with_report)
    except DashboardError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Workspace: {urls[0]}")
    if with_report:
        click.echo(f"Report: {urls[1]}")


if __name__ == "__main__":
    main()
