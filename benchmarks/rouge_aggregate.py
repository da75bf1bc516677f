"""ROUGE aggregation: our block bootstrap vs rouge-score's `BootstrapAggregator`, which `evaluate` uses.

Both aggregate the same per-example scores (each validation summary of the built-in synthetic set
scored against another's, so the scores spread as weak predictions' do) into the bootstrap mid
F-measure of each ROUGE type, from the same seed. Checks the results are equal, bit for bit, and
prints the time of each and their ratio.

    .venv/bin/python benchmarks/rouge_aggregate.py [--examples 818] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rouge_score import scoring

from agent.trial.config import SYNTHETIC_DATASET
from agent.trial.data import load_dialogues
from agent.trial.rouge import BOOTSTRAP_SEED, aggregate, score_pairs


def rouge_score_aggregate(scores) -> dict[str, float]:
    aggregator = scoring.BootstrapAggregator()
    for score in scores:
        aggregator.add_scores(score)
    np.random.seed(BOOTSTRAP_SEED)
    return {name: 100 * value.mid.fmeasure for name, value in aggregator.aggregate().items()}


def best_time(function, scores, repeats: int) -> tuple[float, dict[str, float]]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = function(scores)
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=818, help="SAMSum's validation split has 818")
    parser.add_argument("--repeats", type=int, default=5)
    cli = parser.parse_args()

    summaries = list(load_dialogues(SYNTHETIC_DATASET)["train"]["summary"][: cli.examples + 1])
    scores = score_pairs(summaries[1:], summaries[:-1])

    baseline_s, expected = best_time(rouge_score_aggregate, scores, cli.repeats)
    ours_s, ours = best_time(aggregate, scores, cli.repeats)
    if ours != expected:
        raise SystemExit(f"the results differ: {ours} != {expected}")

    print(f"examples={len(scores)} bootstrap samples=1000, best of {cli.repeats}; results equal bit for bit")
    print(f"BootstrapAggregator : {1000 * baseline_s:7.1f} ms  rougeL={expected['rougeL']:.4f}")
    print(f"block bootstrap     : {1000 * ours_s:7.1f} ms  rougeL={ours['rougeL']:.4f}")
    print(f"speed-up            : {baseline_s / ours_s:.1f}x")


if __name__ == "__main__":
    main()
