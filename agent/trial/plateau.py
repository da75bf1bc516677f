"""Plateau stopping: end training once the objective has stopped improving (`plateau_patience`).

The rule, in the style of transformers' `EarlyStoppingCallback` and Keras' `EarlyStopping`: an
evaluation improves when it beats the reference by at least `plateau_threshold` (in the objective's
units, ROUGE-L x100); the reference is the first evaluation (the untuned baseline, step 0) and then
each evaluation that improved. After `plateau_patience` evaluations in a row without an improvement,
training stops. Gains smaller than the threshold do not move the reference, so slow steady gains add
up until they count, while noise around a flat curve does not.

transformers' own callback does not fit: it reads `Trainer.evaluate`'s metrics (`on_evaluate`) and
`state.best_metric`, which the Trainer sets only with `metric_for_best_model` and its own evaluation
loop, while ours is a generation pass in `RougeCallback` with `eval_strategy="no"`.

Pure and small, so the rule is tested on hand-made sequences; its state travels in each checkpoint
through `RougeCallback.state()`, so a resumed run stops where an uninterrupted one does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

ROUNDING = 1e-9
"""A gain this close to the threshold counts as reaching it: 20.3 - 20.0 must count at threshold 0.3."""


@dataclass
class Plateau:
    patience: int
    """Evaluations in a row without an improvement before training stops; 0 never stops."""
    threshold: float
    """The smallest gain over the reference that counts as an improvement (objective units)."""
    maximize: bool = True
    reference: float | None = None
    """The score of the last evaluation that improved (the first evaluation to begin with)."""
    waited: int = 0
    """Evaluations since the last improvement."""
    stopped_step: int | None = None
    """The step of the evaluation that ended training; None while it goes on."""

    @property
    def stopped(self) -> bool:
        return self.stopped_step is not None

    def observe(self, score: float, step: int) -> bool:
        """Count one evaluation; True when training should stop at `step`."""
        if self.reference is None or self.improves(score):
            self.reference, self.waited = score, 0
        else:
            self.waited += 1
        if self.patience > 0 and self.waited >= self.patience and self.stopped_step is None:
            self.stopped_step = step
        return self.stopped

    def improves(self, score: float) -> bool:
        gain = score - self.reference if self.maximize else self.reference - score
        return gain > 0 and gain >= self.threshold - ROUNDING

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps (the parameters come back from the trial config)."""
        return {k: v for k, v in asdict(self).items() if k in ("reference", "waited", "stopped_step")}

    def restore(self, saved: dict[str, Any]) -> None:
        self.reference, self.waited, self.stopped_step = saved["reference"], saved["waited"], saved["stopped_step"]


def stop_step(scores: list[tuple[int, float]], patience: int, threshold: float, maximize: bool = True) -> int | None:
    """The step at which a run with these `(step, score)` evaluations stops, or None: the rule on a history."""
    plateau = Plateau(patience, threshold, maximize)
    for step, score in scores:
        if plateau.observe(score, step):
            return step
    return None
