"""What a review finds in a sweep, before anything is drawn or written: the results, parameter
importance, one verdict per swept parameter, warnings about the winner, and the winner as best.yaml;
when runs logged their cost, the cheapest run as good as the winner and one cost verdict per parameter.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import yaml

from agent.errors import UserError
from agent.records import SweepRecord
from agent.review.importance import Importance, compute_importance
from agent.review.results import RunResult, SweepResults, collect_results
from agent.review.verdict import (
    find_cheapest_near_best,
    judge_costs,
    judge_parameters,
    measure_noise,
    tolerance_of,
    warn_about_winner,
)

RERUN_COMMAND = "python -m agent.train --config best.yaml"


class ReviewError(UserError):
    """Nothing to review (unknown sweep, no finished runs); the message is one line for the user."""


@dataclass(frozen=True)
class Findings:
    results: SweepResults
    importance: list[Importance]
    verdicts: list[str]
    warnings: list[str]
    best_yaml: str
    tolerance: float
    """The smallest difference in the objective that counts (MIN_GAIN, or the noise when larger)."""
    cheapest: RunResult | None = None
    """The cheapest finished run within `tolerance` of the winner (the winner itself when nothing
    cheaper comes close); None when no run that close logged a cost, the winner included. Whether the
    sweep has any cost at all is `results.priced`."""
    cost_verdicts: list[str] = field(default_factory=list)


def assess(sweep: SweepRecord) -> Findings:
    results = collect_results(sweep)
    if not results.finished:
        raise ReviewError(explain_nothing_finished(results))
    noise = measure_noise(results)
    tolerance = tolerance_of(noise)
    return Findings(
        results=results,
        importance=compute_importance(results),
        verdicts=judge_parameters(results, tolerance),
        warnings=warn_about_winner(results, noise),
        best_yaml=format_best_config(results),
        tolerance=tolerance,
        cheapest=find_cheapest_near_best(results, tolerance),
        cost_verdicts=judge_costs(results, tolerance),
    )


def format_best_config(results: SweepResults) -> str:
    """The winner's sweep parameters, swept and fixed, as the flat mapping the trainer reads."""
    winner = results.finished[0]
    parameters = {name: value for name, value in winner.params.items() if value is not None}
    header = (
        f"# Winning configuration of sweep {results.sweep_id}: run {winner.run_id}, "
        f"{results.metric} = {winner.objective:.4f}\n"
        f"# Rerun or promote it with: {RERUN_COMMAND}\n"
    )
    return header + yaml.safe_dump(parameters, sort_keys=False)


def explain_nothing_finished(results: SweepResults) -> str:
    if not results.runs:
        return f"sweep {results.sweep_id} has no runs yet; start an agent, then review"
    states = ", ".join(f"{count} {state}" for state, count in Counter(run.state for run in results.runs).items())
    return f"sweep {results.sweep_id} has no finished run with {results.metric} yet ({states}); nothing to review"
