"""The review as text: the terminal table, a Markdown summary for pull requests, and the HTML page
that holds every interactive figure (plotly's JavaScript inlined once, so it works offline).

Figures arrive by name (`parallel_coordinates`, `grouped_curves`, `grouped_loss`, `memory_tradeoff`,
`curves`, `importance`, `loss`, `cost`, `memory`, `gpu_memory`), as `figures.define_figures` names
them; each goes under its own heading, when the sweep has it. The six answers come first, with the
figures they are read from.
"""

from __future__ import annotations

import html
from pathlib import Path

from agent.records import COST_KEY
from agent.review.findings import Findings
from agent.review.formatting import format_duration, format_number, format_param, format_usd
from agent.review.importance import Importance
from agent.review.results import FINAL_ROUGE_KEYS, RunResult, SweepResults


def results_table(results: SweepResults) -> tuple[list[str], list[list[str]]]:
    """Headers and rows: swept parameters, objective, final ROUGE, runtime, GPU-hours, cost, peak memory, state."""
    headers = [
        "run",
        *(p.name for p in results.swept),
        results.metric,
        *FINAL_ROUGE_KEYS,
        "runtime",
        "GPU-h",
        "cost",
        "peak GB",
        "state",
    ]
    rows = [
        [
            run.run_id,
            *(format_param(run.params.get(p.name)) for p in results.swept),
            format_number(run.objective),
            *(format_number(run.final_rouge.get(key)) for key in FINAL_ROUGE_KEYS),
            format_duration(run.runtime_s),
            format_number(run.gpu_hours, 3),
            format_usd(run.cost_usd),
            format_number(run.peak_memory_gb),
            run.state,
        ]
        for run in results.runs
    ]
    return headers, rows


def importance_table(importance: list[Importance]) -> tuple[list[str], list[list[str]]]:
    rows = [[row.feature, format_number(row.importance, 3), format_number(row.correlation, 3)] for row in importance]
    return ["parameter", "importance", "correlation"], rows


def format_text_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in [headers, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def format_markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = [headers, ["---"] * len(headers), *rows]
    return "\n".join("| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in lines)


def format_summary(review: Findings) -> str:
    results = review.results
    finished = results.finished
    hours = [run.gpu_hours for run in results.runs if run.gpu_hours is not None]
    spent = f"{sum(hours):.2f} GPU-hours" if hours else "no GPU time (CPU runs)"
    if results.total_cost is not None:
        spent += f", {format_usd(results.total_cost)} in all"
    winner = finished[0]
    return (
        f"Sweep {results.sweep_id}: {len(finished)} of {len(results.runs)} runs finished, {spent}. "
        f"Winner: {winner.run_id} with {results.metric} = {winner.objective:.2f}" + format_cheapest(review)
    )


def format_cheapest(review: Findings) -> str:
    """The cheapest run within the tolerance of the winner, as the end of the summary's sentence;
    says so plainly when the winner itself logged no cost."""
    results, cheapest = review.results, review.cheapest
    if not results.priced:
        return ""
    winner, near = results.finished[0], f"{review.tolerance:.2g} {results.metric}"
    if winner.cost_usd is None:
        if cheapest is None:
            return f" (it logged no {COST_KEY}, nor did any run within {near} of it)"
        return f" (it logged no {COST_KEY}). Cheapest within {near} of it: {describe_cost(cheapest)}"
    if cheapest is winner:
        return f" ({format_usd(winner.cost_usd)}); no cheaper run comes within {near} of it"
    return f". Cheapest within {near} of it: {describe_cost(cheapest)} (the winner cost {format_usd(winner.cost_usd)})"


def describe_cost(run: RunResult) -> str:
    return f"{run.run_id} with {run.objective:.2f} for {format_usd(run.cost_usd)}"


def format_terminal(review: Findings) -> str:
    results, importance = review.results, review.importance
    parts = [format_summary(review), "", format_text_table(*results_table(results)), ""]
    if importance:
        parts += [
            f"Parameter importance with respect to {results.metric}:",
            format_text_table(*importance_table(importance)),
            "",
        ]
    parts += ["Verdicts:", *(f"  - {verdict}" for verdict in review.verdicts)]
    if review.cost_verdicts:
        parts += ["What the cost buys:", *(f"  - {verdict}" for verdict in review.cost_verdicts)]
    parts += ["", format_answers(review)]
    parts += [f"WARNING: {warning}" for warning in review.warnings]
    return "\n".join(parts)


def format_answers(review: Findings) -> str:
    """The six answers and the recommendation, for a terminal."""
    lines = [f"Answers (tolerance {review.tolerance:.2g} {review.results.metric}):"]
    lines += [f"  {heading}\n    {sentence}" for heading, sentence in review.answers.lines()]
    return "\n".join(lines)


def write_markdown(review: Findings, pictures: dict[str, str], path: Path) -> None:
    """`pictures`: figure name -> the PNG beside the page that draws it."""
    results, importance = review.results, review.importance
    parts = [f"# Sweep review: {results.sweep_id}", "", format_summary(review), ""]
    parts += [f"> **Warning:** {warning}" for warning in review.warnings]
    parts += ["", "## Answers", "", f"Tolerance: {review.tolerance:.2g} {results.metric}.", ""]
    parts += [f"- **{heading}** {sentence}" for heading, sentence in review.answers.lines()]
    parts += ["", "## Verdicts", "", *(f"- {verdict}" for verdict in review.verdicts), ""]
    if review.cost_verdicts:
        parts += ["## What the cost buys", "", *(f"- {verdict}" for verdict in review.cost_verdicts), ""]
    parts += ["## Recommended configuration (`best.yaml`)", "", "```yaml", review.best_yaml.rstrip(), "```", ""]
    parts += ["## The next sweep (`next.yaml`)", "", "```yaml", review.next_yaml.rstrip(), "```", ""]
    parts += ["## Runs", "", format_markdown_table(*results_table(results)), ""]
    if importance:
        parts += ["## Parameter importance", "", format_markdown_table(*importance_table(importance)), ""]
        parts += [f"![parameter importance]({pictures['importance']})", ""]
    for name, heading, alt in MARKDOWN_FIGURES:
        if name in pictures:
            parts += [f"## {heading}", "", f"![{alt}]({pictures[name]})", ""]
    path.write_text("\n".join(parts))


MARKDOWN_FIGURES = [
    ("parallel_coordinates", "Parallel coordinates", "parallel coordinates"),
    ("grouped_curves", "Objective vs steps, by parameter", "objective vs steps, median and min-max band per value"),
    ("grouped_loss", "Training loss vs steps, by parameter", "train/loss vs steps per value, spikes marked"),
    ("memory_tradeoff", "Objective vs memory", "objective vs peak memory, coloured by target modules"),
    ("curves", "Objective vs steps", "objective vs steps"),
    ("loss", "Training loss vs steps", "train/loss vs steps"),
    ("cost", "Objective vs cost", "objective vs cost per run"),
    ("memory", "GPU memory vs steps", "CUDA memory allocated by each run vs steps"),
    ("gpu_memory", "Peak GPU memory", "peak GPU memory per run"),
]
"""(figure name, section heading, alt text), in page order; importance sits with its table."""


def write_html(review: Findings, charts: dict[str, str], library: str, path: Path) -> None:
    """One page. `charts`: figure name -> its HTML fragment; `library`: the script they all use,
    inlined once in the head, so the page works offline."""
    results, importance = review.results, review.importance
    curves = [charts[name] for name in ("curves", "loss", "memory", "gpu_memory") if name in charts]
    body = [
        f"<h1>Sweep review: {html.escape(results.sweep_id)}</h1>",
        f"<p>{html.escape(format_summary(review))}</p>",
        *(f'<p class="warning">Warning: {html.escape(warning)}</p>' for warning in review.warnings),
        *html_answers(review, charts),
        "<h2>Verdicts</h2><ul>",
        *(f"<li>{html.escape(verdict)}</li>" for verdict in review.verdicts),
        "</ul>",
        *html_cost(review, charts),
        "<h2>Recommended configuration (best.yaml)</h2>",
        f"<pre>{html.escape(review.best_yaml)}</pre>",
        "<h2>The next sweep (next.yaml)</h2>",
        f"<pre>{html.escape(review.next_yaml)}</pre>",
        "<h2>Runs</h2>",
        html_table(*results_table(results)),
        "<h2>Parallel coordinates</h2>",
        charts["parallel_coordinates"],
        "<h2>Parameter importance</h2>",
        *([html_table(*importance_table(importance)), charts["importance"]] if importance else [NO_IMPORTANCE]),
        "<h2>Training curves and cost</h2>",
        *curves,
    ]
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>Sweep review {html.escape(results.sweep_id)}</title><style>{STYLE}</style>\n{library}\n</head><body>\n"
    )
    path.write_text(page + "\n".join(body) + "\n</body></html>\n")


def html_answers(review: Findings, charts: dict[str, str]) -> list[str]:
    """The six answers and the recommendation, then the figures they are read from."""
    heading = (
        f'<h2 id="answers">Answers</h2><p>Tolerance: {review.tolerance:.2g} {html.escape(review.results.metric)}.</p>'
    )
    rows = "".join(
        f"<dt>{html.escape(question)}</dt><dd>{html.escape(sentence)}</dd>"
        for question, sentence in review.answers.lines()
    )
    evidence = [charts[name] for name in ANSWER_FIGURES if name in charts]
    return [heading, f'<dl class="answers">{rows}</dl>', *evidence]


ANSWER_FIGURES = ("grouped_curves", "grouped_loss", "memory_tradeoff")
"""The figures the answers are read from, shown under them on the HTML page."""

NO_IMPORTANCE = "<p>Too few finished runs.</p>"
NO_COST = (
    "<p>No run logged cost/usd. Set LORA_SWEEP_GPU_HOURLY_USD (or lora-sweep agent --gpu-hourly-usd) "
    "to the price of a GPU-hour, and each run logs its cost.</p>"
)


def html_cost(review: Findings, charts: dict[str, str]) -> list[str]:
    """The objective against cost, and what a costlier value of each parameter buys."""
    if "cost" not in charts:
        return ['<h2 id="cost">Cost</h2>', NO_COST]
    verdicts = [
        "<h3>What the cost buys</h3><ul>",
        *(f"<li>{html.escape(v)}</li>" for v in review.cost_verdicts),
        "</ul>",
    ]
    return ['<h2 id="cost">Cost</h2>', charts["cost"], *verdicts]


STYLE = (
    "body{font-family:sans-serif;margin:2em} table{border-collapse:collapse} "
    "td,th{border:1px solid #ccc;padding:2px 6px} .warning{color:#b00;font-weight:bold} "
    ".answers dt{font-weight:bold;margin-top:.6em} .answers dd{margin-left:1.5em}"
)


def html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"
