"""`lora-sweep dashboard`: the W&B views of one sweep, built with W&B's own `wandb-workspaces`.

A saved workspace view filtered to the sweep's runs, and on request a W&B Report, both holding:
    parallel coordinates   the swept parameters only, in the sweep file's order, the metric last
    parameter importance   with respect to the sweep's metric
    curves                 the metric and train/loss against train/global_step
    cost                   peak GPU memory per run (plus W&B's system GPU-memory series), tokens/s, runtime
The report adds the verdicts and the winning configuration, computed by `lora-sweep report`'s code.
Metric, goal and parameter order come from the sweep's own config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.errors import UserError
from agent.records import LOSS_KEY, STEP_KEY, Objective, SweepRecord
from agent.review.results import PEAK_MEMORY_KEY

TOKENS_KEY = "train/tokens_per_s"
RUNTIME_KEY = "_runtime"
SYSTEM_GPU_MEMORY_KEY = "system/gpu.0.memoryAllocatedBytes"
"""W&B's system metric of GPU memory in use (GPU 0: one agent per GPU sees its GPU as 0)."""


@dataclass(frozen=True)
class SweepView:
    """What the panels need to know about a sweep."""

    entity: str
    project: str
    sweep_id: str
    objective: Objective
    swept: list[str]
    """The swept parameters, in the sweep file's order (nested ones as dotted names)."""

    @property
    def view_slug(self) -> str:
        """The workspace view's stable name (`?nw=` in its URL), so a second run updates the same view."""
        return f"sweep-{self.sweep_id}"


def describe(sweep: SweepRecord) -> SweepView:
    entity, project, sweep_id = sweep.sweep_id.split("/")
    return SweepView(entity, project, sweep_id, sweep.objective, sweep.swept_parameters)


def build_panels(view: SweepView) -> dict[str, list]:
    """The panels, by section title."""
    import wandb_workspaces.reports.v2 as wr

    metric = view.objective.name
    columns = [wr.ParallelCoordinatesPlotColumn(metric=wr.Config(name)) for name in view.swept]
    columns.append(wr.ParallelCoordinatesPlotColumn(metric=wr.SummaryMetric(metric)))
    return {
        f"What to ship: {metric} ({view.objective.goal})": [
            wr.ParallelCoordinatesPlot(columns=columns, title=f"Swept parameters and {metric}"),
            wr.ParameterImportancePlot(with_respect_to=metric),
        ],
        "Learning curves": [
            wr.LinePlot(x=STEP_KEY, y=[metric], title=f"{metric} vs {STEP_KEY}"),
            wr.LinePlot(x=STEP_KEY, y=[LOSS_KEY], title=f"{LOSS_KEY} vs {STEP_KEY}"),
        ],
        "Cost": [
            wr.BarPlot(metrics=[wr.SummaryMetric(PEAK_MEMORY_KEY)], title="Peak GPU memory allocated (GB)"),
            wr.LinePlot(x="RelativeTime(Process)", y=[SYSTEM_GPU_MEMORY_KEY], title="GPU memory in use (system)"),
            wr.BarPlot(metrics=[wr.SummaryMetric(TOKENS_KEY)], title="Training tokens/s"),
            wr.BarPlot(metrics=[wr.SummaryMetric(RUNTIME_KEY)], title="Runtime (s)"),
        ],
    }


def sweep_filter(view: SweepView) -> list:
    from wandb_workspaces import expr

    return [expr.Metric("Sweep") == view.sweep_id]


def build_workspace(view: SweepView) -> Any:
    import wandb_workspaces.workspaces as ws

    sections = [
        ws.Section(name=name, panels=panels, is_open=True, layout_settings=ws.SectionLayoutSettings(columns=2))
        for name, panels in build_panels(view).items()
    ]
    return ws.Workspace(
        entity=view.entity,
        project=view.project,
        name=f"Sweep {view.sweep_id}: {view.objective.name}",
        sections=sections,
        runset_settings=ws.RunsetSettings(filters=sweep_filter(view)),
    )


def build_report(view: SweepView, summary: str, verdicts: list[str], warnings: list[str], best_yaml: str) -> Any:
    """The report: the verdicts and the winner from `lora-sweep report`, then the same panels."""
    import wandb_workspaces.reports.v2 as wr

    runset = wr.Runset(
        entity=view.entity, project=view.project, name=f"sweep {view.sweep_id}", filters=sweep_filter(view)
    )
    blocks: list = [wr.P(summary)]
    blocks += [wr.CalloutBlock(f"Warning: {warning}") for warning in warnings]
    blocks += [wr.H2("Verdicts"), wr.UnorderedList(verdicts), wr.H2("Winning configuration (best.yaml)")]
    blocks.append(wr.CodeBlock(best_yaml, language="yaml"))
    for name, panels in build_panels(view).items():
        blocks += [wr.H2(name), wr.PanelGrid(runsets=[runset], panels=panels)]
    return wr.Report(
        entity=view.entity,
        project=view.project,
        # The title goes into the report's URL, so it holds no "/" (metric names do).
        title=f"Sweep {view.sweep_id} review",
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
    return workspace.save().url


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
        urls = [save_workspace(build_workspace(view), view)]
        if with_report:
            findings = assess(sweep)
            summary = pages.format_summary(findings.results)
            report = build_report(view, summary, findings.verdicts, findings.warnings, findings.best_yaml)
            urls.append(report.save().url)
        return urls
    except (FetchError, ReviewError) as error:
        raise DashboardError(str(error)) from error
    # Saving goes through the same GraphQL transport as reading (see fetch.py).
    except (wandb.errors.Error, ValueError, WandbApiFailedError) as error:
        raise DashboardError(f"cannot save the W&B views of sweep {path}: {first_line(error)}") from error


def first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
