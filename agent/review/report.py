"""`lora-sweep report`: review a finished sweep, from W&B or the local store, and write the decision.

    fetch (W&B public API | local store) -> SweepRecord -> one code path:
    results table, parallel coordinates, importance, curves, verdicts, best.yaml

Files written to the output folder:
    report.html               everything, interactive (plotly.js inlined once; works offline)
    summary.md                the same in Markdown, for a pull request
    parallel_coordinates.png  curves.png  importance.png
    loss.png                  train/loss vs steps, when runs logged it
    gpu_memory.png            peak GPU memory per run, when runs logged it
    best.yaml                 the winner's parameters: `python -m agent.train --config best.yaml`
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from agent.errors import UserError
from agent.records import SweepRecord
from agent.review import figures, pages
from agent.review.fetch import FetchError, fetch_sweep
from agent.review.importance import Importance, compute_importance
from agent.review.results import SweepResults, collect_results
from agent.review.verdict import judge_parameters, measure_noise, tolerance_of, warn_about_winner

RERUN_COMMAND = "python -m agent.train --config best.yaml"
REVIEW_ROOT = Path("outputs", "review")


def default_out_dir(sweep_id: str) -> Path:
    """`outputs/review/<id>`, one folder name whatever the id holds (`a/b/c`, `../x`, `/abs`):
    every run of characters other than letters, digits, `_` and `-` becomes one `-`."""
    return REVIEW_ROOT / (re.sub(r"[^A-Za-z0-9_-]+", "-", sweep_id).strip("-") or "sweep")


class ReviewError(UserError):
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
    review = assess(sweep, out_dir)
    return replace(review, files=write_files(review))


def assess(sweep: SweepRecord, out_dir: Path) -> Review:
    """The review's content (results, importance, verdicts, warnings, best.yaml), nothing written."""
    results = collect_results(sweep)
    if not results.finished:
        raise ReviewError(explain_nothing_finished(results))
    noise = measure_noise(results)
    return Review(
        results=results,
        importance=compute_importance(results),
        verdicts=judge_parameters(results, tolerance_of(noise)),
        warnings=warn_about_winner(results, noise),
        best_yaml=format_best_config(results),
        out_dir=out_dir,
    )


def write_files(review: Review) -> tuple[str, ...]:
    out, results = review.out_dir, review.results
    out.mkdir(parents=True, exist_ok=True)
    (out / "best.yaml").write_text(review.best_yaml)
    figures.draw_parallel_coordinates(results, out / "parallel_coordinates.png")
    figures.draw_curves(results, out / "curves.png")
    written = ["best.yaml", "parallel_coordinates.png", "curves.png"]
    interactive = [figures.plot_parallel_coordinates(results), figures.plot_curves(results)]
    if review.importance:
        figures.draw_importance(review.importance, results.metric, out / "importance.png")
        written.append("importance.png")
        interactive.insert(1, figures.plot_importance(review.importance, results.metric))
    if any(run.loss for run in results.runs):
        figures.draw_loss(results, out / "loss.png")
        written.append("loss.png")
        interactive.append(figures.plot_loss(results))
    if figures.with_peak_memory(results):
        figures.draw_gpu_memory(results, out / "gpu_memory.png")
        written.append("gpu_memory.png")
        interactive.append(figures.plot_gpu_memory(results))
    pages.write_html(review, interactive, out / "report.html")
    pages.write_markdown(review, out / "summary.md", written)
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
