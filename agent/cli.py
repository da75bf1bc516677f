"""`lora-sweep`: validate, run and review LoRA sweeps, on W&B or fully offline."""

from __future__ import annotations

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


if __name__ == "__main__":
    main()
