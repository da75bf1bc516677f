"""The six questions a LoRA sweep is run for, each answered by one small function of what the runs
logged, and the configuration to ship: the lightest stable run within the tolerance of the winner.

Every answer is one sentence, or a reason it cannot be given (the parameter was not swept, the
runs ran on CPU, too few runs). Differences within the tolerance (`verdict.tolerance_of`) are ties,
and among ties the lighter configuration wins. `Answers.to_json` is `answers.json`, a public
interface documented in docs/review.md: keep its keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from agent.records import LOSS_KEY
from agent.review.curves import LossCheck, beyond, check_loss, median_or_none, plateau_step
from agent.review.formatting import format_value
from agent.review.results import Parameter, RunResult, SweepResults
from agent.review.verdict import MAX_LEVELS, best_score_per_value, show_score

RANK = "lora_r"
LEARNING_RATE = "learning_rate"
TARGET_MODULES = "target_modules"
BATCH_SIZE = "per_device_train_batch_size"
PATIENCE = 2
"""Evaluations without an improvement beyond the tolerance before the next sweep's runs stop
(`plateau_patience` in next.yaml); the suggested max_steps leaves room for them."""
ON_CPU = "not measured (runs ran on CPU)"
QUESTIONS = {
    "rank": "Rank: where do returns diminish?",
    "learning_rate": "Learning rate: fast and stable?",
    "target_modules": "Target modules: worth the memory?",
    "loss": "Loss: smooth or unstable?",
    "memory": "GPU memory: headroom for larger batches?",
    "steps": "Steps: when does the objective plateau?",
}
"""Each question's key in answers.json, and its heading in the views, in the order they are shown."""


@dataclass(frozen=True)
class Answer:
    answer: str | None
    """One sentence; None when the question cannot be answered, and then `reason` says why."""
    data: dict[str, Any] = field(default_factory=dict)
    """The answer's figures, under the keys answers.json documents (None where unknown)."""
    reason: str | None = None

    @property
    def text(self) -> str:
        """The sentence, or the reason in its place."""
        return self.answer if self.answer is not None else f"cannot say: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        said = {"answer": self.answer} if self.answer is not None else {"reason": self.reason}
        return {**self.data, **said}


@dataclass(frozen=True)
class RunFacts:
    """What one run's own curves say."""

    plateau_step: float | None
    loss: LossCheck | None
    """None when the run logged no training loss."""

    @property
    def unstable(self) -> bool:
        return self.loss is not None and self.loss.unstable


@dataclass(frozen=True)
class Answers:
    tolerance: float
    questions: dict[str, Answer]
    """By name, in QUESTIONS' order."""
    winner: RunResult
    recommended: RunResult
    why_recommended: str
    """Why the recommended run was chosen over the winner; empty when it is the winner."""
    facts: dict[str, RunFacts]
    """By run id: plateau step and loss check, for the figures and next.yaml."""

    @property
    def recommendation(self) -> str:
        """The recommended run in one sentence, for every view."""
        run = self.recommended
        if run is self.winner:
            kept = f"; kept although {self.why_recommended}" if self.why_recommended else ""
            return f"Recommended: the winner, {run.run_id} ({run.objective:.2f}){kept}."
        return f"Recommended: {run.run_id} ({run.objective:.2f}), {self.why_recommended}."

    def lines(self) -> list[tuple[str, str]]:
        """(heading, sentence) for each question, then the recommendation: what every view shows."""
        said = [(QUESTIONS[name], answer.text) for name, answer in self.questions.items()]
        return said + [("Recommended configuration (best.yaml)", self.recommendation)]

    def to_json(self, results: SweepResults) -> dict[str, Any]:
        return {
            "sweep_id": results.sweep_id,
            "metric": results.metric,
            "tolerance": self.tolerance,
            "questions": {name: answer.to_json() for name, answer in self.questions.items()},
            "recommended": {
                "run_id": self.recommended.run_id,
                "params": self.recommended.params,
                "objective": self.recommended.objective,
                "why": self.why_recommended or "it is the winner: no lighter stable run comes within the tolerance",
            },
            "winner": {"run_id": self.winner.run_id, "objective": self.winner.objective},
        }


def answer_questions(results: SweepResults, tolerance: float) -> Answers:
    facts = {run.run_id: facts_of(results, run, tolerance) for run in results.runs}
    recommended, why = recommend(results, facts, tolerance)
    questions = {
        "rank": answer_rank(results, tolerance),
        "learning_rate": answer_learning_rate(results, facts, tolerance),
        "target_modules": answer_memory_tradeoff(results, tolerance),
        "loss": answer_loss(results, facts),
        "memory": answer_memory(results),
        "steps": answer_steps(results, facts, tolerance),
    }
    return Answers(tolerance, questions, results.finished[0], recommended, why, facts)


def facts_of(results: SweepResults, run: RunResult, tolerance: float) -> RunFacts:
    """A run that never rose above its step-0 value by more than the tolerance has no plateau to
    reach: its flat curve would "plateau" at once, and look fastest."""
    plateau = plateau_step(run.curve, tolerance, results.maximize) if learned(results, run, tolerance) else None
    return RunFacts(plateau, check_loss(run.loss) if run.loss else None)


def swept(results: SweepResults, name: str) -> Parameter | None:
    return next((parameter for parameter in results.swept if parameter.name == name), None)


def not_swept(results: SweepResults, name: str) -> str:
    if name in results.fixed:
        return f"{name} was not swept (fixed at {format_value(results.fixed[name])})"
    return f"{name} was not swept"


def by_value(runs: list[RunResult], name: str) -> dict[Any, list[RunResult]]:
    groups: dict[Any, list[RunResult]] = {}
    for run in runs:
        groups.setdefault(run.params.get(name), []).append(run)
    return groups


def value_key(value: Any) -> str:
    """A parameter value as a JSON object key: `8`, `0.0001`, `qkvo`."""
    return format_value(value)


# 1. Rank: where capacity stops paying


def answer_rank(results: SweepResults, tolerance: float, name: str = RANK) -> Answer:
    """Any ordered numeric parameter: the smallest value whose best result is within the tolerance
    of the best value's, and what each step up the range gains."""
    parameter = swept(results, name)
    empty = {"parameter": name, "sufficient": None, "gain_per_step": []}
    if parameter is None:
        return Answer(None, empty, not_swept(results, name))
    if parameter.categorical:
        return Answer(None, empty, f"{name} is not an ordered number")
    best = best_score_per_value(results, parameter)
    if len(best) < 2:
        return Answer(None, empty, f"only one value of {name} finished ({', '.join(map(format_value, best))})")
    values = sorted(best)
    top = max(best.values())
    sufficient = next(value for value in values if not beyond(top - best[value], tolerance))
    gains = [
        {"from": low, "to": high, "gain": round(best[high] - best[low], 4)} for low, high in zip(values, values[1:])
    ]
    steps = ", ".join(f"{format_value(g['from'])}->{format_value(g['to'])} {g['gain']:+.2f}" for g in gains)
    leader = max(values, key=lambda value: (best[value], -value))
    if sufficient == values[-1]:
        verdict = f"{name} = {format_value(sufficient)}, the largest value tried, is needed: larger may still pay"
    elif sufficient == leader:
        verdict = f"{name} = {format_value(sufficient)} is enough: no larger value does better"
    else:
        verdict = (
            f"{name} = {format_value(sufficient)} is enough: within {tolerance:.2g} {results.metric} of the best "
            f"({format_value(leader)})"
        )
    data = {**empty, "sufficient": sufficient, "gain_per_step": gains}
    return Answer(f"{verdict}; each step up gains {steps}.", data)


# 2. Learning rate: speed and stability


def answer_learning_rate(
    results: SweepResults, facts: dict[str, RunFacts], tolerance: float, name: str = LEARNING_RATE
) -> Answer:
    """Speed: the median plateau step of each value's finished runs (a run that never learned has
    none: `facts_of`); stability: the share of its runs whose loss is unstable. `fastest` is the
    value with the earliest median plateau."""
    parameter = swept(results, name)
    empty = {"parameter": name, "fastest": None, "fastest_is_stable": None, "by_value": {}}
    if parameter is None:
        return Answer(None, empty, not_swept(results, name))
    finished = by_value(results.finished, name)
    if len(finished) < 2:
        return Answer(None, empty, f"only one value of {name} finished")
    logged = by_value([run for run in results.runs if facts[run.run_id].loss is not None], name)
    rows = {}
    for value, runs in finished.items():
        checked = logged.get(value, [])
        rows[value] = {
            "plateau_step": median_or_none([facts[run.run_id].plateau_step for run in runs]),
            "learned": any(learned(results, run, tolerance) for run in runs),
            "unstable_runs": sum(facts[run.run_id].unstable for run in checked),
            "runs_with_loss": len(checked),
        }
    table = {value_key(value): row for value, row in rows.items()}
    contenders = [value for value, row in rows.items() if row["learned"] and row["plateau_step"] is not None]
    if not contenders:
        data = {**empty, "by_value": table}
        return Answer(
            f"no value of {name} has a plateau: at least half of each value's runs were still rising at their "
            "last evaluation or never learned; train longer.",
            data,
        )
    fastest = min(contenders, key=lambda value: (rows[value]["plateau_step"], rows[value]["unstable_runs"]))
    row = rows[fastest]
    stable = row["unstable_runs"] == 0
    others = ", ".join(
        f"{format_value(value)} {describe_plateau(rows[value])}" for value in sorted(rows) if value != fastest
    )
    if len(rows) > MAX_LEVELS:  # a search over a range: one run a value, too many to list
        others = f"{len(rows) - 1} other values"
    stability = (
        f"stable ({row['runs_with_loss']} runs with a smooth loss)"
        if stable
        else f"unstable in {row['unstable_runs']} of {row['runs_with_loss']} runs"
    )
    if not row["runs_with_loss"]:
        stability, stable = f"of unknown stability (no run logged {LOSS_KEY})", None
    sentence = (
        f"{name} = {format_value(fastest)} plateaus soonest (median step {row['plateau_step']:g}; {others}) "
        f"and is {stability}."
    )
    return Answer(sentence, {**empty, "fastest": fastest, "fastest_is_stable": stable, "by_value": table})


def learned(results: SweepResults, run: RunResult, tolerance: float) -> bool:
    if not run.finished or not run.curve:
        return False
    start = run.curve[0][1] if results.maximize else -run.curve[0][1]
    return beyond(results.score(run) - start, tolerance)


def describe_plateau(row: dict) -> str:
    if not row["learned"]:
        return "never learned"
    return "not reached" if row["plateau_step"] is None else f"step {row['plateau_step']:g}"


# 3. Target modules: is the extra memory worth it


def answer_memory_tradeoff(results: SweepResults, tolerance: float, name: str = TARGET_MODULES) -> Answer:
    """Any parameter that changes memory: the lightest value (least peak memory, else fewest
    trainable parameters) against the best-scoring other value. `extra_gb` and `gain` are the
    differences; `justified` only when the heavier value gains more than the tolerance."""
    parameter = swept(results, name)
    empty = {"parameter": name, "justified": None, "extra_gb": None, "gain": None, "by_value": {}}
    if parameter is None:
        return Answer(None, empty, not_swept(results, name))
    groups = by_value(results.finished, name)
    if len(groups) < 2:
        return Answer(None, empty, f"only one value of {name} finished")
    rows = {
        value: {
            "best": show_score(results, max(results.score(run) for run in runs)),
            "peak_gb": median_of([run.peak_memory_gb for run in runs]),
            "trainable_params": median_of([run.trainable_params for run in runs]),
        }
        for value, runs in groups.items()
    }
    table = {value_key(value): row for value, row in rows.items()}
    measured = all(row["peak_gb"] is not None for row in rows.values())
    counted = all(row["trainable_params"] is not None for row in rows.values())
    if not measured and not counted:
        data = {**empty, "by_value": table}
        return Answer(None, data, f"no run logged its peak GPU memory or trainable parameters; {ON_CPU}")

    def weight(value: Any) -> tuple:
        return (rows[value]["peak_gb"] if measured else 0.0, rows[value]["trainable_params"] or 0)

    lightest = min(rows, key=weight)
    best = best_score_per_value(results, parameter)
    heavier = max((value for value in rows if value != lightest), key=lambda value: best[value])
    gain = best[heavier] - best[lightest]
    extra_gb = rows[heavier]["peak_gb"] - rows[lightest]["peak_gb"] if measured else None
    justified = weight(heavier) > weight(lightest) and beyond(gain, tolerance)
    light, heavy = format_value(lightest), format_value(heavier)
    heavy_params, light_params = (describe_params(rows[v]["trainable_params"]) for v in (heavier, lightest))
    if measured:
        cost = f"uses {extra_gb:.2f} GB more peak memory than {light}"
        cost += f", {heavy_params} trainable parameters against {light_params}" if counted else ""
    else:
        cost = f"trains {heavy_params} parameters against {light_params} for {light} (GPU memory: not measured, on CPU)"
    worth = (
        f"more than the tolerance {tolerance:.2g}: worth it"
        if justified
        else f"not more than the tolerance {tolerance:.2g}: keep {light}"
    )
    sentence = f"{name} = {heavy} {cost}, and gains {gain:+.2f} {results.metric}, {worth}."
    data = {**empty, "justified": justified, "extra_gb": extra_gb, "gain": round(gain, 4), "by_value": table}
    data.update(lighter=lightest, heavier=heavier)
    return Answer(sentence, data)


def median_of(values: list[float | None]) -> float | None:
    """The median of the values logged; None when none was."""
    known = [value for value in values if value is not None]
    return median(known) if known else None


def describe_params(count: float | None) -> str:
    if count is None:
        return "-"
    return f"{count / 1e6:.2f}M" if count >= 1e5 else f"{count / 1e3:.1f}k"


# 4. Loss: smooth or unstable


def answer_loss(results: SweepResults, facts: dict[str, RunFacts]) -> Answer:
    """A run is unstable when its loss spikes (`curves.find_spikes`) or diverges (a non-finite loss,
    or a last loss above the first)."""
    checked = [run for run in results.runs if facts[run.run_id].loss is not None]
    if not checked:
        return Answer(None, {"unstable_runs": [], "spikes": {}}, f"no run logged {LOSS_KEY}")
    unstable = [run for run in checked if facts[run.run_id].unstable]
    spikes = {run.run_id: [step for step, _ in facts[run.run_id].loss.spikes] for run in unstable}
    data = {"unstable_runs": [run.run_id for run in unstable], "spikes": spikes}
    if not unstable:
        return Answer(f"all {len(checked)} runs that logged {LOSS_KEY} are smooth: no spike, none diverged.", data)
    listing = "; ".join(f"{run.run_id} ({describe_instability(facts[run.run_id].loss)})" for run in unstable)
    return Answer(f"{len(unstable)} of {len(checked)} runs are unstable: {listing}.", data)


def describe_instability(check: LossCheck) -> str:
    parts = []
    if check.spikes:
        parts.append("spikes at step " + ", ".join(f"{step:g}" for step, _ in check.spikes))
    if check.diverged:
        parts.append(check.diverged)
    return ", ".join(parts)


# 5. GPU memory: the headroom left


def answer_memory(results: SweepResults) -> Answer:
    """`total_gb` (the GPU's memory, or the share's cap) minus the largest peak, from the run with
    the largest peak; and the largest batch that would fit, from that run's memory between steps
    (weights, adapter, optimizer state) and its peak (plus one step's activations)."""
    data = {"total_gb": None, "peak_gb": None, "headroom_gb": None, "largest_batch": None, "batch_size": None}
    data["run_id"] = None
    measured = [run for run in results.runs if run.peak_memory_gb is not None]
    if not measured:
        return Answer(None, data, ON_CPU)
    run = max(measured, key=lambda run: run.peak_memory_gb)
    data.update(run_id=run.run_id, peak_gb=run.peak_memory_gb, total_gb=run.gpu_total_gb)
    if run.gpu_total_gb is None:
        return Answer(
            f"the largest peak is {run.peak_memory_gb:.2f} GB (run {run.run_id}); its GPU's total was not logged.", data
        )
    headroom = run.gpu_total_gb - run.peak_memory_gb
    data["headroom_gb"] = headroom
    of = "its share's cap" if run.gpu_share < 1 else "its GPU"
    sentence = (
        f"the largest peak is {run.peak_memory_gb:.2f} GB of {run.gpu_total_gb:.2f} GB ({of}, run {run.run_id}): "
        f"{headroom:.2f} GB of headroom"
    )
    estimate = estimate_largest_batch(run, results)
    if estimate is None:
        return Answer(sentence + "; no batch estimate (the batch size or the memory between steps is unknown).", data)
    batch, largest, per_example = estimate
    data.update(largest_batch=largest, batch_size=batch)
    return Answer(
        sentence + f"; at {per_example:.2f} GB per example, a batch of about {largest} would fit (now {batch}).", data
    )


def estimate_largest_batch(run: RunResult, results: SweepResults) -> tuple[int, int, float] | None:
    """(batch size now, the largest that fits, GB per example): the peak minus the memory held
    between steps is one step's activations, which grow with the batch."""
    batch = run.params.get(BATCH_SIZE, results.fixed.get(BATCH_SIZE))
    if not isinstance(batch, int) or batch < 1 or not run.memory or run.gpu_total_gb is None:
        return None
    resting = median_of([gb for _, gb in run.memory])
    per_example = (run.peak_memory_gb - resting) / batch
    if per_example <= 0:
        return None
    return batch, math.floor((run.gpu_total_gb - resting) / per_example), per_example


# 6. Steps: when ROUGE stops improving


def answer_steps(results: SweepResults, facts: dict[str, RunFacts], tolerance: float) -> Answer:
    """Each finished run's plateau step (`curves.plateau_step`); the median per value of each swept
    parameter; and max_steps for the next sweep: the leaders' latest plateau plus PATIENCE
    evaluations, or twice the steps they trained when a leader never plateaued."""
    by_parameter = {
        parameter.name: {
            value_key(value): median_or_none([facts[run.run_id].plateau_step for run in runs])
            for value, runs in by_value(results.finished, parameter.name).items()
        }
        for parameter in results.swept
    }
    data = {"plateau_step_by_value": by_parameter, "suggested_max_steps": None, "leaders_plateaued": None}
    leaders = leading_runs(results, tolerance)
    if all(len(run.curve) < 2 for run in leaders):
        return Answer(None, data, "the leading runs logged fewer than two evaluations: no trend to read")
    plateaus = [facts[run.run_id].plateau_step for run in leaders]
    trained = max(run.curve[-1][0] for run in leaders)
    data["leaders_plateaued"] = all(step is not None for step in plateaus)
    if not data["leaders_plateaued"]:
        data["suggested_max_steps"] = int(2 * trained)
        return Answer(
            f"a leading run was still improving at its last evaluation (step {trained:g}): not reached; "
            f"train longer, max_steps {int(2 * trained)}.",
            data,
        )
    interval = max(run.curve[-1][0] - run.curve[-2][0] for run in leaders if len(run.curve) >= 2)
    suggested = int(max(plateaus) + PATIENCE * interval)
    data["suggested_max_steps"] = suggested
    return Answer(
        f"the leading runs stop improving by step {max(plateaus):g} of {trained:g}: max_steps {suggested} is enough "
        f"(the plateau plus {PATIENCE} evaluations).",
        data,
    )


def leading_runs(results: SweepResults, tolerance: float) -> list[RunResult]:
    """The finished runs within the tolerance of the winner, the winner first."""
    top = results.score(results.finished[0])
    return [run for run in results.finished if not beyond(top - results.score(run), tolerance)]


# The recommendation


def recommend(results: SweepResults, facts: dict[str, RunFacts], tolerance: float) -> tuple[RunResult, str]:
    """The lightest stable finished run within the tolerance of the winner: fewest trainable
    parameters, then least peak memory, then lowest cost, then fewest steps to plateau; the winner
    itself when nothing lighter comes close."""
    winner = results.finished[0]
    stable = [run for run in leading_runs(results, tolerance) if not facts[run.run_id].unstable]
    if not stable:
        return winner, "every run within the tolerance of the winner is unstable, the winner included"

    def lightness(run: RunResult) -> tuple:
        plateau = facts[run.run_id].plateau_step
        return (*(inf_if_none(value) for value in weights_of(run)), inf_if_none(plateau), -results.score(run))

    chosen = min(stable, key=lightness)
    if chosen is winner:
        return winner, ""
    lead = results.score(winner) - results.score(chosen)
    within = f"within {tolerance:.2g} {results.metric} of the winner {winner.run_id} (lead {lead:.2f})"
    if facts[winner.run_id].unstable:
        return chosen, f"{within}, and stable where the winner's loss is not"
    return chosen, f"{within} and lighter: {describe_lighter(chosen, winner, facts)}"


def weights_of(run: RunResult) -> tuple[float | None, ...]:
    return (run.trainable_params, run.peak_memory_gb, run.cost_usd)


def inf_if_none(value: float | None) -> float:
    return math.inf if value is None else value


def describe_lighter(chosen: RunResult, winner: RunResult, facts: dict[str, RunFacts]) -> str:
    """The first of the lightness measures on which the chosen run beats the winner."""
    shown = (describe_params, lambda gb: f"{gb:.2f} GB peak memory", lambda usd: f"${usd:.3g}")
    for show, mine, theirs in zip(shown, weights_of(chosen), weights_of(winner)):
        if mine is not None and mine != inf_if_none(theirs):
            against = "none logged" if theirs is None else show(theirs)
            return f"{show(mine)}{' trainable parameters' if show is describe_params else ''} against {against}"
    theirs = facts[winner.run_id].plateau_step
    return (
        f"plateaus at step {facts[chosen.run_id].plateau_step:g} against {'never' if theirs is None else f'{theirs:g}'}"
    )
