"""The local controller's commands: `validate`, `sweep`, `runs`, `demo`, and the local agent's options.

The commands are thin: logic lives in this package. Heavy imports wait inside each command, so
`lora-sweep --help` and a bad argument answer at once.
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

import click

from agent.env_vars import GPU_HOURLY_USD_ENV, HEARTBEAT_TIMEOUT_ENV, STORE_ENV
from agent.errors import UserError
from agent.local import options as agent_defaults
from agent.records import SweepState

STORE_OPTION = click.option(
    "--store",
    "store_path",
    type=click.Path(dir_okay=False),
    envvar=STORE_ENV,
    help="SQLite file of local sweeps [env LORA_SWEEP_STORE; default ./.lora-sweep/sweeps.db].",
)

# The local agent's options, defined once: `lora-sweep agent` takes them, and hands every one of them
# on to the agents it supervises (`agent_flags`). Those named after an `AgentOptions` field build it;
# --gpu-hourly-usd reaches the runs as their environment (`price_env`).
AGENT_OPTIONS = (
    click.option("--count", type=click.IntRange(min=1), help="Run at most this many runs, then exit."),
    click.option(
        "--max-consecutive-failed-runs",
        type=click.IntRange(min=1),
        help="Exit once this many runs have failed back to back.",
    ),
    click.option(
        "--heartbeat-timeout",
        "heartbeat_timeout_s",
        type=float,
        default=agent_defaults.HEARTBEAT_TIMEOUT_S,
        show_default=True,
        envvar=HEARTBEAT_TIMEOUT_ENV,
        help=(
            "Seconds without a heartbeat after which a dead agent's run is requeued; agents beat every"
            f" {agent_defaults.HEARTBEAT_INTERVAL_S:g}s, so at least {agent_defaults.MIN_HEARTBEAT_TIMEOUT_S:g}."
        ),
    ),
    click.option(
        "--kill-grace",
        "kill_grace_s",
        type=click.FloatRange(min=0),
        default=agent_defaults.KILL_GRACE_S,
        show_default=True,
        envvar="WANDB_AGENT_KILL_DELAY",
        help="Seconds between SIGTERM and SIGKILL when a run is stopped (as `wandb agent`).",
    ),
    click.option(
        "--gpu-hourly-usd",
        type=click.FloatRange(min=0),
        envvar=GPU_HOURLY_USD_ENV,
        show_envvar=True,
        help="US dollars per hour of one GPU: every run logs cost/usd, its runtime at this price "
        "(its share of it, with --agents-per-gpu).",
    ),
)


def agent_options(command):
    """Add the local agent's options to a click command, in their order."""
    for option in reversed(AGENT_OPTIONS):
        command = option(command)
    return command


def agent_options_from(params: dict) -> agent_defaults.AgentOptions:
    """The local agent's settings from a command's parameters; a timeout too short is one line."""
    given = {field.name: params[field.name] for field in fields(agent_defaults.AgentOptions) if field.name in params}
    problem = agent_defaults.heartbeat_timeout_problem(given["heartbeat_timeout_s"])
    if problem:
        raise click.ClickException(problem)
    return agent_defaults.AgentOptions(**given)


def agent_flags(ctx: click.Context) -> tuple[str, ...]:
    """The local agent's options as this command got them, as flags for a child agent. Built from the
    command's own parameters, so an option added to AGENT_OPTIONS reaches the children unedited."""
    names = {param.name for param in agent_options(click.Command("agent-options")).params}
    return tuple(
        f"{param.opts[0]}={ctx.params[param.name]}"
        for param in ctx.command.params
        if param.name in names and ctx.params[param.name] is not None
    )


def program_env(**defaults: str) -> dict[str, str]:
    """The environment runs start from: ours, read here at the entry point, plus defaults."""
    return {**defaults, **os.environ}


def price_env(params: dict) -> dict[str, str]:
    """`--gpu-hourly-usd` as the variable every run reads (and `wandb agent` passes on to its runs)."""
    price = params.get("gpu_hourly_usd")
    return {} if price is None else {GPU_HOURLY_USD_ENV: f"{price:g}"}


def checked_sweep(sweep_yaml: str) -> dict:
    """The sweep config, or every problem on stderr, one line each, and exit 1."""
    from agent.sweep_config import load_valid_sweep

    try:
        return load_valid_sweep(sweep_yaml)
    except UserError as error:  # a ConfigError: one problem a line
        for problem in str(error).splitlines():
            click.echo(f"error: {sweep_yaml}: {problem}", err=True)
        raise SystemExit(1) from None


@click.command("validate")
@click.argument("sweep_yaml", type=click.Path(dir_okay=False))
def validate_command(sweep_yaml: str) -> None:
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

    config = checked_sweep(sweep_yaml)
    size = grid_size(config)
    runs = (
        f"a grid of {size} runs" if size is not None else f"{config['method']} search (runs until run_cap or --count)"
    )
    metric = objective_of(config)
    objective = f", optimizing {metric.name} ({metric.goal})" if metric.name else ""
    click.echo(f"{sweep_yaml}: valid, {runs}{objective}")


@click.command("sweep")
@click.argument("target", metavar="SWEEP_YAML | SWEEP_ID")
@click.option("--local", is_flag=True, help="Create the sweep in the local store (no W&B server).")
@click.option("--project", help="W&B project the runs log to (also used by a later `wandb sync`).")
@click.option("--name", help="A name for the sweep.")
@click.option("--stop", "action", flag_value=SweepState.FINISHED, help="Take no new runs; running ones finish.")
@click.option("--cancel", "action", flag_value=SweepState.CANCELED, help="Take no new runs and stop running ones.")
@click.option("--pause", "action", flag_value=SweepState.PAUSED, help="Take no new runs until --resume.")
@click.option("--resume", "action", flag_value=SweepState.RUNNING, help="Take new runs again.")
@STORE_OPTION
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
    from agent.local.store import UnknownSweep, open_store
    from agent.sweep_config import grid_size

    if action is not None:
        store = open_store(store_path, writable=True)
        try:
            with store.write() as tx:
                tx.set_sweep_state(target, action)
        except UnknownSweep as error:
            raise click.ClickException(f"{error} (a W&B sweep? use `wandb sweep`)") from None
        click.echo(f"sweep {target}: {action.lower()}")
        return
    if not local:
        raise click.ClickException("only local sweeps are created here: add --local, or use `wandb sweep SWEEP_YAML`")
    config = checked_sweep(target)
    store = open_store(store_path, must_exist=False)
    with store.write() as tx:
        sweep_id = tx.create_sweep(config, project or config.get("project"), name or config.get("name"))
    size = grid_size(config)
    runs = f"{size} runs" if size is not None else f"{config['method']} search"
    store_flag = f" --store {store_path}" if store_path else ""
    click.echo(f"Created local sweep {sweep_id} ({runs}) in {store.path}")
    click.echo(f"Run an agent: lora-sweep agent {sweep_id}{store_flag}")


@click.command("runs")
@click.argument("sweep_id")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option(
    "--rescan",
    is_flag=True,
    help="First read each finished run's summary again from its own W&B folder (under $WANDB_DIR/wandb"
    " or ./wandb) and store it where it differs.",
)
@STORE_OPTION
def runs_command(sweep_id, output_format, store_path, rescan) -> None:
    """State, parameters, objective and runtime of every run of local sweep SWEEP_ID.

    \b
    Example:
      lora-sweep runs 3k9x2abc --format json | jq '.runs[] | select(.state=="finished")'
    """
    from agent.local.listing import runs_as_json, runs_as_table
    from agent.local.store import open_store

    store = open_store(store_path, writable=rescan)
    if rescan:
        from agent.local.rescan import rescan_finished_runs

        wandb_dir = Path(os.environ.get("WANDB_DIR") or os.getcwd()) / "wandb"
        for line in rescan_finished_runs(store, sweep_id, wandb_dir, dict(os.environ)):
            click.echo(line, err=True)
    record = store.sweep_record(sweep_id)
    click.echo(runs_as_json(record) if output_format == "json" else runs_as_table(record))


# The shipped sweeps sit beside the package in the checkout that `make install` installs from.
SMOKE_SWEEP = Path(__file__).resolve().parents[2] / "sweeps" / "smoke.yaml"
