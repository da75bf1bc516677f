"""`lora-sweep`: validate, run and review LoRA sweeps, on W&B or fully offline."""

from __future__ import annotations

import os
from pathlib import Path

import click

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

    Parameters are checked against the trial program's (name, type, range) when the sweep runs
    `agent.train`. Every problem is printed, one line each. For a grid, prints its run count.

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
def agent_command(sweep_id, count, max_consecutive_failed_runs, heartbeat_timeout, kill_grace, store_path) -> None:
    """Run the runs of local sweep SWEEP_ID, one after another, as `wandb agent` would.

    \b
    Example:
      lora-sweep agent 3k9x2abc --count 4

    Start several agents on one machine to run in parallel; they share the store. Ctrl-C stops
    the current run and puts it back in the queue (exit 130). Exits 1 when every run of the sweep
    failed, when runs keep failing, or when the store fails.
    """
    problem = agent_defaults.heartbeat_timeout_problem(heartbeat_timeout)
    if problem:
        raise click.ClickException(problem)
    from agent.local.runner import run_agent
    from agent.local.store import StoreError

    store = _open_store(store_path, writable=True)
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
    from agent.review.report import ReviewError, review_sweep

    out = out or Path("outputs", "review", sweep_id.replace("/", "-"))
    try:
        review = review_sweep(sweep_id, out, store_path)
    except ReviewError as error:
        raise click.ClickException(str(error)) from None
    click.echo(review.format_terminal())
    click.echo(f"\nWrote {out}/: {', '.join(review.files)}")


if __name__ == "__main__":
    main()
