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
from dataclasses import dataclass
from pathlib import Path

from agent.records import SweepRecord
from agent.review import figures, pages
from agent.review.fetch import FetchError, fetch_sweep
from agent.review.findings import Findings, ReviewError, assess

REVIEW_ROOT = Path("outputs", "review")


def default_out_dir(sweep_id: str) -> Path:
    """`outputs/review/<id>`, one folder name whatever the id holds (`a/b/c`, `../x`, `/abs`):
    every run of characters other than letters, digits, `_` and `-` becomes one `-`."""
    return REVIEW_ROOT / (re.sub(r"[^A-Za-z0-9_-]+", "-", sweep_id).strip("-") or "sweep")


@dataclass(frozen=True)
class Review:
    findings: Findings
    out_dir: Path
    files: tuple[str, ...]
    """What write_files wrote into out_dir."""

    def format_terminal(self) -> str:
        return pages.format_terminal(self.findings)


def review_sweep(sweep_id: str, out_dir: Path, store_path: Path | None = None) -> Review:
    try:
        sweep = fetch_sweep(sweep_id, store_path)
    except FetchError as error:
        raise ReviewError(str(error)) from error
    return write_review(sweep, out_dir)


def write_review(sweep: SweepRecord, out_dir: Path) -> Review:
    findings = assess(sweep)
    return Review(findings, out_dir, write_files(findings, out_dir))


def write_files(review: Findings, out: Path) -> tuple[str, ...]:
    results = review.results
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
