"""`lora-sweep`: validate, run and review LoRA sweeps, on W&B or fully offline."""

from __future__ import annotations

from pathlib import Path

import click


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
    from agent.config import ConfigError
    from agent.sweep_config import grid_size, load_sweep_config, sweep_problems

    try:
        config = load_sweep_config(sweep_yaml)
        problems = sweep_problems(config)
    except ConfigError as error:
        problems = error.problems
    if problems:
        for problem in problems:
            click.echo(f"error: {sweep_yaml}: {problem}", err=True)
        raise SystemExit(1)
    size = grid_size(config)
    runs = f"a grid of {size} runs" if size is not None else f"{config['method']} search (runs until run_cap or --count)"
    metric = config.get("metric")
    objective = f", optimizing {metric['name']} ({metric.get('goal', 'minimize')})" if metric else ""
    click.echo(f"{sweep_yaml}: valid, {runs}{objective}")


# report ------------------------------------------------------------------------------------------


@main.command()
@click.argument("sweep_id")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for report.html, summary.md, the PNGs and best.yaml  [default: outputs/review/<sweep>]",
)
@click.option("--store", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Local sweep store (local sweeps only).")
def report(sweep_id: str, out: Path | None, store: Path | None) -> None:
    """Review a sweep: results table, parallel coordinates, importance, verdicts and best.yaml.

    SWEEP_ID is a local sweep id, or entity/project/id for a W&B sweep (read through the
    W&B public API).

    \b
    Example:
      lora-sweep report 3fk2a9 --out review/
      python -m agent.train --config review/best.yaml   # rerun the winner
    """
    from agent.report import ReviewError, review_sweep

    out = out or Path("outputs", "review", sweep_id.replace("/", "-"))
    try:
        review = review_sweep(sweep_id, out, store)
    except ReviewError as error:
        raise click.ClickException(str(error)) from None
    click.echo(review.format_terminal())
    click.echo(f"\nWrote {out}/: report.html, summary.md, parallel_coordinates.png, curves.png, best.yaml")


if __name__ == "__main__":
    main()
