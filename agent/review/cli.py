"""The review's commands: `report` (offline, any sweep) and `dashboard` (a W&B view of a W&B sweep)."""

from __future__ import annotations

from pathlib import Path

import click

from agent.local.cli import STORE_OPTION
from agent.records import is_wandb_path


@click.command("report")
@click.argument("sweep_id")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for report.html, summary.md, the PNGs and best.yaml  [default: outputs/review/<sweep>]",
)
@STORE_OPTION
def report_command(sweep_id: str, out: Path | None, store_path: str | None) -> None:
    """Review a sweep: results table, parallel coordinates, importance, verdicts and best.yaml.

    SWEEP_ID is a local sweep id, or entity/project/id for a W&B sweep (read through the
    W&B public API).

    \b
    Example:
      lora-sweep report 3fk2a9 --out review/
      python -m agent.train --config review/best.yaml   # rerun the winner
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
    help="Also publish a W&B Report: the same panels, the verdicts, what the cost buys and the winning configuration.",
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
