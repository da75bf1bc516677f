"""One LoRA fine-tuning trial: the program every sweep agent launches.

    python -m agent.train --lora_r=16 --learning_rate=1e-4           # one W&B run
    python -m agent.train --config best.yaml --seed=7                # a saved configuration, one change
    WANDB_MODE=offline python -m agent.train --model_name_or_path=builtin:tiny-llama \\
        --dataset=builtin:synthetic --max_steps=100                  # CPU, no account, no download
    wandb agent ENTITY/PROJECT/SWEEP_ID                              # many runs, W&B picks the values

The flow reads top to bottom: parameters -> wandb.init -> data -> model + LoRA -> Trainer with
ROUGE evaluations -> final scoring of the best adapter -> what the run leaves behind.
"""

from __future__ import annotations

import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from agent.records import (
    COST_KEY,
    GPU_HOURLY_USD_ENV,
    OBJECTIVE,
    PEAK_MEMORY_KEY,
    PREEMPTED_EXIT_CODE,
    SHARE_KEY,
    STEP_KEY,
    RunState,
)
from agent.trial.config import PARAMETERS, ConfigError, TrialConfig, load_yaml_mapping
from agent.trial.gpu_share import SHARE_ENV, CudaMemory, GpuShare, cap_memory, parse_share, within_share
from agent.trial.stopping import Preempted, StopKind, StopRequest

if TYPE_CHECKING:
    from agent.trial.callbacks import BestAdapterKeeper
    from agent.trial.checkpoint import LaunchRecord
    from agent.trial.checkpoint_artifact import CheckpointMirror

PULL_FAILURES_KEY = "attempt/pull_failures"
"""Launches in a row whose checkpoint pull failed (in the run's summary, which W&B keeps across requeues)."""
DEFAULT_PROJECT = "lora-sweep"
"""The W&B project of a run started outside any sweep, unless WANDB_PROJECT names another."""
# Sample predictions logged as a W&B Table: enough to read, small enough to sync quickly.
TABLE_ROWS = 20


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
        sweep_names = sweep_parameter_names(os.environ.get("WANDB_SWEEP_PARAM_PATH"))
        share = parse_share(os.environ.get(SHARE_ENV))  # set when agents share this GPU
        hourly_usd = gpu_hourly_usd(os.environ.get(GPU_HOURLY_USD_ENV))
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
    run = wandb.init(config=config.to_params())
    cost = GpuCost.begin(run, hourly_usd, share)
    if share:  # the review counts this run's GPU-hours at its share of the GPU (agent.review.results)
        run.summary[SHARE_KEY] = float(share.fraction)
    try:
        stop.boundary("run")
        # Under a sweep, wandb.config holds the agent's values (locked); they win over flags.
        config = TrialConfig.from_params(trial_params(dict(run.config), sweep_names))
        exit_code = run_trial(config, run, stop, share)
    except ConfigError as error:
        exit_code = report_error(error)
    except Preempted:  # before this launch was counted as an attempt
        run.mark_preempting()
        exit_code = say_preempted(f"run {run.id}")
    except BaseException:
        traceback.print_exc()
        exit_code = 1
    cost.record(run)
    run.finish(exit_code=exit_code)
    return exit_code


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
    """What earlier attempts of a resumed run cost (their summary's cost/usd, when W&B kept it)."""

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

    A resumed run's config also holds what others wrote there on an earlier attempt (transformers'
    WandbCallback copies its 100+ TrainingArguments fields, W&B adds `_wandb`): those are left out.
    Every name the sweep itself sets is kept, so a typo in a sweep file still fails.
    """
    return {k: v for k, v in run_config.items() if k in PARAMETERS or k in sweep_names}


def report_error(error: ConfigError) -> int:
    for problem in error.problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1


def run_trial(config: TrialConfig, run: Any, stop: StopRequest, share: GpuShare | None = None) -> int:
    """One launch of a run, counted; returns the exit code. A preempted run exits 143, marked preempting.

    With a GPU share, CUDA memory is capped at it, and outgrowing it fails this attempt in one line.
    """
    from agent.trial.checkpoint import begin_attempt, end_attempt, run_folder
    from agent.trial.checkpoint_artifact import PullFailed, checkpoint_mirror

    memory = CudaMemory()
    cap_memory(share, memory)
    folder = run_folder(config.preempt.checkpoint_dir, config.train.output_dir, run.id)
    mirror = checkpoint_mirror(config.preempt.checkpoint_dir, run, stop)
    stop.boundary("pull")
    try:
        mirror.pull(folder)
    except PullFailed as error:
        # Nothing trained, nothing lost: a requeued launch downloads again. The launch is not counted as
        # an attempt (that count lives in the folder the pull failed to bring), so the run's summary
        # counts failed pulls, and a pull that keeps failing ends the run failed instead of forever requeued.
        failures = int(run.summary.get(PULL_FAILURES_KEY) or 0) + 1
        run.summary[PULL_FAILURES_KEY] = failures
        if failures >= config.preempt.max_attempts:
            print(f"error: {error}; {failures} launches in a row could not pull it, so the run ends", file=sys.stderr)
            return 1
        print(f"warning: {error}", file=sys.stderr)
        raise Preempted from None
    if run.summary.get(PULL_FAILURES_KEY):
        run.summary[PULL_FAILURES_KEY] = 0  # pulled: the count is of failures in a row
    stop.boundary("pulled")
    refuse_another_config(folder, config, run.id)
    attempt = begin_attempt(folder)
    mirror.push(folder)
    run.summary["attempt/number"] = attempt.number
    if attempt.exhausted(config.preempt.max_attempts):
        reason = give_up(run, attempt, config.preempt.max_attempts)
        end_attempt(folder, RunState.FAILED, reason)  # counted with its reason, not left `running`
        mirror.push(folder)
        mirror.wait()
        return 1
    try:
        with within_share(share, memory):
            fine_tune(config, run, stop, folder, attempt, mirror)
    except Preempted:
        run.mark_preempting()  # W&B requeues a run marked preempting that exits non-zero
        end_attempt(folder, RunState.PREEMPTED)  # on disk first: it never waits on W&B
        grace_s = config.preempt.preempt_grace_s
        # The outcome goes to the artifact too, but never past the grace: a push still under way then
        # is abandoned, and `push` (which waits for it) is not called.
        if mirror.wait(max(stop.time_left(grace_s), 0.0)):
            mirror.push(folder)
            mirror.wait(max(stop.time_left(grace_s), 0.0))
        run.summary["attempt/outcome"] = RunState.PREEMPTED.value
        return say_preempted(f"run {run.id}")
    except BaseException as error:
        reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}".rstrip(": ")
        end_attempt(folder, RunState.FAILED, reason)
        mirror.push(folder)
        mirror.wait()
        if attempt.is_last(config.preempt.max_attempts):
            reason = (
                f"failed on attempt {attempt.number}, the last of max_attempts={config.preempt.max_attempts}: {reason}"
            )
        run.summary.update({"attempt/outcome": RunState.FAILED.value, "failure_reason": reason})
        raise
    outcome = RunState.STOPPED if stop.stopped else RunState.FINISHED
    end_attempt(folder, outcome)
    mirror.push(folder)
    mirror.wait()
    run.summary["attempt/outcome"] = outcome.value
    return 0


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


def give_up(run: Any, attempt: LaunchRecord, max_attempts: int) -> str:
    """A controller relaunched a run that already failed max_attempts times: end it failed, train
    nothing. Returns the reason."""
    from agent.trial.checkpoint import GAVE_UP

    reason = (
        f"gave up after {attempt.failures_before} failed attempts (max_attempts={max_attempts}); "
        f"last: {attempt.last_failure}"
    )
    run.summary.update({"attempt/outcome": GAVE_UP, "failure_reason": reason})
    print(f"error: {reason}", file=sys.stderr)
    return reason


def fine_tune(
    config: TrialConfig, run: Any, stop: StopRequest, folder: Path, attempt: LaunchRecord, mirror: CheckpointMirror
) -> None:
    """Data and model -> ROUGE baseline (or the checkpoint to resume) -> training -> the best adapter, scored."""
    started = time.perf_counter()
    stop.boundary("load")
    trial = prepare(config, run, folder, stop, mirror)
    resume_from = restore(trial, folder, run)
    run.summary["time/load_s"] = time.perf_counter() - started
    stop.boundary("baseline")
    if resume_from is None:
        trial.rouge.evaluate(trial.model, step=0)  # the untuned baseline starts every ROUGE curve
    if not attempt.is_last(config.preempt.max_attempts):
        # Marked from now on, a run killed without warning (lost heartbeat, non-zero exit) is requeued.
        # The last allowed attempt is not marked: if it fails, the run ends failed.
        run.mark_preempting()
    stop.boundary("train")
    train_s = train_adapter(trial, stop, resume_from)
    if stop.preempted:
        raise Preempted
    finish(trial, run, config, stop, train_s)


@dataclass
class Trial:
    """What one launch builds before training: the pieces every later step uses."""

    model: Any
    tokenizer: Any
    validation: Any
    trainer: Any
    rouge: Any
    keeper: Any
    checkpoints: Any
    collator: Any
    out_dir: Path


def prepare(config: TrialConfig, run: Any, folder: Path, stop: StopRequest, mirror: CheckpointMirror) -> Trial:
    from transformers import set_seed

    from agent.trial.callbacks import BestAdapterKeeper, CheckpointKeeper, LogTrainingToWandb, RougeCallback
    from agent.trial.data import build_collator, load_dialogues, tokenize_train
    from agent.trial.evaluation import Evaluator
    from agent.trial.model import add_lora, check_model, load_base_model, load_tokenizer
    from agent.trial.trainer import ResumableTrainer

    check_model(config.model, config.lora)  # a wrong path or layer name fails before data loads or weights are read
    set_seed(config.train.seed)  # before the adapter exists: its initial weights are random too
    splits = load_dialogues(config.data.dataset)
    tokenizer = load_tokenizer(config.model)
    model = add_lora(load_base_model(config.model), config.lora)
    train_set = tokenize_train(splits["train"], tokenizer, config.data)
    validation = splits["validation"]
    subset = validation.select(range(min(config.eval.eval_subset_size, len(validation))))
    evaluate_subset = Evaluator(tokenizer, subset["dialogue"], subset["summary"], config.data, config.eval)
    trainable, total = model.get_nb_trainable_parameters()
    run.summary.update({"train/trainable_params": trainable, "train/total_params": total})
    training_args = build_training_arguments(config, folder, run.name)
    model.to(training_args.device)  # the baseline evaluation runs where training will

    define_metrics(run)
    keeper = BestAdapterKeeper()
    rouge = RougeCallback(run, evaluate_subset, keeper, config.eval.eval_steps, stop)
    checkpoints = CheckpointKeeper(stop, keeper, config.preempt.preempt_grace_s, mirror, config.training_params())
    collator = build_collator(config.device.padding_free, tokenizer.pad_token_id)
    trainer = ResumableTrainer(
        model=model,
        args=training_args,
        train_dataset=train_set,
        data_collator=collator,
        processing_class=tokenizer,
        # Order matters: the evaluation of a step comes before its checkpoint, so the checkpoint holds it.
        callbacks=[rouge, checkpoints, LogTrainingToWandb(run)],
    )
    out_dir = Path(config.train.output_dir) / run.id
    return Trial(model, tokenizer, validation, trainer, rouge, keeper, checkpoints, collator, out_dir)


def restore(trial: Trial, folder: Path, run: Any) -> Path | None:
    """The newest complete checkpoint of this run, with the best adapter and counters it holds."""
    from agent.trial.checkpoint import latest_checkpoint, step_of

    checkpoint = latest_checkpoint(folder)
    if checkpoint is not None:
        trial.rouge.restore_from(checkpoint)
        run.summary["attempt/resumed_from_step"] = step_of(checkpoint)
        print(f"resuming run {run.id} from {checkpoint}", file=sys.stderr)
    return checkpoint


def train_adapter(trial: Trial, stop: StopRequest, resume_from: Path | None) -> float:
    """The Trainer's loop (continued from `resume_from`), and a last evaluation if the end missed one.

    Returns the seconds spent training, evaluations excluded.
    """
    from agent.trial.checkpoint import step_of, training_done

    started, eval_before = time.perf_counter(), trial.rouge.eval_seconds
    if resume_from is not None and training_done(resume_from):
        final_step = step_of(resume_from)  # a relaunch after the training ended: nothing is trained again
    else:
        trial.trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        if stop.poll() is StopKind.PREEMPT:
            return 0.0
        final_step = trial.trainer.state.global_step
    if trial.rouge.last_step != final_step:
        trial.rouge.evaluate(trial.model, step=final_step)
    return time.perf_counter() - started - (trial.rouge.eval_seconds - eval_before)


def finish(trial: Trial, run: Any, config: TrialConfig, stop: StopRequest, train_s: float) -> None:
    """The best adapter: restored, scored on the whole validation split, saved; the run's summary.

    Training is over and its last checkpoint written: a preemption before the scoring leaves it to the
    relaunch, which trains nothing again; after it, the launch goes on only if the rest fits the grace.
    """
    import torch

    stop.boundary("trained")
    trial.keeper.restore(trial.model)
    # The save, as measured; a relaunch after training measured none, and 0 would be a guess.
    rest_s = trial.checkpoints.save_seconds or math.inf
    grace_s = config.preempt.preempt_grace_s
    first_batch_s = trial.rouge.seconds_per_example * config.eval.eval_batch_size  # until one is timed
    check = scoring_check(stop, rest_s, grace_s, first_batch_s)
    score_full_validation(run, trial.model, trial.tokenizer, trial.validation, config, check)
    stop.boundary("save", rest_s, grace_s)
    adapter_dir = save_adapter(trial.model, config, trial.out_dir / "best_adapter")
    stop.boundary("upload", 0.0, grace_s)  # what is left is queuing the upload and the summary
    upload_adapter(run, config, trial.keeper, adapter_dir)
    stop.boundary("uploaded", 0.0, grace_s)
    run.summary.update({OBJECTIVE: trial.keeper.score, "time/eval_s": trial.rouge.eval_seconds})
    if train_s > 0:  # a relaunch after training trained nothing: no throughput to report
        run.summary.update(
            {
                "time/train_s": train_s,
                "train/tokens_per_s": trial.collator.real_tokens / train_s,
                "train/real_token_share": trial.collator.real_token_share,
            }
        )
    if torch.cuda.is_available():
        run.summary.update(
            {
                PEAK_MEMORY_KEY: torch.cuda.max_memory_allocated() / 2**30,
                "gpu/peak_reserved_gb": torch.cuda.max_memory_reserved() / 2**30,
            }
        )
    print(
        f"best eval/rougeL {trial.keeper.score:.2f} at step {trial.keeper.step}; "
        f"final/rougeL {run.summary['final/rougeL']:.2f}; adapter in {trial.out_dir / 'best_adapter'}"
    )


def define_metrics(run: Any) -> None:
    run.define_metric(STEP_KEY)
    run.define_metric("eval/*", step_metric=STEP_KEY)
    # W&B's Bayesian search scores a run by the best of its history and summary, hyperband reads the
    # history, the dashboard reads the summary: the summary holds the best so far, as a plain number,
    # written by RougeCallback after each evaluation. W&B keeps no summary of its own for it ("none"),
    # which would be {"max": x} between two writes.
    run.define_metric(OBJECTIVE, step_metric=STEP_KEY, summary="none")


def build_training_arguments(config: TrialConfig, checkpoint_folder: Path, run_name: str) -> Any:
    """Every training parameter of the trial config, explicitly: nothing swept is left behind.

    The Trainer writes its checkpoints (every `eval_steps`, after that step's evaluation) to the
    run's checkpoint folder; CheckpointKeeper keeps the newest.
    """
    import torch
    from transformers import TrainingArguments

    from agent.trial.model import device_training_arguments, use_bf16

    t = config.train
    return TrainingArguments(
        output_dir=str(checkpoint_folder),
        run_name=run_name,
        learning_rate=t.learning_rate,
        num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        # Not a slip: transformers 5 has no warmup_ratio; its warmup_steps reads a value below 1 as
        # that share of the total steps (TrainingArguments.get_warmup_steps), and ours is < 1.
        warmup_steps=t.warmup_ratio,
        weight_decay=t.weight_decay,
        logging_steps=t.logging_steps,
        seed=t.seed,
        data_seed=t.seed,
        bf16=use_bf16(config.model),
        # Batches of similar length pad little. Packed batches keep the same order, so padding_free
        # changes the speed of a run, not the batches it trains on.
        train_sampling_strategy="group_by_length",
        remove_unused_columns=False,  # keep `length` for the sampler; the collator picks its keys
        eval_strategy="no",  # ROUGE comes from generation, in RougeCallback
        save_strategy="steps",  # checkpoints to resume from after a preemption
        save_steps=config.eval.eval_steps,
        save_total_limit=None,  # CheckpointKeeper removes older ones once the new one is complete
        report_to=[],  # LogTrainingToWandb logs to the run: WandbCallback would write over the trial config
        **device_training_arguments(config.device, torch.cuda.is_available()),  # compile, Liger
    )


def scoring_check(
    stop: StopRequest, save_s: float, grace_s: float, first_batch_s: float = math.inf
) -> Callable[[int, int], None]:
    """A boundary before each batch of the final scoring: a preemption ends the launch there unless
    the batches left (at the pace so far, or `first_batch_s` each before one is timed) and the save
    fit the grace."""
    started = time.perf_counter()

    def check(done: int, total: int) -> None:
        per_batch = (time.perf_counter() - started) / done if done else first_batch_s
        stop.boundary("scoring", per_batch * (total - done) + save_s, grace_s)

    return check


def score_full_validation(
    run: Any,
    model: Any,
    tokenizer: Any,
    validation: Any,
    config: TrialConfig,
    between_batches: Callable[[int, int], None] | None = None,
) -> None:
    """The shipped (best) adapter on the whole validation split, under final/*: never the objective."""
    import wandb

    from agent.trial.evaluation import Evaluator

    started = time.perf_counter()
    evaluate = Evaluator(tokenizer, validation["dialogue"], validation["summary"], config.data, config.eval)
    result = evaluate(model, between_batches)
    run.summary.update({f"final/{k}": v for k, v in result.metrics.items()})
    run.summary["time/final_eval_s"] = time.perf_counter() - started
    table = wandb.Table(columns=["dialogue", "reference", "prediction", "rougeL"])
    for i in range(min(TABLE_ROWS, len(validation))):
        table.add_data(validation[i]["dialogue"], validation[i]["summary"], result.predictions[i], result.rouge_l[i])
    run.log({"eval/samples": table})


def save_adapter(model: Any, config: TrialConfig, adapter_dir: Path) -> Path:
    """The best adapter with its resolved config beside it."""
    model.save_pretrained(adapter_dir)
    (adapter_dir / "trial_config.yaml").write_text(yaml.safe_dump(config.to_params(), sort_keys=False))
    return adapter_dir


def upload_adapter(run: Any, config: TrialConfig, keeper: BestAdapterKeeper, adapter_dir: Path) -> None:
    """The saved adapter, logged as a W&B model artifact (uploaded in the background, before the run ends)."""
    import wandb

    artifact = wandb.Artifact(
        f"lora-adapter-{run.id}",
        type="model",
        metadata={OBJECTIVE: keeper.score, "best_step": keeper.step, **config.to_params()},
    )
    artifact.add_dir(str(adapter_dir))
    run.log_artifact(artifact)


if __name__ == "__main__":
    sys.exit(main())
