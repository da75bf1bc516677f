"""`lora-sweep report`: review a finished sweep, from W&B or the local store, and write the decision.

    fetch (W&B public API | local store) -> SweepRecord -> one code path:
    results table, parallel coordinates, importance, curves, verdicts, best.yaml

Files written to the output folder:
    report.html               everything, interactive (plotly.js inlined once; works offline)
    summary.md                the same in Markdown, for a pull request
    answers.json              the six answers, the recommendation and the winner (docs/review.md)
    next.yaml                 the next sweep, a comment on every line saying why
    parallel_coordinates.png  importance.png
    grouped_curves.png        the objective vs steps, grouped by each swept parameter
    grouped_loss.png          train/loss vs steps, grouped, spikes marked (when runs logged it)
    memory_tradeoff.png       the objective vs peak GPU memory (trainable parameters on CPU)
    curves.png  loss.png      one line per run, for sweeps of up to 10 runs
    cost.png                  the objective vs cost/usd per run, when runs logged a cost
    memory.png                each run's CUDA memory allocated vs steps, when runs ran on a GPU (up to 10 runs)
    gpu_memory.png            peak GPU memory per run, when runs logged it
    best.yaml                 the recommended parameters: `python -m agent.train --config best.yaml`
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from agent.records import SweepRecord, safe_name
from agent.review import figures, pages
from agent.review.fetch import FetchError, fetch_sweep
from agent.review.findings import Findings, ReviewError, assess

REVIEW_ROOT = Path("outputs", "review")


def default_out_dir(sweep_id: str) -> Path:
    """`outputs/review/<id>`, one folder name whatever the id holds (`a/b/c`, `../x`, `/abs`):
    every run of characters other than letters, digits, `_` and `-` becomes one `-`."""
    return REVIEW_ROOT / (safe_name(sweep_id) or "sweep")


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


def write_files(findings: Findings, out: Path) -> tuple[str, ...]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "best.yaml").write_text(findings.best_yaml)
    (out / "next.yaml").write_text(findings.next_yaml)
    answers = findings.answers.to_json(findings.results)
    (out / "answers.json").write_text(json.dumps(answers, indent=2, allow_nan=False) + "\n")
    charts = figures.define_figures(findings)
    pictures = {name: f"{name}.png" for name in charts}
    for name, chart in charts.items():
        figures.save_png(chart, out / pictures[name])
    fragments = {name: figures.to_html(chart, div_id=f"figure-{name}") for name, chart in charts.items()}
    pages.write_html(findings, fragments, figures.plotly_library(), out / "report.html")
    pages.write_markdown(findings, pictures, out / "summary.md")
    return ("report.html", "summary.md", "answers.json", "best.yaml", "next.yaml", *pictures.values())
