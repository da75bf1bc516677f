"""Whether a W&B sweep ends by itself: pods bill until their sweep runs out of runs or their deadline.

A grid ends, and so does a sweep with `run_cap`; a random or Bayesian sweep without `run_cap`
never runs out of runs, so every pod would run to its deadline. `pods up` then wants that
deadline chosen on purpose (--max-hours given), not taken from the default.
"""

from __future__ import annotations

from agent.fleet.pods import PodError


def sweep_config(path: str) -> tuple[dict | None, str]:
    """The sweep's config read through `wandb.Api()`, or None and why it could not be read."""
    try:
        import wandb

        return dict(wandb.Api().sweep(path).config), ""
    except Exception as error:  # wandb raises its own errors, ValueError, and wandb-core's failures alike
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        return None, lines[0] if lines else type(error).__name__


def ends_by_itself(config: dict) -> bool:
    return config.get("method") == "grid" or bool(config.get("run_cap"))


def check_bounded(path: str, max_hours_given: bool, dry_run: bool) -> str:
    """One line on how the pods' cost is bounded; a PodError when nothing but the default bounds it."""
    if max_hours_given:
        return "bound: each pod stops at its --max-hours deadline at the latest"
    config, why = sweep_config(path)
    if config is None:
        line = f"cannot read sweep {path} from W&B ({why}) to see whether it ends: pass --max-hours on purpose"
        if dry_run:
            return f"bound: {line} (`pods up` refuses otherwise)"
        raise PodError(line)
    if not ends_by_itself(config):
        raise PodError(
            f"sweep {path} ({config.get('method')}, no run_cap) never runs out of runs, so every pod would bill "
            "until --max-hours: pass --max-hours on purpose, or give the sweep a run_cap"
        )
    return f"bound: sweep {path} ends by itself ({'grid' if config.get('method') == 'grid' else 'run_cap'})"
