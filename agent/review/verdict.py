"""The decision in plain words: one verdict per swept parameter, and warnings about the winner.

A parameter with a few values is judged on the best run at each value (what you can get with
that value, the other parameters at their best). A parameter with many distinct values (random or
Bayesian search over a range) is judged on its correlation with the objective. Differences
smaller than the tolerance are called ties: the tolerance is MIN_GAIN, or the run-to-run noise
measured on repeated seeds when that is larger.

When runs logged their cost (`cost/usd`), the same tolerance decides what money buys: the cheapest
run within it of the winner, and for each swept parameter whether a costlier value gains more
than it over the cheapest value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import variance

import numpy as np

from agent.records import COST_KEY
from agent.review.formatting import format_usd, format_value
from agent.review.results import Parameter, RunResult, SweepResults

MIN_GAIN = 0.3  # metric points (ROUGE x100): below this a difference does not change a decision
MIN_FINISHED = 3  # fewer finished runs than this cannot support a comparison
MAX_LEVELS = 6  # more distinct values than this: judge the trend, not each value
CLEAR_TREND = 0.5  # |Pearson| from which a trend is worth stating


@dataclass(frozen=True)
class Noise:
    std: float
    """Pooled standard deviation of the objective across runs of one configuration."""
    groups: int
    """How many configurations were run more than once."""

    @property
    def of_difference(self) -> float:
        """The standard deviation of the difference between two runs: std times sqrt(2)."""
        return self.std * math.sqrt(2)


def measure_noise(results: SweepResults) -> Noise | None:
    """Run-to-run noise from configurations run more than once (other seeds), if any."""
    groups: dict[tuple, list[float]] = {}
    for run in results.finished:
        groups.setdefault(configuration_key(results, run), []).append(run.objective)
    repeated = [values for values in groups.values() if len(values) > 1]
    if not repeated:
        return None
    degrees = sum(len(values) - 1 for values in repeated)
    pooled = sum(variance(values) * (len(values) - 1) for values in repeated) / degrees
    return Noise(std=math.sqrt(pooled), groups=len(repeated))


def configuration_key(results: SweepResults, run: RunResult) -> tuple:
    """What makes two runs the same configuration: every swept parameter but the seed."""
    return tuple(repr(run.params.get(p.name)) for p in results.swept if p.name != "seed")


def tolerance_of(noise: Noise | None) -> float:
    return max(MIN_GAIN, noise.of_difference if noise else 0.0)


def warn_about_winner(results: SweepResults, noise: Noise | None) -> list[str]:
    finished = results.finished
    warnings = []
    if len(finished) < MIN_FINISHED:
        warnings.append(
            f"only {len(finished)} of {len(results.runs)} runs finished: too few to conclude; "
            "treat the winner as provisional"
        )
    runner_up = find_runner_up(results)
    if runner_up and noise:
        lead = results.score(finished[0]) - results.score(runner_up)
        if lead <= noise.of_difference:
            warnings.append(
                f"the winner's lead over the runner-up ({runner_up.run_id}) is {lead:.2f} {results.metric}, "
                f"within run-to-run noise ({noise.of_difference:.2f}, from {noise.groups} repeated "
                "configuration(s)): rerun both with more seeds before choosing"
            )
    return warnings


def find_runner_up(results: SweepResults) -> RunResult | None:
    """The best finished run of a different configuration (another seed of the winner is no rival)."""
    finished = results.finished
    if not finished:
        return None
    winner = configuration_key(results, finished[0])
    return next((run for run in finished[1:] if configuration_key(results, run) != winner), None)


def judge_parameters(results: SweepResults, tolerance: float) -> list[str]:
    return [judge_parameter(results, parameter, tolerance) for parameter in results.swept]


def judge_parameter(results: SweepResults, parameter: Parameter, tolerance: float) -> str:
    name, metric = parameter.name, results.metric
    best = best_score_per_value(results, parameter)
    if len(best) < 2:
        only = ", ".join(format_value(value) for value in best) or "none"
        return f"{name}: only one value finished ({only}); nothing to compare"
    if not parameter.categorical and len(best) > MAX_LEVELS:
        return judge_trend(results, parameter, tolerance)
    order = sorted(best, key=best.get, reverse=True) if parameter.categorical else sorted(best)
    listing = ", ".join(f"{format_value(value)}: {show_score(results, best[value]):.2f}" for value in order)
    if max(best.values()) - min(best.values()) < tolerance:
        return f"{name}: makes no difference: every value is within {tolerance:.2g} {metric} of the others ({listing})"
    if parameter.categorical:
        return judge_categories(name, metric, best, tolerance) + f" ({listing})"
    return judge_ordered(name, metric, best, tolerance) + f" ({listing})"


def judge_categories(name: str, metric: str, best: dict, tolerance: float) -> str:
    ranked = sorted(best, key=best.get, reverse=True)
    ties = [value for value in ranked[1:] if best[ranked[0]] - best[value] < tolerance]
    if ties:
        tied = ", ".join(format_value(value) for value in [ranked[0], *ties])
        return f"{name}: {tied} are within {tolerance:.2g} {metric} of each other; choose the cheapest"
    lead = best[ranked[0]] - best[ranked[1]]
    return f"{name}: {format_value(ranked[0])} is best, {lead:.2f} {metric} ahead of {format_value(ranked[1])}"


def judge_ordered(name: str, metric: str, best: dict, tolerance: float) -> str:
    values = sorted(best)
    top = max(best.values())
    enough = next(value for value in values if best[value] >= top - tolerance)  # smallest near the top
    if enough == values[-1]:
        gain = best[values[-1]] - best[values[-2]]
        return (
            f"{name}: best at the largest value tried ({format_value(enough)}), {gain:.2f} {metric} above "
            f"{format_value(values[-2])}; the optimum may lie beyond the range"
        )
    if best[values[0]] == top and best[values[1]] < top - tolerance:
        return (
            f"{name}: best at the smallest value tried ({format_value(values[0])}); the optimum may lie below the range"
        )
    return f"{name}: beyond {format_value(enough)} gains less than {tolerance:.2g} {metric}"


def correlate(parameter: Parameter, runs: list[RunResult], series: list[float]) -> float | None:
    """Pearson correlation of the parameter (on a log axis where it is drawn on one) with `series`,
    one value per run; None when either does not vary."""
    values = np.array([float(run.params[parameter.name]) for run in runs])
    axis = np.log10(values) if parameter.log_scale else values
    if np.ptp(axis) == 0 or np.ptp(series) == 0:
        return None
    return float(np.corrcoef(axis, series)[0, 1])


def judge_trend(results: SweepResults, parameter: Parameter, tolerance: float) -> str:
    runs = results.finished
    correlation = correlate(parameter, runs, [results.score(run) for run in runs])
    if correlation is None:
        return f"{parameter.name}: no variation to judge"
    scale = " on a log scale" if parameter.log_scale else ""
    values = [float(run.params[parameter.name]) for run in runs]
    winner = format_value(runs[0].params[parameter.name])
    span = f"range tried {format_value(min(values))}-{format_value(max(values))}"
    if abs(correlation) < CLEAR_TREND:
        return (
            f"{parameter.name}: no clear trend (correlation {correlation:+.2f}{scale}); "
            f"the winner used {winner} ({span})"
        )
    direction = "higher" if correlation > 0 else "lower"
    return (
        f"{parameter.name}: {direction} is better (correlation {correlation:+.2f}{scale} with {results.metric} "
        f"over {len(runs)} runs); the winner used {winner} ({span})"
    )


def best_score_per_value(results: SweepResults, parameter: Parameter) -> dict:
    """Value -> the best oriented score among finished runs with that value."""
    best: dict = {}
    for run in results.finished:
        value = run.params.get(parameter.name)
        best[value] = max(best.get(value, -math.inf), results.score(run))
    return best


def show_score(results: SweepResults, score: float) -> float:
    """Back from the oriented score to the metric's own value."""
    return score if results.maximize else -score


def find_cheapest_near_best(results: SweepResults, tolerance: float) -> RunResult | None:
    """The cheapest finished run whose objective is within `tolerance` of the winner's (the winner
    itself when nothing cheaper comes close); None when no finished run logged a cost."""
    finished = results.finished
    if not finished:
        return None
    top = results.score(finished[0])
    near = [run for run in finished if run.cost_usd is not None and top - results.score(run) <= tolerance]
    return min(near, key=lambda run: run.cost_usd, default=None)


def judge_costs(results: SweepResults, tolerance: float) -> list[str]:
    """Per swept parameter: does a costlier value buy more than `tolerance` over the cheapest one?"""
    if not results.priced:
        return []
    verdicts = [judge_cost(results, parameter, tolerance) for parameter in results.swept]
    winner = results.finished[0]
    if winner.cost_usd is None:
        priced = sum(run.cost_usd is not None for run in results.finished)
        note = (
            f"the winner ({winner.run_id}) logged no {COST_KEY}: these compare only the {priced} finished runs that did"
        )
        verdicts.insert(0, note)
    return verdicts


def judge_cost(results: SweepResults, parameter: Parameter, tolerance: float) -> str:
    name, metric = parameter.name, results.metric
    runs = [run for run in results.finished if run.cost_usd is not None]
    by_value: dict = {}
    for run in runs:
        by_value.setdefault(run.params.get(parameter.name), []).append(run)
    if len(by_value) < 2:
        return f"{name}: only one value has a cost; nothing to compare"
    if not parameter.categorical and len(by_value) > MAX_LEVELS:
        return judge_cost_trend(results, parameter, runs)
    cost = {value: sum(run.cost_usd for run in group) / len(group) for value, group in by_value.items()}
    best = {value: max(results.score(run) for run in group) for value, group in by_value.items()}
    cheapest = min(cost, key=cost.get)
    listing = ", ".join(
        f"{format_value(value)}: {format_usd(cost[value])} for {show_score(results, best[value]):.2f}"
        for value in sorted(cost, key=cost.get)
    )
    worth = [value for value in cost if cost[value] > cost[cheapest] and best[value] - best[cheapest] > tolerance]
    if not worth:
        return (
            f"{name}: {format_value(cheapest)} is the cheapest and no costlier value gains more than "
            f"{tolerance:.2g} {metric} over it: take {format_value(cheapest)} (mean cost per run: {listing})"
        )
    pick = max(worth, key=best.get)
    gain = best[pick] - best[cheapest]
    return (
        f"{name}: {format_value(pick)} costs {format_usd(cost[pick])} a run against {format_usd(cost[cheapest])} "
        f"for {format_value(cheapest)} and gains {gain:.2f} {metric}, more than the noise ({tolerance:.2g}) "
        f"(mean cost per run: {listing})"
    )


def judge_cost_trend(results: SweepResults, parameter: Parameter, runs: list[RunResult]) -> str:
    """Many values, one run each: does the cost follow the parameter?"""
    correlation = correlate(parameter, runs, [run.cost_usd for run in runs])
    if correlation is None:
        return f"{parameter.name}: the cost does not vary with it"
    if abs(correlation) < CLEAR_TREND:
        return f"{parameter.name}: the cost does not follow it (correlation {correlation:+.2f})"
    direction = "higher" if correlation > 0 else "lower"
    return (
        f"{parameter.name}: {direction} values cost more (correlation {correlation:+.2f}); "
        f"weigh that against its verdict on {results.metric}"
    )
