"""Trainer callbacks: ROUGE evaluations during training, the adapter of the best one, plateau
stopping, and checkpoints that let a preempted run continue."""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from peft import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file, save_file
from transformers import TrainerCallback, TrainerState
from transformers.trainer_callback import ExportableState

from agent.records import EVAL_PREFIX, MEMORY_KEYS, OBJECTIVE, STEP_KEY
from agent.trial.checkpoint import (
    BEST_ADAPTER_FILE,
    CHECKPOINT_PREFIX,
    seal,
    step_of,
    sync_file,
    write_trial_config,
)
from agent.trial.checkpoint_artifact import CheckpointMirror, NoMirror
from agent.trial.plateau import Plateau
from agent.trial.stopping import StopKind, StopRequest


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

    def save(self, path: Path) -> None:
        if self.state is not None:
            save_file({k: v.contiguous() for k, v in self.state.items()}, str(path))

    def load(self, path: Path, score: float, step: int) -> None:
        self.score, self.step = score, step
        self.state = load_file(str(path)) if path.exists() else None


class RougeCallback(TrainerCallback, ExportableState):
    """ROUGE on the fixed validation subset every `eval_steps` optimizer steps.

    Each evaluation during training is counted by `plateau`, which may end training there
    (`plateau_patience`). Its counters, the plateau's and the best score travel in each checkpoint's
    trainer state (`state()`); the best adapter's weights go beside it in a file (`CheckpointKeeper`).
    """

    def __init__(
        self,
        run: Any,
        evaluator: Any,
        keeper: BestAdapterKeeper,
        eval_steps: int,
        request: StopRequest,
        plateau: Plateau | None = None,
    ):
        self.run, self.evaluator, self.keeper, self.eval_steps = run, evaluator, keeper, eval_steps
        self.request = request
        self.plateau = plateau or Plateau(patience=0, threshold=0.0)
        self.last_step = -1
        self.eval_seconds = 0.0
        self.seconds_per_example = math.inf
        """The last evaluation's pace: the final scoring's estimate before its first batch is timed."""

    def catch_up(self, model: Any, checkpoint: Path, training_ended: bool) -> None:
        """The evaluation a resumed checkpoint missed, on its weights, before training goes on.

        A checkpoint taken on SIGTERM at an eval step skipped that evaluation, and one taken on the last
        step came before the final one: catch up, so the curve has the same points as a run never
        stopped, and a plateau it completes ends training there, as it would have. Done before the
        Trainer's loop, which would train a step before any callback could stop it.
        """
        step = step_of(checkpoint)
        if self.last_step < step and (self.due(step) or training_ended):
            set_peft_model_state_dict(model, load_file(str(checkpoint / "adapter_model.safetensors")))
            self.evaluate(model, step, last=training_ended)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        # Under preemption the grace period is for the checkpoint, not for a generation pass.
        if self.due(state.global_step) and self.request.poll() is not StopKind.PREEMPT:
            self.evaluate(model, state.global_step, last=state.global_step >= state.max_steps)
            if self.plateau.stopped:
                control.should_training_stop = True  # this step's checkpoint is still written, then the loop ends

    def due(self, step: int) -> bool:
        return step > 0 and step % self.eval_steps == 0

    def evaluate(self, model: Any, step: int, last: bool = False) -> None:
        """Score `model` at `step`; `last`: training is over, so the plateau does not count it."""
        started = time.perf_counter()
        result = self.evaluator(model)
        took = time.perf_counter() - started
        self.seconds_per_example = took / max(len(result.predictions), 1)
        if step > 0:  # the baseline runs before training; it is load time, not train time
            self.eval_seconds += took
        self.run.log({**{f"{EVAL_PREFIX}{k}": v for k, v in result.metrics.items()}, STEP_KEY: step})
        self.keeper.offer(model, result.metrics["rougeL"], step)
        # The best so far as a plain number, from the first evaluation on: W&B's panels read the summary,
        # so running, crashed and preempted runs show too (the history is what the sweep engines read).
        self.run.summary[OBJECTIVE] = self.keeper.score
        if not last and self.plateau.observe(result.metrics["rougeL"], step) and self.plateau.stopped_step == step:
            print(
                f"plateau: {OBJECTIVE} gained less than {self.plateau.threshold:g} over "
                f"{self.plateau.patience} evaluations; training stops at step {step}",
                file=sys.stderr,
            )
        self.last_step = step

    def state(self) -> dict:
        return {
            "args": {},
            "attributes": {
                "last_step": self.last_step,
                "eval_seconds": self.eval_seconds,
                "best_score": self.keeper.score,
                "best_step": self.keeper.step,
                "plateau": self.plateau.state(),
            },
        }

    def restore_from(self, checkpoint: Path) -> None:
        """Counters and best adapter as they were when `checkpoint` was written."""
        saved = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
        attributes = saved.stateful_callbacks[type(self).__name__]["attributes"]
        self.last_step, self.eval_seconds = attributes["last_step"], attributes["eval_seconds"]
        self.keeper.load(checkpoint / BEST_ADAPTER_FILE, attributes["best_score"], attributes["best_step"])
        self.plateau.restore(attributes["plateau"])


class CheckpointKeeper(TrainerCallback):
    """Seals every checkpoint the Trainer writes, and answers stop signals at the end of a step.

    The Trainer saves every `eval_steps` (right after that step's ROUGE evaluation). On SIGTERM it
    saves once more, at the end of the step under way, if the last measured save fits in what is
    left of `grace_s`; otherwise the periodic checkpoint stands and at most one eval interval is
    lost. Either way training stops there. Before the first periodic save, the estimate is a save of
    the same weights measured when training begins, never a guess of 0.
    """

    def __init__(
        self,
        request: StopRequest,
        keeper: BestAdapterKeeper,
        grace_s: float,
        mirror: CheckpointMirror = NoMirror(),
        config_params: dict[str, Any] | None = None,
    ):
        self.request, self.keeper, self.grace_s = request, keeper, grace_s
        self.mirror = mirror
        """Handed the run folder once a checkpoint in it is complete (to mirror it elsewhere)."""
        self.config_params = config_params or {}
        """The resolved trial config, written into every checkpoint: a relaunch with another one is refused."""
        self.save_seconds = 0.0  # the last save's duration: the estimate for the next one
        self.save_started = 0.0
        self.saving_for_preemption = False
        """The save under way is the one a SIGTERM asked for, not a periodic save it came during."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is not None and not self.save_seconds:
            self.save_seconds = measure_save(Path(args.output_dir), model)

    def on_step_end(self, args, state, control, **kwargs):
        if self.request.poll() is not None:
            control.should_training_stop = True
            if self.request.preempted:
                fits = self.request.fits(self.save_seconds, self.grace_s)
                control.should_save = self.saving_for_preemption = fits
                if not fits:
                    print(
                        f"preempted: no checkpoint at step {state.global_step}, a save takes "
                        f"{self.save_seconds:.1f} s and the grace is {self.grace_s:g} s",
                        file=sys.stderr,
                    )
        if control.should_save:
            self.save_started = time.monotonic()

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"{CHECKPOINT_PREFIX}{state.global_step}"
        # The previous version is staged before sealing this one removes its files; under a preemption
        # the wait is bounded by the grace, and a push still under way then is left to fail alone.
        bound = max(self.request.time_left(self.grace_s), 0.0) if self.saving_for_preemption else None
        previous_done = self.mirror.wait(bound)
        self.keeper.save(folder / BEST_ADAPTER_FILE)
        write_trial_config(folder, self.config_params)
        seal(folder)
        if previous_done:
            self.mirror.push(folder.parent)  # W&B's calls go on in the background; staging them counts below
        self.save_seconds = time.monotonic() - self.save_started
        if self.saving_for_preemption:
            print(
                f"preempted: checkpoint at step {state.global_step} written "
                f"{self.request.seconds_since():.2f} s after SIGTERM",
                file=sys.stderr,
            )


def measure_save(folder: Path, model: Any) -> float:
    """Seconds to write and sync what a checkpoint holds, about: the adapter, AdamW's two moments and the
    best adapter, each the size of the trainable weights."""
    weights = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".save-probe-{os.getpid()}.safetensors"
    started = time.monotonic()
    try:
        for _ in range(4):
            save_file({name: w.contiguous() for name, w in weights.items()}, str(probe))
            sync_file(probe)
        return time.monotonic() - started
    finally:
        probe.unlink(missing_ok=True)


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
        self.run.define_metric("gpu/*", step_metric=STEP_KEY)

    def on_log(self, args, state, control, logs=None, **kwargs):
        from transformers.integrations.integration_utils import rewrite_logs

        logs = dict(logs or {})
        self.run.summary.update({key: logs.pop(key) for key in self.TOTALS & logs.keys()})
        if logs:
            self.run.log({**rewrite_logs(logs), **cuda_memory(), STEP_KEY: state.global_step})


def cuda_memory() -> dict[str, float]:
    """This process's CUDA memory in GB, allocated and reserved by torch; nothing on CPU.

    W&B's system metrics number GPUs as NVML sees the machine, not as CUDA_VISIBLE_DEVICES does, so
    with one agent per GPU they cannot tell which GPU is this run's: the run logs its own.
    """
    import torch

    if not torch.cuda.is_available():
        return {}
    allocated, reserved = MEMORY_KEYS
    return {allocated: torch.cuda.memory_allocated() / 2**30, reserved: torch.cuda.memory_reserved() / 2**30}
