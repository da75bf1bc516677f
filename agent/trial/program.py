"""One LoRA fine-tuning trial: the program every sweep agent launches.

    python -m agent.train --lora_r=16 --learning_rate=1e-4           # one W&B run
    python -m agent.train --config best.yaml --seed=7                # a saved configuration, one change
    WANDB_MODE=offline python -m agent.train --model_name_or_path=builtin:tiny-llama \\
        --dataset=builtin:synthetic --max_steps=100                  # CPU, no account, no download
    wandb agent ENTITY/PROJECT/SWEEP_ID                              # many runs, W&B picks the values

This is the entry point: parameters and environment -> wandb.init -> the launch counted
(agent/trial/launches.py) -> the recipe (agent/trial/recipe.py: data -> model + LoRA -> Trainer with
ROUGE evaluations -> final scoring of the best adapter) -> the exit code. It imports only what
checking the parameters needs, so a bad flag fails in a second, before torch loads.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.env_vars import CACHE_ENV, GPU_HOURLY_USD_ENV, SHARE_ENV
from agent.records import COST_KEY, PREEMPTED_EXIT_CODE, PULL_FAILURES_KEY, SHARE_KEY
from agent.trial.config import DEFAULT_CACHE_ROOT, PARAMETERS, ConfigError, TrialConfig, load_yaml_mapping
from agent.trial.gpu_share import (
    CudaMemory,
    GpuShare,
    cap_memory,
    parse_share,
    record_usable_memory,
    within_share,
)
from agent.trial.stopping import Preempted, StopKind, StopRequest
from agent.trial.wandb_link import RunLink

if TYPE_CHECKING:
    from agent.trial.checkpoint_artifact import CheckpointMirror

DEFAULT_PROJECT = "lora-sweep"
"""The W&B project of a run started outside any sweep, unless WANDB_PROJECT names another."""


def parse_args(argv: Sequence[str]) -> dict[str, Any]:
    """`--name=value`, `--name value`, `name=value` and bare `--flag` (true), plus `--config FILE`.

    Flags override the config file. Values stay strings here; the trial config checks their types.
    """
    params: dict[str, Any] = {}
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, has_value, value = arg.lstrip("-").partition("=")
        if not has_value and not arg.startswith("--"):
            raise ConfigError(f"unexpected argument {arg!r}: give parameters as --name=value")
        if not has_value:
            value = args.pop(0) if args and not args[0].startswith("--") else "true"
        params[name.replace("-", "_")] = value
    config_file = params.pop("config", None)
    from_file = load_yaml_mapping(config_file, "config file", "parameter names to values") if config_file else {}
    return {**from_file, **params}


def usage() -> str:
    lines = [__doc__.strip(), "", "Parameters (--name=value):"]
    for name, spec in PARAMETERS.items():
        lines.append(f"  --{name:<30} {spec.metadata['help']} [default: {spec.default}]")
    lines.append(f"  --{'config':<30} a YAML file of name: value pairs (flags override it)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, stop: StopRequest | None = None) -> int:
    """The whole launch; returns its exit code. `stop` is installed at the program's first line
    (agent/train.py), so a SIGTERM during the imports is already recorded."""
    argv = sys.argv[1:] if argv is None else argv
    if {"-h", "--help"} & set(argv):
        print(usage())
        return 0
    try:
        config = TrialConfig.from_params(parse_args(argv))  # bad flags fail before any import of torch
        surroundings = Surroundings.read(os.environ)
    except ConfigError as error:
        return report_error(error)
    stop = stop or StopRequest(os.environ).install()
    try:
        stop.boundary("start")
        import wandb

        stop.boundary("init")  # no run yet: under W&B the agent hands the parameters out again
    except Preempted:
        return say_preempted("before a run was made")

    if wandb.env.SWEEP_ID not in os.environ:
        # Our project name for standalone runs only: under `wandb agent SWEEP_ID` the agent found the
        # sweep through the project it resolved (WANDB_PROJECT or wandb/settings), and its runs belong there.
        os.environ.setdefault("WANDB_PROJECT", DEFAULT_PROJECT)
    # A scheduler's SIGTERM can take W&B's service down with it (Slurm signals every process of a
    # job): after a SIGTERM, a W&B call that fails no longer fails the launch (agent/trial/wandb_link.py).
    run = RunLink(wandb.init(config=config.to_params()), stop.latch)
    cost = GpuCost.begin(run, surroundings.hourly_usd, surroundings.share)
    if surroundings.share:  # the review counts this run's GPU-hours at its share (agent.review.results)
        run.summary[SHARE_KEY] = float(surroundings.share.fraction)
    try:
        stop.boundary("run")
        # Under a sweep, wandb.config holds the agent's values (locked); they win over flags.
        config = TrialConfig.from_params(trial_params(dict(run.config), surroundings.sweep_names))
        exit_code = run_trial(config, run, stop, surroundings)
    except ConfigError as error:
        exit_code = report_error(error)
    except Preempted:  # before this launch was counted
        run.mark_preempting()
        exit_code = say_preempted(f"run {run.id}")
    except BaseException:
        traceback.print_exc()
        exit_code = 1
    cost.record(run)
    run.finish(exit_code=exit_code)
    return exit_code


@dataclass(frozen=True)
class Surroundings:
    """What the launching agent tells the trial through its environment, read once, here, and passed down."""

    sweep_names: set[str]
    """The parameters the agent's sweep sets (WANDB_SWEEP_PARAM_PATH)."""
    share: GpuShare | None
    """This trial's share of its GPU, when agents share one (LORA_SWEEP_GPU_SHARE)."""
    hourly_usd: float | None
    """The price of a whole GPU-hour (LORA_SWEEP_GPU_HOURLY_USD)."""
    cache_root: Path
    """Where the built-in tiny model is built once and kept (LORA_SWEEP_CACHE)."""

    @classmethod
    def read(cls, environ: Mapping[str, str]) -> Surroundings:
        return cls(
            sweep_names=sweep_parameter_names(environ.get("WANDB_SWEEP_PARAM_PATH")),
            share=parse_share(environ.get(SHARE_ENV)),
            hourly_usd=gpu_hourly_usd(environ.get(GPU_HOURLY_USD_ENV)),
            cache_root=Path(environ.get(CACHE_ENV) or DEFAULT_CACHE_ROOT),
        )


def say_preempted(what: str) -> int:
    print(f"preempted: {what} exits {PREEMPTED_EXIT_CODE} to be requeued", file=sys.stderr)
    return PREEMPTED_EXIT_CODE


def gpu_hourly_usd(value: str | None) -> float | None:
    """The price of this run's GPU-hour (LORA_SWEEP_GPU_HOURLY_USD), or None when not given."""
    if value is None or not value.strip():
        return None
    try:
        price = float(value)
    except ValueError:
        price = -1.0
    if not price >= 0:  # also NaN
        raise ConfigError([f"{GPU_HOURLY_USD_ENV}={value!r}: give the price of a GPU-hour in US dollars, like 2.49"])
    return price


@dataclass(frozen=True)
class GpuCost:
    """What the run's GPU time costs: `cost/usd` in its summary, when the price of a GPU-hour is known."""

    hourly_usd: float | None
    """The price of this run's share of a GPU-hour."""
    started: float
    """time.monotonic() at wandb.init: the run's runtime, as W&B counts it, starts there."""
    earlier_usd: float = 0.0
    """What earlier launches of a resumed run cost (their summary's cost/usd, when W&B kept it)."""

    @classmethod
    def begin(cls, run: Any, gpu_hourly_usd: float | None, share: GpuShare | None) -> GpuCost:
        """The run pays for its share of the GPU: agents that share one split its price."""
        hourly_usd = None if gpu_hourly_usd is None else gpu_hourly_usd * float(share.fraction if share else 1)
        earlier = run.summary.get(COST_KEY) if hourly_usd is not None else None
        earlier_usd = float(earlier) if isinstance(earlier, (int, float)) else 0.0
        return cls(hourly_usd, time.monotonic(), earlier_usd)

    def record(self, run: Any) -> None:
        if self.hourly_usd is not None:
            hours = (time.monotonic() - self.started) / 3600
            run.summary[COST_KEY] = self.earlier_usd + hours * self.hourly_usd


def sweep_parameter_names(path: str | None) -> set[str]:
    """The names an agent's sweep sets (WANDB_SWEEP_PARAM_PATH: `{name: {value: ...}}`)."""
    if not path or not Path(path).exists():
        return set()
    names = load_yaml_mapping(path, "sweep parameter file", "parameter names to values")
    return {name for name in names if name != "wandb_version"}


def trial_params(run_config: dict[str, Any], sweep_names: set[str]) -> dict[str, Any]:
    """Our parameters out of wandb.config.

    A resumed run's config also holds what others wrote there on an earlier launch (transformers'
    WandbCallback copies its 100+ TrainingArguments fields, W&B adds `_wandb`): those are left out.
    Every name the sweep itself sets is kept, so a typo in a sweep file still fails.
    """
    return {k: v for k, v in run_config.items() if k in PARAMETERS or k in sweep_names}


def report_error(error: ConfigError) -> int:
    for problem in error.problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1


def run_trial(config: TrialConfig, run: Any, stop: StopRequest, surroundings: Surroundings) -> int:
    """One launch of a run, counted; returns the exit code. A preempted run exits 143, marked preempting.

    With a GPU share, CUDA memory is capped at it, and outgrowing it fails this launch in one line.
    """
    from agent.trial.checkpoint import run_folder
    from agent.trial.checkpoint_artifact import checkpoint_mirror
    from agent.trial.launches import LaunchLedger

    memory = CudaMemory()
    cap_memory(surroundings.share, memory)
    folder = run_folder(config.preempt.checkpoint_dir, config.train.output_dir, run.id)
    mirror = checkpoint_mirror(config.preempt.checkpoint_dir, run, stop)
    stop.boundary("pull")
    if not pull_checkpoint(folder, mirror, run, config.preempt.max_attempts):
        return 1
    stop.boundary("pulled")
    refuse_another_config(folder, config, run.id)
    ledger = LaunchLedger.begin(folder, run, mirror, config.preempt.max_attempts)
    if ledger.exhausted:
        ledger.give_up()
        return 1
    try:
        from agent.trial.recipe import fine_tune  # torch and the rest: only now that the launch is counted

        record_usable_memory(run, surroundings.share, memory)
        with within_share(surroundings.share, memory):
            fine_tune(config, run, stop, folder, mirror, ledger.is_last, surroundings.cache_root)
    except Preempted:
        ledger.preempted(lambda: stop.time_left(config.preempt.preempt_grace_s))
        return say_preempted(f"run {run.id}")
    except BaseException as error:
        ledger.failed(error)
        raise
    ledger.ended(stopped=stop.poll() is StopKind.STOP)  # a Ctrl-C after the last boundary too
    return 0


def pull_checkpoint(folder: Path, mirror: CheckpointMirror, run: Any, max_attempts: int) -> bool:
    """The run's newest checkpoint from its mirror; False when pulls kept failing and the run must end.

    A failed pull trains nothing and loses nothing: a requeued launch downloads again (raises Preempted).
    The launch is not counted (that count lives in the folder the pull failed to bring), so the run's
    summary counts failed pulls, and a pull that keeps failing ends the run failed instead of forever requeued.
    """
    from agent.trial.checkpoint_artifact import PullFailed

    try:
        mirror.pull(folder)
    except PullFailed as error:
        failures = int(run.summary.get(PULL_FAILURES_KEY) or 0) + 1
        run.summary[PULL_FAILURES_KEY] = failures
        if failures >= max_attempts:
            print(f"error: {error}; {failures} launches in a row could not pull it, so the run ends", file=sys.stderr)
            return False
        print(f"warning: {error}", file=sys.stderr)
        raise Preempted from None
    if run.summary.get(PULL_FAILURES_KEY):
        run.summary[PULL_FAILURES_KEY] = 0  # pulled: the count is of failures in a row
    return True


def refuse_another_config(folder: Path, config: TrialConfig, run_id: str) -> None:
    """A checkpoint continues only the config it was trained with: another one is refused, in one line."""
    from agent.trial.checkpoint import config_differences, latest_checkpoint

    checkpoint = latest_checkpoint(folder)
    differences = config_differences(checkpoint, config.training_params()) if checkpoint else []
    if differences:
        raise ConfigError(
            f"run {run_id} was checkpointed with other parameters: {', '.join(differences)}; relaunch it with "
            f"the parameters it started with, or delete {folder} (and, for an online run without a "
            f"checkpoint_dir, the W&B artifact checkpoint-{run_id}) to train it afresh"
        )


if __name__ == "__main__":
    sys.exit(main())
