"""ROUGE as the objective: `rouge-score` with the Porter stemmer, aggregated as Hugging Face
`evaluate`'s rouge metric does (the bootstrap "mid" F-measure), scaled to 0-100.

`evaluate.load("rouge")` fetches its metric script from the Hub on first use, so it cannot be the
only path offline; this module calls the same `rouge-score` functions directly. ROUGE-Lsum needs one
sentence per line; we split on sentence-ending punctuation instead of downloading NLTK's punkt.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from rouge_score import rouge_scorer, scoring

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
BOOTSTRAP_SEED = 0
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

    rouge-score resamples with numpy's global RNG; we seed it (and restore it) so one set of
    predictions always gets one objective value.
    """
    aggregator = scoring.BootstrapAggregator()
    for score in scores:
        aggregator.add_scores(score)
    state = np.random.get_state()
    np.random.seed(BOOTSTRAP_SEED)
    try:
        result = aggregator.aggregate()
    finally:
        np.random.set_state(state)
    return {key: 100 * value.mid.fmeasure for key, value in result.items()}


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    return aggregate(score_pairs(predictions, references))
