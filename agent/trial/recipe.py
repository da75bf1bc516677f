"""The recipe of one launch: prepare -> restore -> train -> score -> save, read top to bottom.

The entry point (`agent/trial/program.py`) parses the parameters, starts the W&B run and counts the
launch; it imports this module only then, so a bad flag fails before torch loads. Everything heavy
is imported here, at the top.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import wandb
import yaml
from datasets import Dataset
from peft import PeftModel
from transformers import PreTrainedTokenizerBase, TrainingArguments, set_seed

from agent.records import (
    EVAL_PREFIX,
    EVAL_S_KEY,
    FINAL_EVAL_S_KEY,
    FINAL_OBJECTIVE,
    FINAL_PREFIX,
    LOAD_S_KEY,
    OBJECTIVE,
    PEAK_MEMORY_KEY,
    PEAK_RESERVED_KEY,
    PLATEAU_STOP_KEY,
    REAL_TOKEN_SHARE_KEY,
    RESUMED_FROM_STEP_KEY,
    SAMPLES_KEY,
    STEP_KEY,
    TOKENS_PER_S_KEY,
    TOTAL_PARAMS_KEY,
    TRAIN_S_KEY,
    TRAINABLE_PARAMS_KEY,
)
from agent.trial.callbacks import BestAdapterKeeper, CheckpointKeeper, LogTrainingToWandb, RougeCallback
from agent.trial.checkpoint import latest_checkpoint, step_of, training_done
from agent.trial.checkpoint_artifact import CheckpointMirror
from agent.trial.config import TrialConfig
from agent.trial.data import PackingCollator, PaddingCollator, build_collator, load_dialogues, tokenize_train
from agent.trial.evaluation import Evaluator
from agent.trial.model import (
    add_lora,
    check_model,
    device_training_arguments,
    load_base_model,
    load_tokenizer,
    use_bf16,
)
from agent.trial.plateau import Plateau
from agent.trial.stopping import Preempted, StopKind, StopRequest
from agent.trial.trainer import ResumableTrainer

# Sample predictions logged as a W&B Table: enough to read, small enough to sync quickly.
TABLE_ROWS = 20


def fine_tune(
    config: TrialConfig,
    run: wandb.Run,
    stop: StopRequest,
    folder: Path,
    mirror: CheckpointMirror,
    last_launch: bool,
    cache_root: Path | None = None,
) -> None:
    """Data and model -> ROUGE baseline (or the checkpoint to resume) -> training -> the best adapter, scored.

    `last_launch`: a failure of this launch would be the last max_attempts allows. `cache_root`: where
    the built-in tiny model is built (None: the default cache)."""
    started = time.perf_counter()
    stop.boundary("load")
    trial = prepare(config, run, folder, stop, mirror, cache_root)
    resume_from = restore(trial, folder, run)
    run.summary[LOAD_S_KEY] = time.perf_counter() - started
    stop.boundary("baseline")
    if resume_from is None:
        trial.rouge.evaluate(trial.model, step=0)  # the untuned baseline starts every ROUGE curve
    if not last_launch:
        # Marked from now on, a run killed without warning (lost heartbeat, non-zero exit) is requeued.
        # The last allowed launch is not marked: if it fails, the run ends failed.
        run.mark_preempting()
    stop.boundary("train")
    train_s = train_adapter(trial, stop, resume_from)
    if stop.preempted:
        raise Preempted
    finish(trial, run, config, stop, train_s)


@dataclass
class Trial:
    """What one launch builds before training: the pieces every later step uses."""

    model: PeftModel
    tokenizer: PreTrainedTokenizerBase
    validation: Dataset
    """The whole validation split, scored once at the end (the evaluations use a fixed subset of it)."""
    trainer: ResumableTrainer
    rouge: RougeCallback
    keeper: BestAdapterKeeper
    checkpoints: CheckpointKeeper
    collator: PaddingCollator | PackingCollator
    out_dir: Path


def prepare(
    config: TrialConfig,
    run: wandb.Run,
    folder: Path,
    stop: StopRequest,
    mirror: CheckpointMirror,
    cache_root: Path | None,
) -> Trial:
    # A wrong path or layer name fails before data loads or weights are read.
    check_model(config.model, config.lora, cache_root)
    set_seed(config.train.seed)  # before the adapter exists: its initial weights are random too
    splits = load_dialogues(config.data.dataset)
    tokenizer = load_tokenizer(config.model, cache_root)
    model = add_lora(load_base_model(config.model, cache_root), config.lora)
    train_set = tokenize_train(splits["train"], tokenizer, config.data)
    validation = splits["validation"]
    subset = validation.select(range(min(config.eval.eval_subset_size, len(validation))))
    evaluate_subset = Evaluator(tokenizer, subset["dialogue"], subset["summary"], config.data, config.eval)
    trainable, total = model.get_nb_trainable_parameters()
    run.summary.update({TRAINABLE_PARAMS_KEY: trainable, TOTAL_PARAMS_KEY: total})
    training_args = build_training_arguments(config, folder, run.name)
    model.to(training_args.device)  # the baseline evaluation runs where training will

    define_metrics(run)
    keeper = BestAdapterKeeper()
    plateau = Plateau(config.eval.plateau_patience, config.eval.plateau_threshold)  # ROUGE-L: higher is better
    rouge = RougeCallback(run, evaluate_subset, keeper, config.eval.eval_steps, stop, plateau)
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


def restore(trial: Trial, folder: Path, run: wandb.Run) -> Path | None:
    """The newest complete checkpoint of this run, with the best adapter and counters it holds."""
    checkpoint = latest_checkpoint(folder)
    if checkpoint is not None:
        trial.rouge.restore_from(checkpoint)
        run.summary[RESUMED_FROM_STEP_KEY] = step_of(checkpoint)
        print(f"resuming run {run.id} from {checkpoint}", file=sys.stderr)
    return checkpoint


def train_adapter(trial: Trial, stop: StopRequest, resume_from: Path | None) -> float:
    """The Trainer's loop (continued from `resume_from`), and a last evaluation if the end missed one.

    Training ends at the last step, or earlier at a plateau (`plateau_patience`). Returns the seconds
    spent training, evaluations excluded.
    """
    started, eval_before = time.perf_counter(), trial.rouge.eval_seconds
    if resume_from is not None:
        trial.rouge.catch_up(trial.model, resume_from, training_done(resume_from))
    if resume_from is not None and (training_done(resume_from) or trial.rouge.plateau.stopped):
        final_step = step_of(resume_from)  # a relaunch after the training ended: nothing is trained again
    else:
        trial.trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        if stop.poll() is StopKind.PREEMPT:
            return 0.0
        final_step = trial.trainer.state.global_step
    if trial.rouge.last_step != final_step:
        trial.rouge.evaluate(trial.model, step=final_step, last=True)
    return time.perf_counter() - started - (trial.rouge.eval_seconds - eval_before)


def finish(trial: Trial, run: wandb.Run, config: TrialConfig, stop: StopRequest, train_s: float) -> None:
    """The best adapter: restored, scored on the whole validation split, saved; the run's summary.

    Training is over and its last checkpoint written: a preemption before the scoring leaves it to the
    relaunch, which trains nothing again; after it, the launch goes on only if the rest fits the grace.
    """
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
    run.summary.update({OBJECTIVE: trial.keeper.score, EVAL_S_KEY: trial.rouge.eval_seconds})
    if trial.rouge.plateau.stopped:
        run.summary[PLATEAU_STOP_KEY] = trial.rouge.plateau.stopped_step
    if train_s > 0:  # a relaunch after training trained nothing: no throughput to report
        run.summary.update(
            {
                TRAIN_S_KEY: train_s,
                TOKENS_PER_S_KEY: trial.collator.real_tokens / train_s,
                REAL_TOKEN_SHARE_KEY: trial.collator.real_token_share,
            }
        )
    if torch.cuda.is_available():
        run.summary.update(
            {
                PEAK_MEMORY_KEY: torch.cuda.max_memory_allocated() / 2**30,
                PEAK_RESERVED_KEY: torch.cuda.max_memory_reserved() / 2**30,
            }
        )
    print(
        f"best {OBJECTIVE} {trial.keeper.score:.2f} at step {trial.keeper.step}; "
        f"{FINAL_OBJECTIVE} {run.summary[FINAL_OBJECTIVE]:.2f}; adapter in {trial.out_dir / 'best_adapter'}"
    )


def define_metrics(run: wandb.Run) -> None:
    run.define_metric(STEP_KEY)
    run.define_metric(f"{EVAL_PREFIX}*", step_metric=STEP_KEY)
    # W&B's Bayesian search scores a run by the best of its history and summary, hyperband reads the
    # history, the dashboard reads the summary: the summary holds the best so far, as a plain number,
    # written by RougeCallback after each evaluation. W&B keeps no summary of its own for it ("none"),
    # which would be {"max": x} between two writes.
    run.define_metric(OBJECTIVE, step_metric=STEP_KEY, summary="none")


def build_training_arguments(config: TrialConfig, checkpoint_folder: Path, run_name: str) -> TrainingArguments:
    """Every training parameter of the trial config, explicitly: nothing swept is left behind.

    The Trainer writes its checkpoints (every `eval_steps`, after that step's evaluation) to the
    run's checkpoint folder; CheckpointKeeper keeps the newest.
    """
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
    run: wandb.Run,
    model: PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    validation: Dataset,
    config: TrialConfig,
    between_batches: Callable[[int, int], None] | None = None,
) -> None:
    """The shipped (best) adapter on the whole validation split, under final/*: never the objective."""
    started = time.perf_counter()
    evaluate = Evaluator(tokenizer, validation["dialogue"], validation["summary"], config.data, config.eval)
    result = evaluate(model, between_batches)
    run.summary.update({f"{FINAL_PREFIX}{k}": v for k, v in result.metrics.items()})
    run.summary[FINAL_EVAL_S_KEY] = time.perf_counter() - started
    table = wandb.Table(columns=["dialogue", "reference", "prediction", "rougeL"])
    for i in range(min(TABLE_ROWS, len(validation))):
        table.add_data(validation[i]["dialogue"], validation[i]["summary"], result.predictions[i], result.rouge_l[i])
    run.log({SAMPLES_KEY: table})


def save_adapter(model: PeftModel, config: TrialConfig, adapter_dir: Path) -> Path:
    """The best adapter with its resolved config beside it."""
    model.save_pretrained(adapter_dir)
    (adapter_dir / "trial_config.yaml").write_text(yaml.safe_dump(config.to_params(), sort_keys=False))
    return adapter_dir


def upload_adapter(run: wandb.Run, config: TrialConfig, keeper: BestAdapterKeeper, adapter_dir: Path) -> None:
    """The saved adapter, logged as a W&B model artifact (uploaded in the background, before the run ends)."""
    artifact = wandb.Artifact(
        f"lora-adapter-{run.id}",
        type="model",
        metadata={OBJECTIVE: keeper.score, "best_step": keeper.step, **config.to_params()},
    )
    artifact.add_dir(str(adapter_dir))
    run.log_artifact(artifact)
