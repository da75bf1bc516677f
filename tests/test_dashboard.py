"""`lora-sweep dashboard`: the workspace view and report objects, and what `.save()` sends.

The objects are built offline with `wandb-workspaces` and their specs read back. The saves run
through the library's real code and wandb's real public API; only the connection to wandb-core
(the process that would carry the request to W&B's server, which tests cannot reach) is replaced
by the in-test server of tests/wandb_backend.py, which captures the requests.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws
import yaml
from click.testing import CliRunner
from test_report_contract import SWEEP_CONFIG, twelve_runs
from wandb_backend import FakeServer, serve
from wandb_workspaces import expr
from wandb_workspaces.workspaces import internal

from agent.cli import main
from agent.records import RunRecord, SweepRecord, objective_of
from agent.review.dashboard import (
    MAX_RUNS_CEILING,
    MIN_RUNS_SHOWN,
    build_panels,
    build_report,
    build_workspace,
    describe,
)
from agent.review.findings import assess
from agent.sweep_config import grid_size

SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"

# The metric and goal are the sweep's own, not the trial program's default objective.
CONFIG = {
    "method": "bayes",
    "metric": {"name": "eval/rouge2", "goal": "maximize"},
    "parameters": {
        "target_modules": {"values": ["qv", "all-linear"]},
        "max_steps": {"value": 200},
        "learning_rate": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-3},
        "optim": {"parameters": {"lora_dropout": {"values": [0.0, 0.1]}, "warmup": {"value": 0}}},
        "lora_r": {"values": [8]},
    },
}


def view_of(config=CONFIG):
    return describe(SweepRecord("team/lora/sw33p", config, []))


def spec_of(workspace) -> dict:
    return json.loads(workspace._to_model().spec.model_dump_json(by_alias=True, exclude_none=True))


def panels_by_type(spec: dict) -> dict[str, list[dict]]:
    panels: dict[str, list[dict]] = {}
    for section in spec["section"]["panelBankConfig"]["sections"]:
        for panel in section["panels"]:
            panels.setdefault(panel["viewType"], []).append(panel["config"])
    return panels


def test_the_workspace_shows_the_sweeps_runs_and_the_question():
    workspace = build_workspace(view_of())
    spec = spec_of(workspace)
    assert workspace.entity == "team" and workspace.project == "lora"
    (runset,) = spec["section"]["runSets"]
    assert runset["filters"]["filters"] == [
        {"key": {"section": "run", "name": "sweep"}, "op": "=", "value": "sw33p", "disabled": False}
    ]
    panels = panels_by_type(spec)
    (parallel,) = panels["Parallel Coordinates Plot"]
    # Swept parameters only (not max_steps, lora_r or optim.warmup), in the sweep file's order, metric last.
    assert [column["accessor"] for column in parallel["columns"]] == [
        "config:target_modules.value",
        "config:learning_rate.value",
        "config:optim.value.lora_dropout",  # W&B wraps the top-level key: optim.value.{...}
        "summary:eval/rouge2",
    ]
    assert [panel["targetKey"] for panel in panels["Parameter Importance"]] == ["eval/rouge2"]
    lines = {tuple(panel["metrics"]): panel for panel in panels["Run History Line Plot"]}
    assert lines[("eval/rouge2",)]["xAxis"] == "train/global_step"
    assert lines[("train/loss",)]["xAxis"] == "train/global_step"
    # GPU memory is the run's own, logged by the trial; W&B's system GPU series (NVML's numbering) is gone.
    assert lines[("gpu/allocated_gb", "gpu/reserved_gb")]["xAxis"] == "train/global_step"
    assert "system/" not in json.dumps(spec)
    bars = [panel["metrics"] for panel in panels["Bar Chart"]]
    assert bars == [
        ["summary_metrics.cost/usd"],
        ["summary_metrics.train/tokens_per_s"],
        ["summary_metrics._runtime"],
        ["summary_metrics.gpu/peak_allocated_gb"],
    ]


def test_every_panel_shows_every_run_of_the_sweep_best_first():
    bayes = yaml.safe_load((SWEEPS / "bayes.yaml").read_text())  # run_cap: 30
    grid = yaml.safe_load((SWEEPS / "lora_rank.yaml").read_text())
    unbounded = {**bayes, "run_cap": None}
    minimized = {**bayes, "metric": {"name": "train/loss", "goal": "minimize"}}
    sizes = {}
    for name, config in [("bayes", bayes), ("grid", grid), ("unbounded", unbounded), ("minimized", minimized)]:
        # Read back through the library's own classes: what W&B's app will be told.
        workspace = ws.Workspace._from_model(build_workspace(view_of(config))._to_model())
        sizes[name] = workspace.settings.max_runs
        (order,) = workspace.runset_settings.order
        assert order.item == expr.Summary(objective_of(config).name), name
        assert order.ascending == (name == "minimized"), name  # best first, by the sweep's own goal
        panels = [panel for section in workspace.sections for panel in section.panels]
        limits = {panel.max_runs_to_show for panel in panels if isinstance(panel, (wr.LinePlot, wr.BarPlot))}
        assert limits == {sizes[name]}, name
    assert sizes == {"bayes": 30, "grid": MIN_RUNS_SHOWN, "unbounded": MAX_RUNS_CEILING, "minimized": 30}
    assert view_of({**grid, "parameters": {"a": {"values": list(range(6))}, "b": {"values": [1, 2, 3]}}}).max_runs == 18
    assert view_of({**bayes, "run_cap": 5000}).max_runs == MAX_RUNS_CEILING


def test_a_grid_with_int_uniform_and_q_uniform_axes_shows_every_point_the_engine_counts():
    grid = yaml.safe_load((SWEEPS / "lora_rank.yaml").read_text())
    axes = {
        "lora_r": {"distribution": "int_uniform", "min": 1, "max": 6},  # 6 points
        "lora_dropout": {"distribution": "q_uniform", "min": 0, "max": 0.1, "q": 0.05},  # 0 and 0.05: max is left out
        "learning_rate": {"values": [1e-4, 3e-4]},
    }
    config = {**grid, "parameters": axes}
    assert grid_size(config) == view_of(config).max_runs == 24


def test_the_view_builds_what_users_would_add_by_hand():
    config = yaml.safe_load((SWEEPS / "bayes.yaml").read_text())
    workspace = ws.Workspace._from_model(build_workspace(view_of(config))._to_model())
    panels = [panel for section in workspace.sections for panel in section.panels]
    (parallel,) = [panel for panel in panels if isinstance(panel, wr.ParallelCoordinatesPlot)]
    # Log axes where the sweep samples on a log scale (a distribution, or values spanning a decade).
    logs = {column.metric.name: bool(column.log) for column in parallel.columns}
    assert logs == {
        "lora_r": True,  # 4 ... 64
        "lora_alpha": False,  # 8 ... 64 is under a decade
        "lora_dropout": False,
        "learning_rate": True,  # log_uniform_values
        "target_modules": False,
        "eval/rougeL": False,
    }
    # The objective against each numeric swept parameter, on the same axes.
    scatters = {panel.x.name: panel for panel in panels if isinstance(panel, wr.ScatterPlot)}
    assert set(scatters) == {"lora_r", "lora_alpha", "lora_dropout", "learning_rate", "cost/usd"}
    assert {name: bool(panel.log_x) for name, panel in scatters.items()} == {
        "lora_r": True,
        "lora_alpha": False,
        "lora_dropout": False,
        "learning_rate": True,
        "cost/usd": False,
    }
    assert all(panel.y == wr.SummaryMetric("eval/rougeL") for panel in scatters.values())
    # Curves grouped by each parameter the sweep lists values for, as a mean with a min-max band.
    grouped = {panel.groupby.name: panel for panel in panels if isinstance(panel, wr.LinePlot) and panel.groupby}
    assert set(grouped) == {"lora_r", "lora_alpha", "target_modules"}
    assert {(p.groupby_aggfunc, p.groupby_rangefunc, tuple(p.y)) for p in grouped.values()} == {
        ("mean", "minmax", (wr.Metric("eval/rougeL"),))
    }
    assert [panel.diff_only for panel in panels if isinstance(panel, wr.RunComparer)] == ["split"]
    # The runs table pins the swept parameters, the metric and the cost.
    assert workspace.runset_settings.pinned_columns == [
        "run:displayName",
        "config:lora_r.value",
        "config:lora_alpha.value",
        "config:lora_dropout.value",
        "config:learning_rate.value",
        "config:target_modules.value",
        "summary:eval/rougeL",
        "summary:cost/usd",
    ]


def test_a_sweep_without_a_metric_is_shown_by_the_trial_programs_objective():
    view = view_of({"method": "grid", "parameters": {"lora_r": {"values": [4, 8]}}})
    assert (view.objective.name, view.objective.goal) == ("eval/rougeL", "minimize")
    (parallel, importance, *_) = build_panels(view)["What to ship: eval/rougeL (minimize)"]
    assert parallel.columns[-1].metric == wr.SummaryMetric("eval/rougeL")
    assert importance.with_respect_to == "eval/rougeL"


def test_the_report_holds_the_answers_the_verdicts_the_cost_the_recommendation_and_the_same_panels():
    view = view_of()
    findings = assess(
        SweepRecord(
            "team/lora/sw33p",
            SWEEP_CONFIG,
            [RunRecord(run.name, run.state, run.params, run.summary, run.history) for run in twelve_runs()],
        )
    )
    report = build_report(view, "Sweep team/lora/sw33p: ...", findings)
    assert (report.entity, report.project) == ("team", "lora")
    lists = [block.items for block in report.blocks if isinstance(block, wr.UnorderedList)]
    answers = [f"{heading} {sentence}" for heading, sentence in findings.answers.lines()]
    assert lists == [answers, findings.verdicts, findings.cost_verdicts]
    codes = [block.code for block in report.blocks if isinstance(block, wr.CodeBlock)]
    assert codes == [findings.best_yaml, findings.next_yaml]
    grids = [block for block in report.blocks if isinstance(block, wr.PanelGrid)]
    assert [type(panel) for grid in grids for panel in grid.panels] == [
        type(panel) for panels in build_panels(view).values() for panel in panels
    ]
    for grid in grids:
        (runset,) = grid.runsets
        tree = expr.filters_tree_to_v2(expr.expr_to_filters(runset.filters))
        assert [(f["key"], f["op"], f["value"]) for f in tree["filters"]] == [
            ({"section": "run", "name": "sweep"}, "=", "sw33p")
        ]
        assert runset.order == [wr.OrderBy(wr.SummaryMetric("eval/rouge2"), ascending=False)]


def test_dashboard_saves_the_view_and_the_report_and_a_rerun_updates_both(monkeypatch):
    server = FakeServer("team", "lora", "sw33p", SWEEP_CONFIG, twelve_runs())
    core = serve(monkeypatch, server)
    first = CliRunner().invoke(main, ["dashboard", "team/lora/sw33p", "--report"])
    assert first.exit_code == 0, first.output

    upserts = [variables for operation, variables in server.mutations if operation == "UpsertView2"]
    (view,) = upserts
    assert (view["entityName"], view["projectName"], view["type"]) == ("team", "lora", "project-view")
    assert view["name"] == "nw-sweep-sw33p-v" and "id" not in view  # a new view
    spec = json.loads(view["spec"])
    assert spec["section"]["runSets"][0]["filters"]["filters"][0]["value"] == "sw33p"
    (parallel,) = panels_by_type(spec)["Parallel Coordinates Plot"]
    assert [c["accessor"] for c in parallel["columns"]] == [
        "config:learning_rate.value",
        "config:lora_r.value",
        "summary:eval/rougeL",
    ]

    (report,) = [variables for operation, variables in server.mutations if operation == "upsertView"]
    assert report["type"] == "runs" and report["displayName"] == "Sweep sw33p review" and report["id"] is None
    blocks = json.dumps(json.loads(report["spec"])["blocks"])
    # The verdicts, the cost and the winner are `lora-sweep report`'s, computed from the same runs.
    assert "learning_rate: best at the largest value tried" in blocks
    assert "What the cost buys" in blocks and "lora_r: " in blocks
    assert yaml.safe_dump({"learning_rate": 0.001}).strip() in blocks and "run05" in blocks
    assert "Parallel Coordinates Plot" in blocks and "Parameter Importance" in blocks

    lines = first.output.splitlines()
    assert lines[-2].startswith("Workspace: https://") and lines[-2].endswith("/team/lora?nw=sweep-sw33p")
    assert lines[-1].startswith("Report: https://") and "/team/lora/reports/Sweep-sw33p-review--" in lines[-1]

    # Run again: the same view and the same report are updated, not second ones created.
    core.graphql.clear()
    again = CliRunner().invoke(main, ["dashboard", "team/lora/sw33p", "--report"])
    assert again.exit_code == 0, again.output
    updates = [variables for operation, variables in server.mutations if operation == "UpsertView2"]
    assert len(updates) == 2 and updates[1]["id"] == "view1" and len(server.views) == 1
    reports = [variables for operation, variables in server.mutations if operation == "upsertView"]
    (report_id,) = server.reports  # one report, updated
    assert len(reports) == 2 and reports[1]["id"] == report_id
    assert again.output.splitlines()[-2:] == lines[-2:]  # the same links

    plain = CliRunner().invoke(main, ["dashboard", "team/lora/sw33p"])
    assert plain.exit_code == 0 and "Report:" not in plain.output


def test_a_sweep_id_starting_with_v_gets_a_link_that_opens_its_view(monkeypatch):
    server = FakeServer("team", "lora", "v1abc234", SWEEP_CONFIG, twelve_runs())
    serve(monkeypatch, server)
    result = CliRunner().invoke(main, ["dashboard", "team/lora/v1abc234"])
    assert result.exit_code == 0, result.output
    link = urlparse(result.output.splitlines()[-1].removeprefix("Workspace: "))
    assert (link.path, parse_qs(link.query)) == ("/team/lora", {"nw": ["sweep-v1abc234"]})
    # The app opens `?nw=X` as the view named nw-X-v: the one saved.
    (saved,) = server.views
    assert saved == "nw-sweep-v1abc234-v" == internal._url_query_str_to_internal_name(parse_qs(link.query)["nw"][0])
    assert internal.get_view_dict("team", "lora", "sweep-v1abc234")["id"] == server.views[saved]["id"]


def test_a_report_of_a_sweep_with_nothing_finished_saves_nothing_and_says_so_in_one_line(monkeypatch):
    runs = twelve_runs()
    for run in runs:
        run.state = "running"
    server = FakeServer("team", "lora", "sw33p", SWEEP_CONFIG, runs)
    serve(monkeypatch, server)
    result = CliRunner().invoke(main, ["dashboard", "team/lora/sw33p", "--report"])
    assert result.exit_code == 1 and server.mutations == [] and server.views == {}
    assert result.stderr == (
        "Error: sweep team/lora/sw33p has no finished run with eval/rougeL yet (12 running); nothing to review\n"
    )


def test_dashboard_errors_are_one_line(monkeypatch):
    serve(monkeypatch, FakeServer("team", "lora", "sw33p", SWEEP_CONFIG, twelve_runs(), failing_runs_page=0))
    unknown = CliRunner().invoke(main, ["dashboard", "team/lora/nope"])
    assert unknown.exit_code == 1 and unknown.stderr.startswith("Error: cannot read W&B sweep team/lora/nope")
    failing = CliRunner().invoke(main, ["dashboard", "team/lora/sw33p", "--report"])
    assert failing.exit_code == 1
    assert failing.stderr == (
        "Error: cannot read W&B sweep team/lora/sw33p: returned error 502 Bad Gateway: upstream connect error\n"
    )
    local = CliRunner().invoke(main, ["dashboard", "3k9x2abc"])
    assert local.exit_code == 1
    assert local.stderr == "Error: '3k9x2abc' is not a W&B sweep path entity/project/sweep_id\n"
