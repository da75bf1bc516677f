"""ROUGE as the objective: `rouge-score` with the Porter stemmer, aggregated as Hugging Face
`evaluate`'s rouge metric does (the bootstrap "mid" F-measure), scaled to 0-100.

`evaluate` stays a dependency (it is the package users reach for, and its rouge is the reference
our numbers match), but nothing calls it at run time: `evaluate.load("rouge")` fetches its metric
script from the Hub on first use, which an offline machine or a pod behind a firewall cannot do, and
a trial must score the same way everywhere. So this module calls the `rouge-score` functions that
the script calls, directly. ROUGE-Lsum needs one
sentence per line; we split on sentence-ending punctuation instead of downloading NLTK's punkt.
The bootstrap is rouge-score's, drawn in blocks: the same numbers, bit for bit, without its
thousand-step Python loop per ROUGE type (benchmarks/rouge_aggregate.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from rouge_score import rouge_scorer, scoring

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
BOOTSTRAP_SEED = 0
BOOTSTRAP_SAMPLES = 1000  # BootstrapAggregator's default, which `evaluate` uses
_BLOCK_VALUES = 1 << 22  # resampled values held at once (32 MB), however many examples there are
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")

_scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def one_sentence_per_line(text: str) -> str:
    return "\n".join(s for s in _SENTENCE_END.split(text.strip()) if s)


def score_pairs(predictions: Sequence[str], references: Sequence[str]) -> list[dict[str, scoring.Score]]:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    return [
        _scorer.score(one_sentence_per_line(ref), one_sentence_per_line(pred))
        for pred, ref in zip(predictions, references)
    ]


def aggregate(scores: Sequence[dict[str, scoring.Score]]) -> dict[str, float]:
    """The bootstrap mid F-measure x100 per ROUGE type, as `evaluate`'s rouge reports it.

    `scoring.BootstrapAggregator` draws its 1,000 resamples one at a time from numpy's global RNG.
    This draws the same resamples from the same stream (seeded here, so one set of predictions always
    gets one objective value, and the global RNG is left alone) and sums each in the same order: the
    same numbers, bit for bit, several times faster.
    """
    if not scores:
        return {}  # as BootstrapAggregator: nothing to aggregate
    rng = np.random.RandomState(BOOTSTRAP_SEED)
    return {
        rouge_type: 100 * bootstrap_mid(np.array([score[rouge_type].fmeasure for score in scores]), rng)
        for rouge_type in scores[0]
    }


def bootstrap_mid(values: np.ndarray, rng: np.random.RandomState) -> float:
    """The median, over bootstrap resamples, of the mean of `values` (one per example).

    `BootstrapAggregator._bootstrap_resample` draws each resample as `choice(arange(n), size=n)`,
    which is `randint(0, n, n)`, and takes its mean with `np.mean(axis=0)`, which adds the drawn
    examples one after another. Drawing a block of resamples as one `randint(0, n, (block, n))`
    consumes the stream exactly as those calls do; adding the block's draws column by column keeps
    each resample's order of addition, so every sum rounds as it does there.
    """
    n = len(values)
    block = max(1, _BLOCK_VALUES // n)
    means = []
    for start in range(0, BOOTSTRAP_SAMPLES, block):
        draws = rng.randint(0, n, size=(min(block, BOOTSTRAP_SAMPLES - start), n))
        sums = values[draws[:, 0]]
        for column in draws.T[1:]:
            sums += values[column]
        means.append(sums / n)
    return float(np.percentile(np.concatenate(means), 50))
