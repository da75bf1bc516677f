"""`lora-sweep report`: review a finished sweep, from W&B or the local store, and write the decision.

    fetch (W&B public API | local store) -> SweepRecord -> one code path:
    results table, parallel coordinates, importance, curves, verdicts, best.yaml

Files written to the output folder:
    report.html               everything, interactive (plotly.js inlined once; works offline)
    summary.md                the same in Markdown, for a pull request
    parallel_coordinates.png  curves.png  importance.png
    best.yaml                 the winner's parameters: `python -m agent.train --config best.yaml`
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from agent.records import SweepRecord
from agent.review import figures, pages
from agent.review.fetch import FetchError, fetch_sweep
from agent.review.importance import Importance, compute_importance
from agent.review.results import SweepResults, collect_results
from agent.review.verdict import judge_parameters, measure_noise, tolerance_of, warn_about_winner

RERUN_COMMAND = "python -m agent.train --config best.yaml"


class ReviewError(Exception):
    """Nothing to review (unknown sweep, no finished runs); the message is one line for the user."""


@dataclass(frozen=True)
class Review:
    results: SweepResults
    importance: list[Importance]
    verdicts: list[str]
    warnings: list[str]
    best_yaml: str
    out_dir: Path
    files: tuple[str, ...] = ()
    """What write_files wrote into out_dir."""

    def format_terminal(self) -> str:
        return pages.format_terminal(self)


def review_sweep(sweep_id: str, out_dir: Path, store_path: Path | None = None) -> Review:
    try:
        sweep = fetch_sweep(sweep_id, store_path)
    except FetchError as error:
        raise ReviewError(str(error)) from error
    return write_review(sweep, out_dir)


def write_review(sweep: SweepRecord, out_dir: Path) -> Review:
    results = collect_results(sweep)
    if not results.finished:
        raise ReviewError(explain_nothing_finished(results))
    noise = measure_noise(results)
    importance = compute_importance(results)
    review = Review(
        results=results,
        importance=importance,
        verdicts=judge_parameters(results, tolerance_of(noise)),
        warnings=warn_about_winner(results, noise),
        best_yaml=format_best_config(results),
        out_dir=out_dir,
    )
    return replace(review, files=write_files(review))


def write_files(review: Review) -> tuple[str, ...]:
    out, results = review.out_dir, review.results
    out.mkdir(parents=True, exist_ok=True)
    (out / "best.yaml").write_text(review.best_yaml)
    figures.draw_parallel_coordinates(results, out / "parallel_coordinates.png")
    figures.draw_curves(results, out / "curves.png")
    written = ["best.yaml", "parallel_coordinates.png", "curves.png"]
    if review.importance:
        figures.draw_importance(review.importance, results.metric, out / "importance.png")
        written.append("importance.png")
    interactive = [figures.plot_parallel_coordinates(results), figures.plot_curves(results)]
    if review.importance:
        interactive.insert(1, figures.plot_importance(review.importance, results.metric))
    pages.write_html(review, interactive, out / "report.html")
    pages.write_markdown(review, out / "summary.md")
    return ("report.html", "summary.md", *written)


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
