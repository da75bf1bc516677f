"""What a review finds in a sweep, before anything is drawn or written: the results, parameter
importance, one verdict per swept parameter, warnings about the winner, the answers to the six
questions, the recommended configuration as best.yaml and the next sweep as next.yaml; when runs
logged their cost, the cheapest run as good as the winner and one cost verdict per parameter.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import yaml

from agent.errors import UserError
from agent.records import SweepRecord
from agent.review.answers import Answers, answer_questions
from agent.review.importance import Importance, compute_importance
from agent.review.next_sweep import format_next_sweep
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
    answers: Answers
    best_yaml: str
    """The recommended run's parameters (the winner's when nothing lighter comes close)."""
    next_yaml: str
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
    answers = answer_questions(results, tolerance)
    return Findings(
        results=results,
        importance=compute_importance(results),
        verdicts=judge_parameters(results, tolerance),
        warnings=warn_about_winner(results, noise),
        answers=answers,
        best_yaml=format_best_config(results, answers),
        next_yaml=format_next_sweep(sweep.config, results, answers),
        tolerance=tolerance,
        cheapest=find_cheapest_near_best(results, tolerance),
        cost_verdicts=judge_costs(results, tolerance),
    )


def format_best_config(results: SweepResults, answers: Answers) -> str:
    """The recommended run's sweep parameters, swept and fixed, as the flat mapping the trainer
    reads; the header names the raw winner and why a lighter run was chosen over it."""
    chosen, winner = answers.recommended, answers.winner
    parameters = {name: value for name, value in chosen.params.items() if value is not None}
    if chosen is winner:
        header = (
            f"# Winning configuration of sweep {results.sweep_id}: run {winner.run_id}, "
            f"{results.metric} = {winner.objective:.4f}\n"
        )
        if answers.why_recommended:
            header += f"# Kept although {answers.why_recommended}\n"
    else:
        header = (
            f"# Recommended configuration of sweep {results.sweep_id}: run {chosen.run_id}, "
            f"{results.metric} = {chosen.objective:.4f}\n"
            f"# The raw winner is run {winner.run_id} ({results.metric} = {winner.objective:.4f}); this one is\n"
            f"# {answers.why_recommended}\n"
        )
    return header + f"# Rerun or promote it with: {RERUN_COMMAND}\n" + yaml.safe_dump(parameters, sort_keys=False)


def explain_nothing_finished(results: SweepResults) -> str:
    if not results.runs:
        return f"sweep {results.sweep_id} has no runs yet; start an agent, then review"
    states = ", ".join(f"{count} {state}" for state, count in Counter(run.state for run in results.runs).items())
    return f"sweep {results.sweep_id} has no finished run with {results.metric} yet ({states}); nothing to review"
