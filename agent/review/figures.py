"""The figures: parallel coordinates (objective as the last, coloured axis, as W&B's panel draws
it), the objective and the loss against steps grouped by each swept parameter (median line, min-max
band, one panel per parameter, loss spikes marked), the objective against memory coloured by target
modules, the importance bars, the objective against each run's cost (for runs that logged
`cost/usd`), and each run's own GPU memory: its peak, and (with the per-run curves, drawn only for
sweeps of up to MAX_RUN_LINES runs) allocated against steps.

Each figure is defined once, as data: what it shows. Two renderers draw any definition: plotly for
the interactive HTML page, matplotlib for the PNGs (plotly's own PNG export needs kaleido and a
browser download). So the page and the pictures cannot show different things.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import assert_never

import matplotlib
import matplotlib.figure
import numpy as np
import plotly.graph_objects as go
import plotly.io
import plotly.offline
from matplotlib import cm, colors
from plotly.subplots import make_subplots

from agent.records import COST_KEY, LOSS_KEY, MEMORY_KEYS, PEAK_MEMORY_KEY, STEP_KEY, TRAINABLE_PARAMS_KEY
from agent.review.answers import TARGET_MODULES
from agent.review.findings import Findings
from agent.review.formatting import format_usd, format_value
from agent.review.importance import Importance
from agent.review.results import Parameter, RunResult, SweepResults

COLORMAP = "viridis"  # the objective's colours on the parallel coordinates, in both renderers
BLUE, ORANGE, GREEN, RED, PURPLE = "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"  # tab10, read by both
PALETTE = matplotlib.colormaps["tab10"].colors  # one colour per value in a panel, the same in both renderers
MAX_TICKS = 8
MAX_RUN_LINES = 10  # beyond this many runs a line per run is unreadable: the grouped figures remain
NO_HISTORY = "no run logged any history"


@dataclass(frozen=True)
class Axis:
    label: str
    values: list[float]
    """One position per finished run, in the axis' own units (log10 on a log axis, an index for categories)."""
    tickvals: list[float]
    ticktext: list[str]

    @property
    def span(self) -> list[float]:
        """Axis range covering every run and tick, padded when all values coincide."""
        low, high = min(self.values + self.tickvals), max(self.values + self.tickvals)
        return [low - 0.5, high + 0.5] if low == high else [low, high]


@dataclass(frozen=True)
class ParallelCoordinates:
    title: str
    axes: list[Axis]
    """The swept parameters, then the objective, which also colours each run's line."""


@dataclass(frozen=True)
class Line:
    name: str
    points: list[tuple[float, float]]


@dataclass(frozen=True)
class Curves:
    title: str
    y_label: str
    lines: list[Line]
    """One per run that logged the value; x is always the training step."""


@dataclass(frozen=True)
class Band:
    name: str
    """The value the band's runs share (`lora_r=8`)."""
    steps: list[float]
    median: list[float]
    low: list[float]
    high: list[float]
    """The median, least and greatest value of the band's runs at each step any of them logged."""


@dataclass(frozen=True)
class Panel:
    title: str
    bands: list[Band]


@dataclass(frozen=True)
class GroupedCurves:
    title: str
    y_label: str
    panels: list[Panel]
    """One per swept parameter."""
    marks: list[tuple[float, float]] = field(default_factory=list)
    """(step, value) points drawn on every panel (loss spikes)."""
    mark_label: str = ""


@dataclass(frozen=True)
class Bars:
    title: str
    values: list[float]
    """One per label of the chart."""
    color: str = BLUE
    signed: bool = False
    """Green above zero, red below, on a fixed -1..1 axis (a correlation)."""


@dataclass(frozen=True)
class BarChart:
    title: str
    labels: list[str]
    """Top to bottom."""
    panels: list[Bars]
    """Side by side, sharing the labels."""
    x_label: str = ""


@dataclass(frozen=True)
class Point:
    label: str
    x: float
    y: float
    mark: str = ""
    """What makes the point stand out ("winner"); empty for the rest."""
    group: str = ""
    """The point's colour group (its target modules); empty: one colour for all."""


@dataclass(frozen=True)
class Scatter:
    title: str
    x_label: str
    y_label: str
    points: list[Point]


Chart = ParallelCoordinates | Curves | GroupedCurves | BarChart | Scatter


def define_figures(findings: Findings) -> dict[str, Chart]:
    """Every figure the sweep's data supports, by name (the PNG's file name without `.png`), in the
    order the files are listed."""
    results, importance = findings.results, findings.importance
    objective_title = f"{results.metric} vs training steps (step 0: the untuned base model)"
    per_run = len(results.runs) <= MAX_RUN_LINES
    charts: dict[str, Chart] = {"parallel_coordinates": define_parallel_coordinates(results)}
    if results.swept:
        charts["grouped_curves"] = define_grouped(results, lambda run: run.curve, results.metric, objective_title)
    if per_run or not results.swept:
        charts["curves"] = define_curves(results, lambda run: run.curve, results.metric, objective_title)
    if importance:
        charts["importance"] = define_importance(importance, results.metric)
    if any(run.loss for run in results.runs):
        loss_title = f"{LOSS_KEY} vs training steps"
        if results.swept:
            spikes = [spike for facts in findings.answers.facts.values() if facts.loss for spike in facts.loss.spikes]
            grouped = define_grouped(results, lambda run: run.loss, LOSS_KEY, loss_title + ", spikes marked")
            charts["grouped_loss"] = GroupedCurves(**{**vars(grouped), "marks": spikes, "mark_label": "spike"})
        if per_run or not results.swept:
            charts["loss"] = define_curves(results, lambda run: run.loss, LOSS_KEY, loss_title)
    tradeoff = define_memory_tradeoff(results)
    if tradeoff is not None:
        charts["memory_tradeoff"] = tradeoff
    if results.priced:
        charts["cost"] = define_cost(findings)
    if per_run and any(run.memory for run in results.runs):
        title = f"CUDA memory allocated by each run ({MEMORY_KEYS[0]}) vs training steps"
        charts["memory"] = define_curves(results, lambda run: run.memory, "GB", title)
    if with_peak_memory(results):
        charts["gpu_memory"] = define_gpu_memory(results)
    return charts


# definitions


def define_parallel_coordinates(results: SweepResults) -> ParallelCoordinates:
    runs = results.finished
    objective = [run.objective for run in runs]
    ticks = np.linspace(min(objective), max(objective), 5).tolist() if runs else []
    axes = [axis_of(parameter, runs) for parameter in results.swept]
    axes.append(Axis(results.metric, objective, ticks, [f"{tick:.2f}" for tick in ticks]))
    return ParallelCoordinates(f"Sweep {results.sweep_id}: {len(runs)} finished runs", axes)


def axis_of(parameter: Parameter, runs: list[RunResult]) -> Axis:
    raw = [run.params.get(parameter.name) for run in runs]
    if parameter.categorical:
        categories = sorted({str(value) for value in raw})
        index = {category: position for position, category in enumerate(categories)}
        return Axis(parameter.name, [index[str(value)] for value in raw], list(range(len(categories))), categories)
    numbers = [float(value) for value in raw]
    distinct = sorted(set(numbers))
    if parameter.log_scale:
        ticks = distinct if len(distinct) <= MAX_TICKS else decades(distinct)
        return Axis(
            f"{parameter.name} (log)",
            [math.log10(n) for n in numbers],
            [math.log10(t) for t in ticks],
            [format_value(t) for t in ticks],
        )
    ticks = distinct if len(distinct) <= MAX_TICKS else np.linspace(distinct[0], distinct[-1], 5).tolist()
    return Axis(parameter.name, numbers, ticks, [format_value(t) for t in ticks])


def decades(numbers: list[float]) -> list[float]:
    low, high = math.floor(math.log10(numbers[0])), math.ceil(math.log10(numbers[-1]))
    return [10.0**power for power in range(low, high + 1)]


def define_curves(results: SweepResults, points_of: Callable[[RunResult], list], label: str, title: str) -> Curves:
    lines = [Line(describe_run(results, run), points_of(run)) for run in results.runs if points_of(run)]
    return Curves(title, label, lines)


def define_grouped(
    results: SweepResults, points_of: Callable[[RunResult], list], label: str, title: str
) -> GroupedCurves:
    """One panel per swept parameter, one band per value, over every run that logged the series."""
    panels = []
    for parameter in results.swept:
        groups: dict[str, list[list]] = {}
        for run in results.runs:
            if points_of(run):
                groups.setdefault(format_value(run.params.get(parameter.name)), []).append(points_of(run))
        ordered = sorted(groups, key=lambda value: sort_key(parameter, value))
        bands = [band_of(f"{parameter.name}={value}", groups[value]) for value in ordered]
        panels.append(Panel(f"by {parameter.name}", bands))
    return GroupedCurves(title, label, panels)


def sort_key(parameter: Parameter, shown: str) -> tuple:
    return (0, float(shown), "") if not parameter.categorical and is_float(shown) else (1, 0.0, shown)


def is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def band_of(name: str, series: list[list[tuple[float, float]]]) -> Band:
    at_step: dict[float, list[float]] = {}
    for points in series:
        for step, value in points:
            if math.isfinite(value):
                at_step.setdefault(step, []).append(value)
    steps = sorted(at_step)
    return Band(
        name,
        steps,
        [float(np.median(at_step[step])) for step in steps],
        [min(at_step[step]) for step in steps],
        [max(at_step[step]) for step in steps],
    )


def define_memory_tradeoff(results: SweepResults) -> Scatter | None:
    """The objective against each finished run's peak GPU memory (its trainable parameters on CPU),
    coloured by target modules when the sweep varies them; None when runs logged neither."""
    runs = results.finished
    if any(run.peak_memory_gb is not None for run in runs):
        x_of, x_label = (lambda run: run.peak_memory_gb), f"{PEAK_MEMORY_KEY} (GB)"
    elif any(run.trainable_params is not None for run in runs):
        x_of, x_label = (lambda run: run.trainable_params), f"{TRAINABLE_PARAMS_KEY} (no GPU memory: CPU runs)"
    else:
        return None
    colored = any(parameter.name == TARGET_MODULES for parameter in results.swept)
    points = [
        Point(
            describe_run(results, run),
            x_of(run),
            run.objective,
            group=f"{TARGET_MODULES}={format_value(run.params.get(TARGET_MODULES))}" if colored else "",
        )
        for run in runs
        if x_of(run) is not None
    ]
    return Scatter(f"{results.metric} vs {x_label.split(' (')[0]}", x_label, results.metric, points)


def describe_run(results: SweepResults, run: RunResult) -> str:
    swept = ", ".join(f"{p.name}={format_value(run.params.get(p.name))}" for p in results.swept)
    return f"{run.run_id} ({swept})" if swept else run.run_id


def define_importance(importance: list[Importance], metric: str) -> BarChart:
    return BarChart(
        f"Parameter importance with respect to {metric}",
        [row.feature for row in importance],
        [
            Bars("importance (random forest)", [row.importance or 0.0 for row in importance]),
            Bars("correlation (Pearson)", [row.correlation or 0.0 for row in importance], signed=True),
        ],
    )


def with_peak_memory(results: SweepResults) -> list[RunResult]:
    return [run for run in results.runs if run.peak_memory_gb is not None]


def define_gpu_memory(results: SweepResults) -> BarChart:
    runs = with_peak_memory(results)  # best run on top, as in the table
    return BarChart(
        f"Peak GPU memory allocated per run ({PEAK_MEMORY_KEY})",
        [describe_run(results, run) for run in runs],
        [Bars("", [run.peak_memory_gb for run in runs], color=PURPLE)],
        x_label="GB",
    )


def define_cost(findings: Findings) -> Scatter:
    """The objective against each finished run's cost, the winner and the cheapest run as good as it marked."""
    results, winner, cheapest = findings.results, findings.results.finished[0], findings.cheapest
    points = []
    for run in results.finished:
        if run.cost_usd is None:
            continue
        marks = [mark for mark, marked in (("winner", winner), ("cheapest within noise", cheapest)) if run is marked]
        points.append(Point(describe_run(results, run), run.cost_usd, run.objective, " and ".join(marks)))
    total = format_usd(results.total_cost)
    title = f"{results.metric} vs cost per run ({COST_KEY}; the sweep cost {total} in all)"
    return Scatter(title, f"{COST_KEY} (USD)", results.metric, points)


def bar_colors(bars: Bars) -> list[str]:
    return [GREEN if value > 0 else RED for value in bars.values] if bars.signed else [bars.color] * len(bars.values)


# plotly: the HTML page


def plotly_library() -> str:
    """plotly.js as one inline script, for the page's head: every figure's fragment relies on it."""
    return f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>'


def to_html(chart: Chart, div_id: str) -> str:
    return plotly.io.to_html(to_plotly(chart), full_html=False, include_plotlyjs=False, div_id=div_id)


def to_plotly(chart: Chart) -> go.Figure:
    match chart:
        case ParallelCoordinates():
            return plot_parallel_coordinates(chart)
        case Curves():
            return plot_curves(chart)
        case GroupedCurves():
            return plot_grouped(chart)
        case BarChart():
            return plot_bars(chart)
        case Scatter():
            return plot_scatter(chart)
        case _:  # a new chart type is drawn by both renderers, or a type checker says which is missing
            assert_never(chart)


def plot_parallel_coordinates(chart: ParallelCoordinates) -> go.Figure:
    dimensions = [
        dict(label=axis.label, values=axis.values, tickvals=axis.tickvals, ticktext=axis.ticktext, range=axis.span)
        for axis in chart.axes
    ]
    objective = chart.axes[-1]
    line = dict(color=objective.values, colorscale=COLORMAP, showscale=True, colorbar=dict(title=objective.label))
    figure = go.Figure(go.Parcoords(dimensions=dimensions, line=line))
    figure.update_layout(title=chart.title, margin=dict(l=80, r=80))
    return figure


def plot_curves(chart: Curves) -> go.Figure:
    figure = go.Figure()
    for line in chart.lines:
        steps, values = zip(*line.points)
        figure.add_trace(go.Scatter(x=steps, y=values, mode="lines+markers", name=line.name))
    figure.update_layout(title=chart.title, xaxis_title=STEP_KEY, yaxis_title=chart.y_label)
    if not chart.lines:
        figure.add_annotation(text=NO_HISTORY, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return figure


def grid_of(panels: int) -> tuple[int, int]:
    """Rows and columns for the panels: two side by side."""
    columns = min(2, max(panels, 1))
    return math.ceil(max(panels, 1) / columns), columns


def plotly_color(index: int, alpha: float = 1.0) -> str:
    red, green, blue = (round(255 * channel) for channel in PALETTE[index % len(PALETTE)])
    return f"rgba({red},{green},{blue},{alpha})"


def plot_grouped(chart: GroupedCurves) -> go.Figure:
    rows, columns = grid_of(len(chart.panels))
    figure = make_subplots(rows=rows, cols=columns, subplot_titles=[panel.title for panel in chart.panels])
    for number, panel in enumerate(chart.panels):
        row, column = number // columns + 1, number % columns + 1
        for index, band in enumerate(panel.bands):
            envelope = go.Scatter(
                x=band.steps + band.steps[::-1],
                y=band.high + band.low[::-1],
                fill="toself",
                mode="lines",
                fillcolor=plotly_color(index, 0.2),
                line=dict(width=0),
                hoverinfo="skip",
                showlegend=False,
            )
            figure.add_trace(envelope, row=row, col=column)
            line = go.Scatter(
                x=band.steps, y=band.median, mode="lines", name=band.name, line=dict(color=plotly_color(index))
            )
            figure.add_trace(line, row=row, col=column)
        if chart.marks:
            steps, values = zip(*chart.marks)
            marks = go.Scatter(
                x=steps, y=values, mode="markers", name=chart.mark_label, marker=dict(color="red", symbol="x", size=10)
            )
            figure.add_trace(marks, row=row, col=column)
        figure.update_xaxes(title_text=STEP_KEY, row=row, col=column)
        figure.update_yaxes(title_text=chart.y_label, row=row, col=column)
    figure.update_layout(title=chart.title + " (median line, min-max band)", height=380 * rows)
    return figure


def plot_bars(chart: BarChart) -> go.Figure:
    panels = chart.panels
    figure = make_subplots(rows=1, cols=len(panels), shared_yaxes=True, subplot_titles=[p.title for p in panels])
    for column, bars in enumerate(panels, start=1):
        trace = go.Bar(x=bars.values, y=chart.labels, orientation="h", name=bars.title, marker_color=bar_colors(bars))
        figure.add_trace(trace, row=1, col=column)
        figure.update_xaxes(title_text=chart.x_label, range=[-1, 1] if bars.signed else None, row=1, col=column)
    figure.update_yaxes(autorange="reversed")  # the first label on top
    figure.update_layout(title=chart.title, showlegend=False)
    return figure


def plot_scatter(chart: Scatter) -> go.Figure:
    if any(point.group for point in chart.points):
        return plot_grouped_scatter(chart)
    figure = go.Figure()
    for marked in (False, True):  # the marked points last, on top
        points = [point for point in chart.points if bool(point.mark) == marked]
        figure.add_trace(
            go.Scatter(
                x=[point.x for point in points],
                y=[point.y for point in points],
                text=[f"{point.label.split()[0]} {point.mark}" if marked else "" for point in points],
                hovertext=[f"{point.label} {point.mark}".strip() for point in points],
                mode="markers+text" if marked else "markers",
                textposition="top right",
                marker=dict(color=ORANGE if marked else BLUE, size=12 if marked else 8),
                name="marked" if marked else "runs",
            )
        )
    figure.update_layout(title=chart.title, xaxis_title=chart.x_label, yaxis_title=chart.y_label, showlegend=False)
    return figure


def plot_grouped_scatter(chart: Scatter) -> go.Figure:
    figure = go.Figure()
    for index, group in enumerate(groups_of(chart)):
        points = [point for point in chart.points if point.group == group]
        figure.add_trace(
            go.Scatter(
                x=[point.x for point in points],
                y=[point.y for point in points],
                hovertext=[point.label for point in points],
                mode="markers",
                marker=dict(color=plotly_color(index), size=9),
                name=group,
            )
        )
    figure.update_layout(title=chart.title, xaxis_title=chart.x_label, yaxis_title=chart.y_label)
    return figure


def groups_of(chart: Scatter) -> list[str]:
    return sorted({point.group for point in chart.points})


# matplotlib: the PNGs


def save_png(chart: Chart, path: Path) -> None:
    match chart:
        case ParallelCoordinates():
            figure = draw_parallel_coordinates(chart)
        case Curves():
            figure = draw_curves(chart)
        case GroupedCurves():
            figure = draw_grouped(chart)
        case BarChart():
            figure = draw_bars(chart)
        case Scatter():
            figure = draw_scatter(chart)
        case _:
            assert_never(chart)
    figure.savefig(path, dpi=120)


def draw_parallel_coordinates(chart: ParallelCoordinates) -> matplotlib.figure.Figure:
    axes, objective = chart.axes, chart.axes[-1]
    figure = matplotlib.figure.Figure(figsize=(2.2 * len(axes) + 2, 5), layout="constrained")
    plot = figure.add_subplot()
    scale = colors.Normalize(min(objective.values), max(objective.values))
    colormap = matplotlib.colormaps[COLORMAP]
    positions = np.column_stack([normalize(axis.values, axis.span) for axis in axes])
    # Worst first, so the best runs are drawn on top, as in W&B's panel.
    for row in np.argsort(objective.values):
        color = colormap(scale(objective.values[row]))
        plot.plot(range(len(axes)), positions[row], color=color, linewidth=1.6, alpha=0.9)
    for x, axis in enumerate(axes):
        plot.axvline(x, color="black", linewidth=0.8)
        for y, text in zip(normalize(axis.tickvals, axis.span), axis.ticktext):
            box = dict(facecolor="white", edgecolor="none", pad=1)
            plot.text(x - 0.03, y, text, ha="right", va="center", fontsize=8, bbox=box)
    plot.set_xticks(range(len(axes)), [axis.label for axis in axes], fontsize=9)
    plot.xaxis.tick_top()
    plot.set_yticks([])
    plot.set_xlim(-0.4, len(axes) - 0.8)
    plot.set_ylim(-0.05, 1.05)
    plot.spines[:].set_visible(False)
    figure.colorbar(cm.ScalarMappable(norm=scale, cmap=colormap), ax=plot, label=objective.label)
    plot.set_xlabel(chart.title, fontsize=9)  # below: the axis labels take the top
    return figure


def normalize(values: list[float], bounds: list[float]) -> np.ndarray:
    low, high = bounds
    return (np.asarray(values, dtype=float) - low) / (high - low)


def draw_curves(chart: Curves) -> matplotlib.figure.Figure:
    figure = matplotlib.figure.Figure(figsize=(10, 5), layout="constrained")
    plot = figure.add_subplot()
    plot.set_prop_cycle(color=matplotlib.colormaps["tab20"].colors)  # 20 distinct colours before any repeats
    for line in chart.lines:
        steps, values = zip(*line.points)
        plot.plot(steps, values, marker="o", markersize=3, label=line.name)
    plot.set_xlabel(STEP_KEY)
    plot.set_ylabel(chart.y_label)
    plot.set_title(chart.title)
    plot.grid(alpha=0.3)
    if chart.lines:  # a legend of nothing would only print matplotlib's warning
        plot.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    else:
        plot.text(0.5, 0.5, NO_HISTORY, ha="center", va="center", transform=plot.transAxes)
    return figure


def draw_grouped(chart: GroupedCurves) -> matplotlib.figure.Figure:
    rows, columns = grid_of(len(chart.panels))
    figure = matplotlib.figure.Figure(figsize=(6 * columns, 4 * rows), layout="constrained")
    plots = figure.subplots(rows, columns, squeeze=False).flatten()
    for plot, panel in zip(plots, chart.panels):
        for index, band in enumerate(panel.bands):
            color = PALETTE[index % len(PALETTE)]
            plot.fill_between(band.steps, band.low, band.high, color=color, alpha=0.2, linewidth=0)
            plot.plot(band.steps, band.median, color=color, label=band.name)
        if chart.marks:
            steps, values = zip(*chart.marks)
            plot.scatter(steps, values, color="red", marker="x", s=50, zorder=3, label=chart.mark_label)
        plot.set_title(panel.title)
        plot.set_xlabel(STEP_KEY)
        plot.set_ylabel(chart.y_label)
        plot.grid(alpha=0.3)
        if panel.bands:
            plot.legend(fontsize=8)
    for plot in plots[len(chart.panels) :]:
        plot.set_visible(False)
    figure.suptitle(chart.title + " (median line, min-max band)")
    return figure


def draw_bars(chart: BarChart) -> matplotlib.figure.Figure:
    figure = matplotlib.figure.Figure(figsize=(10, 0.45 * len(chart.labels) + 1.5), layout="constrained")
    for plot, bars in zip(figure.subplots(1, len(chart.panels), sharey=True, squeeze=False)[0], chart.panels):
        plot.barh(chart.labels, bars.values, color=bar_colors(bars))
        if bars.signed:
            plot.set_xlim(-1, 1)
            plot.axvline(0, color="black", linewidth=0.8)
        plot.set_title(bars.title)
        plot.set_xlabel(chart.x_label)
    plot.invert_yaxis()  # the first label on top (the y axis is shared)
    figure.suptitle(chart.title)
    return figure


def draw_scatter(chart: Scatter) -> matplotlib.figure.Figure:
    figure = matplotlib.figure.Figure(figsize=(10, 5), layout="constrained")
    plot = figure.add_subplot()
    plain = [point for point in chart.points if not point.mark and not point.group]
    plot.scatter([p.x for p in plain], [p.y for p in plain], color=BLUE, s=30)
    for index, group in enumerate(group for group in groups_of(chart) if group):
        grouped = [point for point in chart.points if point.group == group]
        plot.scatter([p.x for p in grouped], [p.y for p in grouped], color=PALETTE[index], s=30, label=group)
    if any(point.group for point in chart.points):
        plot.legend(fontsize=8)
    for point in chart.points:
        if point.mark:
            plot.scatter([point.x], [point.y], color=ORANGE, s=80, zorder=3)
            plot.annotate(
                f"{point.label.split()[0]} {point.mark}",
                (point.x, point.y),
                fontsize=8,
                textcoords="offset points",
                xytext=(6, 6),
            )
    plot.set_xlabel(chart.x_label)
    plot.set_ylabel(chart.y_label)
    plot.set_title(chart.title)
    plot.grid(alpha=0.3)
    return figure
