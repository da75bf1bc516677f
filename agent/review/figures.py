"""The figures: parallel coordinates (objective as the last, coloured axis, as W&B's panel draws
it), objective-vs-steps and loss-vs-steps curves of every run, the importance bars, and peak GPU
memory per run (for runs that logged it).

Each figure is built twice from the same data: an interactive plotly figure for the HTML page and
a static matplotlib PNG (plotly's own PNG export needs kaleido and a browser download).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from matplotlib import cm, colors
from matplotlib.figure import Figure

from agent.records import LOSS_KEY, STEP_KEY
from agent.review.formatting import format_value
from agent.review.importance import Importance
from agent.review.results import PEAK_MEMORY_KEY, Parameter, RunResult, SweepResults

COLORSCALE = "Viridis"
MAX_TICKS = 8


@dataclass(frozen=True)
class Axis:
    label: str
    values: list[float]
    """One position per finished run, in the axis' own units (log10 on a log axis, an index for categories)."""
    tickvals: list[float]
    ticktext: list[str]


# parallel coordinates


def build_axes(results: SweepResults) -> list[Axis]:
    runs = results.finished
    objective = [run.objective for run in runs]
    ticks = np.linspace(min(objective), max(objective), 5).tolist() if runs else []
    return [axis_of(parameter, runs) for parameter in results.swept] + [
        Axis(results.metric, objective, ticks, [f"{tick:.2f}" for tick in ticks])
    ]


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


def plot_parallel_coordinates(results: SweepResults) -> go.Figure:
    axes = build_axes(results)
    dimensions = [
        dict(label=axis.label, values=axis.values, tickvals=axis.tickvals, ticktext=axis.ticktext, range=span(axis))
        for axis in axes
    ]
    line = dict(color=axes[-1].values, colorscale=COLORSCALE, showscale=True, colorbar=dict(title=results.metric))
    figure = go.Figure(go.Parcoords(dimensions=dimensions, line=line))
    figure.update_layout(
        title=f"Sweep {results.sweep_id}: {len(results.finished)} finished runs", margin=dict(l=80, r=80)
    )
    return figure


def draw_parallel_coordinates(results: SweepResults, path: Path) -> None:
    axes = build_axes(results)
    figure = Figure(figsize=(2.2 * len(axes) + 2, 5), layout="constrained")
    plot = figure.add_subplot()
    scale = colors.Normalize(min(axes[-1].values), max(axes[-1].values))
    positions = np.column_stack([normalize(axis.values, span(axis)) for axis in axes])
    # Worst first, so the best runs are drawn on top, as in W&B's panel.
    for row in np.argsort(axes[-1].values):
        plot.plot(
            range(len(axes)), positions[row], color=cm.viridis(scale(axes[-1].values[row])), linewidth=1.6, alpha=0.9
        )
    for x, axis in enumerate(axes):
        plot.axvline(x, color="black", linewidth=0.8)
        for y, text in zip(normalize(axis.tickvals, span(axis)), axis.ticktext):
            plot.text(
                x - 0.03,
                y,
                text,
                ha="right",
                va="center",
                fontsize=8,
                bbox=dict(facecolor="white", edgecolor="none", pad=1),
            )
    plot.set_xticks(range(len(axes)), [axis.label for axis in axes], fontsize=9)
    plot.xaxis.tick_top()
    plot.set_yticks([])
    plot.set_xlim(-0.4, len(axes) - 0.8)
    plot.set_ylim(-0.05, 1.05)
    plot.spines[:].set_visible(False)
    figure.colorbar(cm.ScalarMappable(norm=scale, cmap="viridis"), ax=plot, label=results.metric)
    plot.set_xlabel(f"Sweep {results.sweep_id}: {len(results.finished)} finished runs", fontsize=9)
    figure.savefig(path, dpi=120)


def span(axis: Axis) -> list[float]:
    """Axis range covering every run and tick, padded when all values coincide."""
    low, high = min(axis.values + axis.tickvals), max(axis.values + axis.tickvals)
    return [low - 0.5, high + 0.5] if low == high else [low, high]


def normalize(values: list[float], bounds: list[float]) -> np.ndarray:
    low, high = bounds
    return (np.asarray(values, dtype=float) - low) / (high - low)


# objective vs steps


def describe_run(results: SweepResults, run: RunResult) -> str:
    swept = ", ".join(f"{p.name}={format_value(run.params.get(p.name))}" for p in results.swept)
    return f"{run.run_id} ({swept})" if swept else run.run_id


def plot_curves(results: SweepResults) -> go.Figure:
    title = f"{results.metric} vs training steps (step 0: the untuned base model)"
    return plot_series(results, lambda run: run.curve, results.metric, title)


def draw_curves(results: SweepResults, path: Path) -> None:
    title = f"{results.metric} vs training steps (step 0: the untuned base model)"
    draw_series(results, lambda run: run.curve, results.metric, title, path)


def plot_loss(results: SweepResults) -> go.Figure:
    return plot_series(results, lambda run: run.loss, LOSS_KEY, f"{LOSS_KEY} vs training steps")


def draw_loss(results: SweepResults, path: Path) -> None:
    draw_series(results, lambda run: run.loss, LOSS_KEY, f"{LOSS_KEY} vs training steps", path)


def plot_series(results: SweepResults, points_of: Callable, label: str, title: str) -> go.Figure:
    figure = go.Figure()
    for run in results.runs:
        if points_of(run):
            steps, values = zip(*points_of(run))
            figure.add_trace(go.Scatter(x=steps, y=values, mode="lines+markers", name=describe_run(results, run)))
    figure.update_layout(title=title, xaxis_title=STEP_KEY, yaxis_title=label)
    return figure


def draw_series(results: SweepResults, points_of: Callable, label: str, title: str, path: Path) -> None:
    figure = Figure(figsize=(10, 5), layout="constrained")
    plot = figure.add_subplot()
    plot.set_prop_cycle(color=cm.tab20.colors)  # 20 distinct colours before any repeats
    for run in results.runs:
        if points_of(run):
            steps, values = zip(*points_of(run))
            plot.plot(steps, values, marker="o", markersize=3, label=describe_run(results, run))
    plot.set_xlabel(STEP_KEY)
    plot.set_ylabel(label)
    plot.set_title(title)
    plot.grid(alpha=0.3)
    if plot.lines:  # a legend of nothing would only print matplotlib's warning
        plot.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    else:
        plot.text(0.5, 0.5, "no run logged any history", ha="center", va="center", transform=plot.transAxes)
    figure.savefig(path, dpi=120)


# GPU memory


def with_peak_memory(results: SweepResults) -> list[RunResult]:
    return [run for run in results.runs if run.peak_memory_gb is not None]


def plot_gpu_memory(results: SweepResults) -> go.Figure:
    runs = with_peak_memory(results)
    figure = go.Figure(
        go.Bar(x=[run.peak_memory_gb for run in runs], y=[describe_run(results, run) for run in runs], orientation="h")
    )
    figure.update_layout(title=f"Peak GPU memory allocated per run ({PEAK_MEMORY_KEY})", xaxis_title="GB")
    figure.update_yaxes(autorange="reversed")  # best run on top, as in the table
    return figure


def draw_gpu_memory(results: SweepResults, path: Path) -> None:
    runs = with_peak_memory(results)
    figure = Figure(figsize=(10, 0.4 * len(runs) + 1.5), layout="constrained")
    plot = figure.add_subplot()
    plot.barh([describe_run(results, run) for run in runs], [run.peak_memory_gb for run in runs], color="tab:purple")
    plot.invert_yaxis()  # best run on top, as in the table
    plot.set_xlabel("GB")
    plot.set_title(f"Peak GPU memory allocated per run ({PEAK_MEMORY_KEY})")
    figure.savefig(path, dpi=120)


# importance


def plot_importance(importance: list[Importance], metric: str) -> go.Figure:
    features = [row.feature for row in importance][::-1]
    figure = go.Figure()
    figure.add_trace(
        go.Bar(y=features, x=[row.importance for row in importance][::-1], orientation="h", name="importance")
    )
    figure.add_trace(
        go.Bar(y=features, x=[row.correlation for row in importance][::-1], orientation="h", name="correlation")
    )
    figure.update_layout(title=f"Parameter importance with respect to {metric}", barmode="group")
    return figure


def draw_importance(importance: list[Importance], metric: str, path: Path) -> None:
    features = [row.feature for row in importance][::-1]
    figure = Figure(figsize=(10, 0.45 * len(features) + 1.5), layout="constrained")
    left, right = figure.subplots(1, 2, sharey=True)
    left.barh(features, [row.importance or 0.0 for row in importance][::-1], color="tab:blue")
    left.set_title("importance (random forest)")
    correlations = [row.correlation or 0.0 for row in importance][::-1]
    right.barh(features, correlations, color=["tab:green" if c > 0 else "tab:red" for c in correlations])
    right.set_xlim(-1, 1)
    right.axvline(0, color="black", linewidth=0.8)
    right.set_title("correlation (Pearson)")
    figure.suptitle(f"Parameter importance with respect to {metric}")
    figure.savefig(path, dpi=120)
