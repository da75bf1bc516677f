"""`lora-sweep dashboard`: the W&B views of one sweep, built with W&B's own `wandb-workspaces`.

A saved workspace view filtered to the sweep's runs, and on request a W&B Report, both holding:
    what to ship     parallel coordinates (swept parameters in the sweep file's order, log axes where
                     the sweep samples on a log scale, the metric last), parameter importance, a run
                     comparer, and the metric against each numeric swept parameter
    cost             the metric against `cost/usd`, cost per run, tokens/s, runtime
    learning curves  the metric and train/loss against train/global_step, then the metric grouped by
                     each swept parameter (mean line, min-max band)
    GPU memory       each run's own CUDA memory (allocated and reserved, logged by the trial) and peak
The runs table pins the swept parameters, the metric and the cost, best run first; every panel
shows every run of the sweep, up to MAX_RUNS_CEILING. The report adds the verdicts, what the cost
buys and the winning configuration, computed by `lora-sweep report`'s code.

W&B's system GPU panels are left out: W&B numbers GPUs as NVML sees the machine, not as
CUDA_VISIBLE_DEVICES does, so with one agent per GPU every run's `system/gpu.0.*` is physical GPU 0.

The view is rewritten on every run: it is the sweep's, not the user's. Users who want their own
edits keep them in a copy ("Save as new view" in W&B), which this command never touches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse, urlunparse

from agent.errors import UserError, first_line
from agent.records import (
    COST_KEY,
    LOSS_KEY,
    MEMORY_KEYS,
    PEAK_MEMORY_KEY,
    RUNTIME_KEY,
    STEP_KEY,
    TOKENS_PER_S_KEY,
    Objective,
    SweepRecord,
)
from agent.review.findings import Findings
from agent.review.results import Parameter, describe_swept
from agent.sweep_config import grid_size

MIN_RUNS_SHOWN = 10  # W&B's own default
MAX_RUNS_CEILING = 100  # an open-ended sweep shows its first 100 runs, best first; more slows every panel


@dataclass(frozen=True)
class SweepView:
    """What the panels need to know about a sweep."""

    entity: str
    project: str
    sweep_id: str
    objective: Objective
    swept: list[Parameter]
    """The swept parameters, in the sweep file's order (nested ones as dotted names)."""
    max_runs: int
    """How many runs each panel shows: the sweep's size (grid size or `run_cap`), within bounds."""

    @property
    def view_slug(self) -> str:
        """The workspace view's stable name (`?nw=` in its URL), so a second run updates the same view."""
        return f"sweep-{self.sweep_id}"

    @property
    def report_title(self) -> str:
        # The title goes into the report's URL, so it holds no "/" (metric names do). It is also how a
        # rerun finds the report to update.
        return f"Sweep {self.sweep_id} review"


def describe(sweep: SweepRecord) -> SweepView:
    entity, project, sweep_id = sweep.sweep_id.split("/")
    swept = describe_swept(sweep.parameters, [])  # numeric and log scale as the sweep file declares them
    return SweepView(entity, project, sweep_id, sweep.objective, swept, count_runs_shown(sweep))


def count_runs_shown(sweep: SweepRecord) -> int:
    """Every run of the sweep: the grid's size as the engine counts it, else `run_cap`; an open-ended
    sweep, the ceiling."""
    size = grid_size(sweep.config, limit=MAX_RUNS_CEILING) or sweep.config.get("run_cap")
    return min(max(size or MAX_RUNS_CEILING, MIN_RUNS_SHOWN), MAX_RUNS_CEILING)


def build_panels(view: SweepView) -> dict[str, list]:
    """The panels, by section title."""
    import wandb_workspaces.reports.v2 as wr

    metric = view.objective.name
    columns = [wr.ParallelCoordinatesPlotColumn(metric=wr.Config(p.name), log=p.log_scale or None) for p in view.swept]
    columns.append(wr.ParallelCoordinatesPlotColumn(metric=wr.SummaryMetric(metric)))
    numeric = [p for p in view.swept if not p.categorical]
    shown = view.max_runs
    return {
        f"What to ship: {metric} ({view.objective.goal})": [
            wr.ParallelCoordinatesPlot(columns=columns, title=f"Swept parameters and {metric}"),
            wr.ParameterImportancePlot(with_respect_to=metric),
            wr.RunComparer(diff_only="split"),
            *(
                wr.ScatterPlot(
                    x=wr.Config(p.name),
                    y=wr.SummaryMetric(metric),
                    log_x=p.log_scale or None,
                    title=f"{metric} vs {p.name}",
                )
                for p in numeric
            ),
        ],
        "Cost": [
            wr.ScatterPlot(x=wr.SummaryMetric(COST_KEY), y=wr.SummaryMetric(metric), title=f"{metric} vs {COST_KEY}"),
            wr.BarPlot(metrics=[wr.SummaryMetric(COST_KEY)], title="Cost per run (USD)", max_runs_to_show=shown),
            wr.BarPlot(metrics=[wr.SummaryMetric(TOKENS_PER_S_KEY)], title="Training tokens/s", max_runs_to_show=shown),
            wr.BarPlot(metrics=[wr.SummaryMetric(RUNTIME_KEY)], title="Runtime (s)", max_runs_to_show=shown),
        ],
        "Learning curves": [
            wr.LinePlot(x=STEP_KEY, y=[metric], title=f"{metric} vs {STEP_KEY}", max_runs_to_show=shown),
            wr.LinePlot(x=STEP_KEY, y=[LOSS_KEY], title=f"{LOSS_KEY} vs {STEP_KEY}", max_runs_to_show=shown),
            *(
                wr.LinePlot(
                    x=STEP_KEY,
                    y=[metric],
                    title=f"{metric} by {p.name} (mean, min-max band)",
                    groupby=wr.Config(p.name),
                    groupby_aggfunc="mean",
                    groupby_rangefunc="minmax",
                    max_runs_to_show=shown,
                )
                for p in view.swept
                if p.levels  # a sampled range has a value per run: nothing to group
            ),
        ],
        "GPU memory (each run's own)": [
            wr.LinePlot(x=STEP_KEY, y=list(MEMORY_KEYS), title="CUDA memory (GB) vs step", max_runs_to_show=shown),
            wr.BarPlot(
                metrics=[wr.SummaryMetric(PEAK_MEMORY_KEY)],
                title="Peak GPU memory allocated (GB)",
                max_runs_to_show=shown,
            ),
        ],
    }


def sweep_filter(view: SweepView) -> list:
    from wandb_workspaces import expr

    return [expr.Metric("Sweep") == view.sweep_id]


def pinned_columns(view: SweepView) -> list[str]:
    """The runs table's pinned columns: the swept parameters, the metric, the cost (W&B adds the run's name)."""
    return [config_column(p.name) for p in view.swept] + [f"summary:{view.objective.name}", f"summary:{COST_KEY}"]


def config_column(name: str) -> str:
    """W&B's column name of a config key: `.value` after the top-level key (`optim.value.lr`)."""
    top, _, rest = name.partition(".")
    return f"config:{top}.value" + (f".{rest}" if rest else "")


def build_workspace(view: SweepView) -> Any:
    import wandb_workspaces.workspaces as ws
    from wandb_workspaces import expr

    sections = [
        ws.Section(name=name, panels=panels, is_open=True, layout_settings=ws.SectionLayoutSettings(columns=2))
        for name, panels in build_panels(view).items()
    ]
    best_first = expr.Ordering(expr.Summary(view.objective.name), ascending=not view.objective.maximize)
    return ws.Workspace(
        entity=view.entity,
        project=view.project,
        name=f"Sweep {view.sweep_id}: {view.objective.name}",
        sections=sections,
        settings=ws.WorkspaceSettings(x_axis=STEP_KEY, max_runs=view.max_runs),
        runset_settings=ws.RunsetSettings(
            filters=sweep_filter(view), order=[best_first], pinned_columns=pinned_columns(view)
        ),
    )


def build_report(view: SweepView, summary: str, findings: Findings) -> Any:
    """The report: the answers, the verdicts, what the cost buys and the recommended configuration from
    `lora-sweep report`, then the same panels."""
    import wandb_workspaces.reports.v2 as wr

    best_first = wr.OrderBy(wr.SummaryMetric(view.objective.name), ascending=not view.objective.maximize)
    runset = wr.Runset(
        entity=view.entity,
        project=view.project,
        name=f"sweep {view.sweep_id}",
        filters=sweep_filter(view),
        order=[best_first],
        pinned_columns=pinned_columns(view),
    )
    blocks: list = [wr.P(summary)]
    blocks += [wr.CalloutBlock(f"Warning: {warning}") for warning in findings.warnings]
    answers = [f"{heading} {sentence}" for heading, sentence in findings.answers.lines()]
    blocks += [
        wr.H2("Answers"),
        wr.P(f"Tolerance: {findings.tolerance:.2g} {view.objective.name}."),
        wr.UnorderedList(answers),
    ]
    blocks += [wr.H2("Verdicts"), wr.UnorderedList(findings.verdicts)]
    if findings.cost_verdicts:
        blocks += [wr.H2("What the cost buys"), wr.UnorderedList(findings.cost_verdicts)]
    blocks += [wr.H2("Recommended configuration (best.yaml)"), wr.CodeBlock(findings.best_yaml, language="yaml")]
    blocks += [wr.H2("The next sweep (next.yaml)"), wr.CodeBlock(findings.next_yaml, language="yaml")]
    for name, panels in build_panels(view).items():
        blocks += [wr.H2(name), wr.PanelGrid(runsets=[runset], panels=panels)]
    return wr.Report(
        entity=view.entity,
        project=view.project,
        title=view.report_title,
        description=f"{view.objective.name} ({view.objective.goal}); written by lora-sweep dashboard --report",
        blocks=blocks,
    )


def save_workspace(workspace: Any, view: SweepView) -> str:
    """Create the sweep's view, or update it when an earlier run saved one; returns its URL."""
    from wandb_workspaces.workspaces import internal

    # The library updates a view it loaded (it keeps the view's name and id); a view we build anew
    # is given them here, the same way, so the sweep keeps one view.
    try:
        existing = internal.get_view_dict(view.entity, view.project, view.view_slug)
        workspace._internal_id = existing["id"]
    except ValueError:  # no such view yet
        pass
    workspace._internal_name = internal._url_query_str_to_internal_name(view.view_slug)
    saved = urlparse(workspace.save().url)
    # The library's own URL strips every "-v" from the name (`sweep-v1abc` would open `?nw=sweep1abc`):
    # the slug is ours, so the link is built from it.
    return urlunparse(saved._replace(query=f"nw={view.view_slug}"))


def save_report(report: Any, view: SweepView) -> str:
    """Create the sweep's report, or update the one an earlier run saved (found by its title); returns its URL."""
    import wandb

    reports = wandb.Api().reports(f"{view.entity}/{view.project}")
    # The newest one when several share the title (saved before reruns updated in place).
    earlier = [saved for saved in reports if saved.display_name == view.report_title]
    if earlier:
        report.id = max(earlier, key=lambda saved: saved.updated_at or "").id
    return report.save().url


class DashboardError(UserError):
    """The sweep cannot be read or the views cannot be saved; the message is one line for the user."""


def publish(path: str, with_report: bool) -> list[str]:
    """Save the sweep's workspace view (and report); returns their URLs."""
    import wandb
    from wandb.sdk.lib.service.service_connection import WandbApiFailedError

    from agent.review import pages
    from agent.review.fetch import FetchError, fetch_wandb_sweep
    from agent.review.findings import ReviewError, assess

    try:
        sweep = fetch_wandb_sweep(path, with_runs=with_report)
        view = describe(sweep)
        # Judged before anything is saved: a sweep with nothing to review saves nothing and says so.
        findings = assess(sweep) if with_report else None
        urls = [save_workspace(build_workspace(view), view)]
        if findings:
            report = build_report(view, pages.format_summary(findings), findings)
            urls.append(save_report(report, view))
        return urls
    except (FetchError, ReviewError) as error:
        raise DashboardError(str(error)) from error
    # Saving goes through the same GraphQL transport as reading (see fetch.py).
    except (wandb.errors.Error, ValueError, WandbApiFailedError) as error:
        raise DashboardError(f"cannot save the W&B views of sweep {path}: {first_line(error)}") from error
