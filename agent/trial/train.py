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

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from agent.records import OBJECTIVE, STEP_KEY
from agent.trial.config import PARAMETERS, ConfigError, TrialConfig, load_yaml_mapping

if TYPE_CHECKING:
    from agent.trial.callbacks import BestAdapterKeeper

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


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if {"-h", "--help"} & set(argv):
        print(usage())
        return 0
    try:
        config = TrialConfig.from_params(parse_args(argv))  # bad flags fail before any import of torch
    except ConfigError as error:
        return report_error(error)

    import wandb

    if wandb.env.SWEEP_ID not in os.environ:
        # Our project name for standalone runs only: under `wandb agent SWEEP_ID` the agent found the
        # sweep through the project it resolved (WANDB_PROJECT or wandb/settings), and its runs belong there.
        os.environ.setdefault("WANDB_PROJECT", DEFAULT_PROJECT)
    run = wandb.init(config=config.to_params())
    try:
        # Under a sweep, wandb.config holds the agent's values (locked); they win over flags.
        config = TrialConfig.from_params(dict(run.config))
        run_trial(config, run)
    except ConfigError as error:
        run.finish(exit_code=1)
        return report_error(error)
    run.finish()
    return 0


def report_error(error: ConfigError) -> int:
    for problem in error.problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1


def run_trial(config: TrialConfig, run: Any) -> None:
    import torch
    from transformers import Trainer, set_seed

    from agent.trial.callbacks import BestAdapterKeeper, LogTrainingToWandb, RougeCallback
    from agent.trial.data import PaddingCollator, load_dialogues, tokenize_train
    from agent.trial.evaluation import Evaluator
    from agent.trial.model import add_lora, check_model, load_base_model, load_tokenizer

    started = time.perf_counter()
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
    out_dir = Path(config.train.output_dir) / run.id
    training_args = build_training_arguments(config, out_dir, run.name)
    model.to(training_args.device)  # the baseline evaluation runs where training will

    define_metrics(run)
    keeper = BestAdapterKeeper()
    callback = RougeCallback(run, evaluate_subset, keeper, config.eval.eval_steps)
    run.summary["time/load_s"] = time.perf_counter() - started
    callback.evaluate(model, step=0)  # the untuned baseline starts every ROUGE curve

    collator = PaddingCollator(pad_token_id=tokenizer.pad_token_id)
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_set,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[callback, LogTrainingToWandb(run)],
    )
    train_started = time.perf_counter()
    trainer.train()
    final_step = trainer.state.global_step
    if callback.last_step != final_step:
        callback.evaluate(model, step=final_step)
    train_s = time.perf_counter() - train_started - callback.eval_seconds

    keeper.restore(model)
    score_full_validation(run, model, tokenizer, validation, config)
    save_adapter(run, model, config, keeper, out_dir / "best_adapter")
    run.summary.update(
        {
            # A scalar best, so the dashboard, `best_run()` and reports need not unpack {"max": ...}.
            OBJECTIVE: keeper.score,
            "time/train_s": train_s,
            "time/eval_s": callback.eval_seconds,
            "train/tokens_per_s": collator.real_tokens / train_s if train_s > 0 else 0.0,
            "train/real_token_share": collator.real_token_share,
        }
    )
    if torch.cuda.is_available():
        run.summary.update(
            {
                "gpu/peak_allocated_gb": torch.cuda.max_memory_allocated() / 2**30,
                "gpu/peak_reserved_gb": torch.cuda.max_memory_reserved() / 2**30,
            }
        )
    print(
        f"best eval/rougeL {keeper.score:.2f} at step {keeper.step}; "
        f"final/rougeL {run.summary['final/rougeL']:.2f}; adapter in {out_dir / 'best_adapter'}"
    )


def define_metrics(run: Any) -> None:
    run.define_metric(STEP_KEY)
    run.define_metric("eval/*", step_metric=STEP_KEY)
    # W&B's Bayesian search scores a run by its best value, the dashboard reads the summary: make them agree.
    run.define_metric(OBJECTIVE, step_metric=STEP_KEY, summary="max")


def build_training_arguments(config: TrialConfig, out_dir: Path, run_name: str) -> Any:
    """Every training parameter of the trial config, explicitly: nothing swept is left behind."""
    from transformers import TrainingArguments

    from agent.trial.model import use_bf16

    t = config.train
    return TrainingArguments(
        output_dir=str(out_dir),
        run_name=run_name,
        learning_rate=t.learning_rate,
        num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        warmup_steps=t.warmup_ratio,  # a float below 1 is a share of the total steps
        weight_decay=t.weight_decay,
        logging_steps=t.logging_steps,
        seed=t.seed,
        data_seed=t.seed,
        bf16=use_bf16(config.model),
        train_sampling_strategy="group_by_length",  # batches of similar length pad little
        remove_unused_columns=False,  # keep `length` for the sampler; the collator picks its keys
        eval_strategy="no",  # ROUGE comes from generation, in RougeCallback
        save_strategy="no",  # the best adapter is kept by BestAdapterKeeper
        report_to=[],  # LogTrainingToWandb logs to the run: WandbCallback would write over the trial config
    )


def score_full_validation(run: Any, model: Any, tokenizer: Any, validation: Any, config: TrialConfig) -> None:
    """The shipped (best) adapter on the whole validation split, under final/*: never the objective."""
    import wandb

    from agent.trial.evaluation import Evaluator

    started = time.perf_counter()
    result = Evaluator(tokenizer, validation["dialogue"], validation["summary"], config.data, config.eval)(model)
    run.summary.update({f"final/{k}": v for k, v in result.metrics.items()})
    run.summary["time/final_eval_s"] = time.perf_counter() - started
    table = wandb.Table(columns=["dialogue", "reference", "prediction", "rougeL"])
    for i in range(min(TABLE_ROWS, len(validation))):
        table.add_data(validation[i]["dialogue"], validation[i]["summary"], result.predictions[i], result.rouge_l[i])
    run.log({"eval/samples": table})


def save_adapter(run: Any, model: Any, config: TrialConfig, keeper: BestAdapterKeeper, adapter_dir: Path) -> None:
    """The best adapter with its resolved config beside it, logged as a W&B model artifact."""
    import wandb

    model.save_pretrained(adapter_dir)
    (adapter_dir / "trial_config.yaml").write_text(yaml.safe_dump(config.to_params(), sort_keys=False))
    artifact = wandb.Artifact(
        f"lora-adapter-{run.id}",
        type="model",
        metadata={OBJECTIVE: keeper.score, "best_step": keeper.step, **config.to_params()},
    )
    artifact.add_dir(str(adapter_dir))
    run.log_artifact(artifact)


if __name__ == "__main__":
    sys.exit(main())
