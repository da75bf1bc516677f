"""What one run's curves say on their own: where its objective stopped improving, and whether its
loss was unstable. Pure functions of (step, value) points, so each rule has table tests
(tests/test_review_answers.py) and the answers (`agent.review.answers`) only combine them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import mean, median

ENDS = 4
"""A run's loss ends above its start when the mean of its last quarter of logged losses exceeds
that of its first quarter (quarters of at least one loss): a single logged loss is one window's
minibatches, and as noisy as they are."""
SPIKE_Z = 6.0
"""A loss jump this many robust standard deviations above the run's typical step-to-step change is
a spike. Iglewicz and Hoaglin's outlier cut-off for the modified z-score is 3.5; minibatch losses are
heavy-tailed, so only jumps well beyond it count."""
MIN_SPIKE_POINTS = 5
"""Fewer logged losses than this give too few differences to know the run's own variation."""
MAD_TO_STD = 1.4826  # a normal distribution's standard deviation over its median absolute deviation
SPREAD_FLOOR = 0.01
"""The least step-to-step variation assumed, as a share of the loss's typical level: on a curve
smoother than this (a steady decline, MAD near 0) a spike must still be SPIKE_Z x 1% of the loss."""
EPSILON = 1e-9  # differences of floats: a gain of exactly the tolerance is no gain


def beyond(difference: float, tolerance: float) -> bool:
    """A difference that counts: more than the tolerance, float rounding aside."""
    return difference > tolerance + EPSILON


def plateau_step(curve: list[tuple[float, float]], tolerance: float, maximize: bool = True) -> float | None:
    """The step of the first evaluation after which no later evaluation improves on the best so far
    by more than `tolerance`; None while the curve is still rising (the only such evaluation is the
    last one) or when there is a single evaluation, which shows no trend at all."""
    if len(curve) < 2:
        return None
    scores = [value if maximize else -value for _, value in curve]
    best_so_far = -math.inf
    for index, (step, _) in enumerate(curve[:-1]):
        best_so_far = max(best_so_far, scores[index])
        if not beyond(max(scores[index + 1 :]) - best_so_far, tolerance):
            return step
    return None


@dataclass(frozen=True)
class LossCheck:
    spikes: list[tuple[float, float]]
    """(step, loss) of every logged loss that jumped far above the run's own step-to-step variation."""
    diverged: str | None
    """Why the loss diverged ("NaN at step 40", "ends above its start"), or None."""

    @property
    def unstable(self) -> bool:
        return bool(self.spikes) or self.diverged is not None


def check_loss(loss: list[tuple[float, float]]) -> LossCheck:
    """Spikes: an increase whose robust z-score, against the median and median absolute deviation
    of the run's own differences, exceeds SPIKE_Z. Divergence: a non-finite loss, or a loss that
    ends above where it started (ENDS)."""
    broken = next((step for step, value in loss if not math.isfinite(value)), None)
    if broken is not None:
        return LossCheck(spikes=[], diverged=f"non-finite loss at step {broken:g}")
    values = [value for _, value in loss]
    ends = max(1, len(values) // ENDS)
    rose = len(values) >= 2 and mean(values[-ends:]) > mean(values[:ends])
    diverged = "ends above its start" if rose else None
    return LossCheck(spikes=find_spikes(loss), diverged=diverged)


def find_spikes(loss: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(loss) < MIN_SPIKE_POINTS:
        return []
    jumps = [later[1] - earlier[1] for earlier, later in zip(loss, loss[1:])]
    center = median(jumps)
    level = median(abs(value) for _, value in loss)
    spread = max(MAD_TO_STD * median(abs(jump - center) for jump in jumps), SPREAD_FLOOR * level)
    if spread == 0:  # a loss of exactly 0 throughout
        return []
    return [point for point, jump in zip(loss[1:], jumps) if (jump - center) / spread > SPIKE_Z]


def median_or_none(values: list[float | None]) -> float | None:
    """The median, counting None (never reached) as later than any number: None when at least half
    never got there, so that a value whose runs mostly never plateaued does not look fast."""
    if not values:
        return None
    ordered = sorted(values, key=lambda value: math.inf if value is None else value)
    middle = ordered[(len(ordered) - 1) // 2 : len(ordered) // 2 + 1]
    if any(value is None for value in middle):
        return None
    return sum(middle) / len(middle)
