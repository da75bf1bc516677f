"""The review's commands: `report` (offline, any sweep), `dashboard` (a W&B view of a W&B sweep),
and `demo` (the smoke sweep run locally, then reviewed)."""

from __future__ import annotations

from pathlib import Path

import click

from agent.local.cli import SMOKE_SWEEP, STORE_OPTION
from agent.records import is_wandb_path


@click.command("report")
@click.argument("sweep_id")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=(
        "Folder for report.html, summary.md, answers.json, best.yaml, next.yaml and the PNGs  "
        "[default: outputs/review/<sweep>]"
    ),
)
@STORE_OPTION
def report_command(sweep_id: str, out: Path | None, store_path: str | None) -> None:
    """Review a sweep: the six answers, results table, figures, importance, verdicts, best.yaml and next.yaml.

    SWEEP_ID is a local sweep id, or entity/project/id for a W&B sweep (read through the
    W&B public API).

    \b
    Example:
      lora-sweep report 3fk2a9 --out review/
      python -m agent.train --config review/best.yaml   # rerun the recommended configuration
      lora-sweep validate review/next.yaml              # the next sweep, ready to register
    """
    from agent.review.report import default_out_dir, review_sweep

    out = out or default_out_dir(sweep_id)
    review = review_sweep(sweep_id, out, store_path)
    click.echo(review.format_terminal())
    click.echo(f"\nWrote {out}/: {', '.join(review.files)}")


@click.command("dashboard")
@click.argument("sweep_path", metavar="ENTITY/PROJECT/SWEEP_ID")
@click.option(
    "--report",
    "with_report",
    is_flag=True,
    help=(
        "Also publish a W&B Report: the answers, the verdicts, what the cost buys, best.yaml, "
        "next.yaml and the same panels."
    ),
)
def dashboard_command(sweep_path: str, with_report: bool) -> None:
    """Save a W&B workspace view made for one W&B sweep, and print its URL.

    The view shows every run of the sweep, best first: parallel coordinates of the swept
    parameters (in the sweep file's order, log axes where the sweep samples on a log scale, the
    sweep's metric last), parameter importance for that metric, a run comparer, the metric
    against each numeric parameter and against cost/usd, the metric and train/loss against
    train/global_step (also grouped by each parameter), each run's own GPU memory, tokens/s and
    runtime. Running it again updates the same view (and report). Needs `wandb login` (or
    WANDB_API_KEY).

    \b
    Example:
      lora-sweep dashboard my-team/lora/8x2kq0ab --report
    """
    from agent.review.dashboard import publish

    if not is_wandb_path(sweep_path):
        raise click.ClickException(f"{sweep_path!r} is not a W&B sweep path entity/project/sweep_id")
    urls = publish(sweep_path, with_report)
    click.echo(f"Workspace: {urls[0]}")
    if with_report:
        click.echo(f"Report: {urls[1]}")


@click.command("demo")
@click.option(
    "--sweep-yaml",
    default=str(SMOKE_SWEEP),
    show_default="sweeps/smoke.yaml",
    type=click.Path(exists=True, dir_okay=False),
)
@STORE_OPTION
def demo_command(sweep_yaml: str, store_path: str | None) -> None:
    """Run the smoke sweep locally to the end, offline on CPU, then review it: the best
    configuration, the six answers and the files of `lora-sweep report`.

    \b
    Example:
      lora-sweep demo        # a few minutes on a laptop CPU, no W&B account
    """
    from agent.local.cli import checked_sweep, program_env
    from agent.local.demo import run_demo
    from agent.local.store import open_store
    from agent.records import best_run
    from agent.review.pages import format_answers
    from agent.review.report import default_out_dir, write_review

    config = checked_sweep(sweep_yaml)
    store = open_store(store_path, must_exist=False)
    # The demo never needs an account: runs stay local unless the user chose a W&B mode.
    sweep_id, finished = run_demo(store, config, sweep_yaml, echo=click.echo, env=program_env(WANDB_MODE="offline"))
    record = store.sweep_record(sweep_id)
    if best_run(record) is not None:  # something to review, even when a run failed
        out = default_out_dir(sweep_id)
        review = write_review(record, out)
        click.echo(format_answers(review.findings))
        click.echo(f"\nWrote {out}/: {', '.join(review.files)}")
        click.echo(f"Again: lora-sweep report {sweep_id}; upload later: wandb sync --yes (see docs/offline.md)")
    if not finished:
        raise SystemExit(1)
