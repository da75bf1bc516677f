"""ROUGE pinned on hand-written pairs, and aggregated exactly as Hugging Face `evaluate` does.

`evaluate.load("rouge")` downloads its metric script from the Hub, which tests cannot reach; its
`_compute` is: one `rouge_scorer.RougeScorer(rouge_types, use_stemmer)` score per pair, added to a
`scoring.BootstrapAggregator`, reporting `aggregate()[type].mid.fmeasure`. `reference_evaluate_rouge`
below is that procedure, written independently, with numpy seeded as our module seeds it.
"""

import numpy as np
import pytest
from rouge_score import rouge_scorer, scoring

import agent.trial.rouge as rouge_module
from agent.trial.rouge import BOOTSTRAP_SEED, ROUGE_TYPES, aggregate, one_sentence_per_line, score_pairs


def reference_evaluate_rouge(predictions, references):
    scorer = rouge_scorer.RougeScorer(rouge_types=list(ROUGE_TYPES), use_stemmer=True)
    aggregator = scoring.BootstrapAggregator()
    for ref, pred in zip(references, predictions):
        aggregator.add_scores(scorer.score(ref, pred))
    np.random.seed(BOOTSTRAP_SEED)
    return {k: 100 * v.mid.fmeasure for k, v in aggregator.aggregate().items()}


def test_identical_texts_score_100():
    assert aggregate(score_pairs(["Anna will bring cookies."], ["Anna will bring cookies."])) == pytest.approx(
        {"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0, "rougeLsum": 100.0}
    )


def test_hand_computed_pair():
    # reference tokens: tom will meet anna at the cafe (7); prediction: anna will meet tom (4)
    # rouge1: 4 common unigrams -> P=4/4, R=4/7, F=8/11. rouge2: "will meet" -> P=1/3, R=1/6, F=2/9.
    # rougeL: LCS "will meet" (2) -> P=2/4, R=2/7, F=4/11.
    scores = aggregate(score_pairs(["Anna will meet Tom."], ["Tom will meet Anna at the cafe."]))
    assert scores["rouge1"] == pytest.approx(100 * 8 / 11)
    assert scores["rouge2"] == pytest.approx(100 * 2 / 9)
    assert scores["rougeL"] == pytest.approx(100 * 4 / 11)


def test_stemming_matches_word_forms():
    assert aggregate(score_pairs(["They were meeting"], ["They were meet"]))["rouge1"] == pytest.approx(100.0)


def test_rouge_lsum_scores_sentence_by_sentence():
    reference = "Anna bakes cookies. Tom buys milk."
    assert one_sentence_per_line(reference) == "Anna bakes cookies.\nTom buys milk."
    swapped = aggregate(score_pairs(["Tom buys milk. Anna bakes cookies."], [reference]))
    assert swapped["rougeLsum"] == pytest.approx(100.0)  # each sentence's LCS is whole
    assert swapped["rougeL"] < 100.0  # one LCS over the text is broken by the swap


def test_aggregation_equals_evaluate_rouge():
    predictions = ["Anna will meet Tom at noon.", "Jerry gets cookies.", "Nothing here", "Sam is confused."]
    references = [
        "Tom will meet Anna at the cafe at noon.",
        "Amanda baked cookies for Jerry.",
        "Olivia votes liberal.",
        "Sam is confused about Rick.",
    ]
    ours = aggregate(score_pairs(predictions, references))
    expected = reference_evaluate_rouge(predictions, [one_sentence_per_line(r) for r in references])
    assert ours == expected  # bit for bit


@pytest.mark.parametrize("examples", [1, 2, 17, 818])
@pytest.mark.parametrize("resamples_per_block", [1000, 300])  # the whole bootstrap in one block, or in four
def test_bootstrap_equals_rouge_scores_aggregator_bit_for_bit(examples, resamples_per_block, monkeypatch):
    """Our bootstrap draws BootstrapAggregator's resamples in blocks: the same draws, the same sums."""
    monkeypatch.setattr(rouge_module, "_BLOCK_VALUES", resamples_per_block * examples)
    rng = np.random.RandomState(examples)
    scores = [{name: scoring.Score(*rng.rand(3)) for name in ROUGE_TYPES} for _ in range(examples)]
    aggregator = scoring.BootstrapAggregator()
    for score in scores:
        aggregator.add_scores(score)
    np.random.seed(BOOTSTRAP_SEED)
    expected = {name: 100 * value.mid.fmeasure for name, value in aggregator.aggregate().items()}
    assert aggregate(scores) == expected


def test_aggregation_leaves_the_global_numpy_rng_alone():
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    aggregate(score_pairs(["a b c"], ["a b d"]))
    assert np.random.rand() == expected
