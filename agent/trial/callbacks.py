"""Trainer callbacks: ROUGE evaluations during training and the adapter of the best one."""

from __future__ import annotations

import time
from typing import Any

from peft import get_peft_model_state_dict, set_peft_model_state_dict
from transformers import TrainerCallback

from agent.records import STEP_KEY


class BestAdapterKeeper:
    """Holds a copy of the adapter weights of the best evaluation so far (they are small)."""

    def __init__(self) -> None:
        self.score = float("-inf")
        self.step = -1
        self.state: dict[str, Any] | None = None

    def offer(self, model: Any, score: float, step: int) -> None:
        if score > self.score:
            self.score, self.step = score, step
            self.state = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}

    def restore(self, model: Any) -> None:
        if self.state is not None:
            set_peft_model_state_dict(model, self.state)


class RougeCallback(TrainerCallback):
    """ROUGE on the fixed validation subset every `eval_steps` optimizer steps."""

    def __init__(self, run: Any, evaluator: Any, keeper: BestAdapterKeeper, eval_steps: int):
        self.run, self.evaluator, self.keeper, self.eval_steps = run, evaluator, keeper, eval_steps
        self.last_step = -1
        self.eval_seconds = 0.0

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.eval_steps == 0:
            self.evaluate(model, state.global_step)

    def evaluate(self, model: Any, step: int) -> None:
        started = time.perf_counter()
        result = self.evaluator(model)
        if step > 0:  # the baseline runs before training; it is load time, not train time
            self.eval_seconds += time.perf_counter() - started
        self.run.log({**{f"eval/{k}": v for k, v in result.metrics.items()}, STEP_KEY: step})
        self.keeper.offer(model, result.metrics["rougeL"], step)
        self.last_step = step


class LogTrainingToWandb(TrainerCallback):
    """The Trainer's own logs (loss, learning rate, grad norm, epoch) under `train/*`, against the step.

    It stands in for transformers' WandbCallback (`report_to="wandb"`), which also copies every
    TrainingArguments field into wandb.config. Those share names with the trial parameters
    (`learning_rate`, `seed`, `bf16`, `output_dir` ...): under a sweep they are locked, and W&B printed
    one "Config item ... was locked by 'sweep'" warning per shared name on every run; outside a sweep
    they overwrote what the user asked for. The trial parameters already determine every
    TrainingArguments field (`build_training_arguments`), so the run's config holds them alone.
    """

    # Logged once, when training ends: run totals, kept in the summary (as WandbCallback keeps them).
    TOTALS = {"train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss", "total_flos"}

    def __init__(self, run: Any):
        self.run = run

    def on_train_begin(self, args, state, control, **kwargs):
        self.run.define_metric("train/*", step_metric=STEP_KEY)

    def on_log(self, args, state, control, logs=None, **kwargs):
        from transformers.integrations.integration_utils import rewrite_logs

        logs = dict(logs or {})
        self.run.summary.update({key: logs.pop(key) for key in self.TOTALS & logs.keys()})
        if logs:
            self.run.log({**rewrite_logs(logs), STEP_KEY: state.global_step})
