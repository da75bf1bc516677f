"""`lora-sweep dashboard`: the workspace view and report objects, and what `.save()` sends.

The objects are built offline with `wandb-workspaces` and their specs read back. The saves run
through the library's real code and wandb's real public API; only the connection to wandb-core
(the process that would carry the request to W&B's server, which tests cannot reach) is replaced
by the in-test server of tests/wandb_backend.py, which captures the requests.
"""

from __future__ import annotations

import json

import wandb_workspaces.reports.v2 as wr
import yaml
from click.testing import CliRunner
from test_report_contract import SWEEP_CONFIG, twelve_runs
from wandb_backend import FakeServer, serve
from wandb_workspaces import expr

from agent.cli import main
from agent.records import SweepRecord
from agent.review.dashboard import build_panels, build_report, build_workspace, describe

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
    lines = {tuple(panel["metrics"]): panel["xAxis"] for panel in panels["Run History Line Plot"]}
    assert lines[("eval/rouge2",)] == "train/global_step"
    assert lines[("train/loss",)] == "train/global_step"
    assert ("system/gpu.0.memoryAllocatedBytes",) in lines
    bars = [panel["metrics"] for panel in panels["Bar Chart"]]
    assert bars == [
        ["summary_metrics.gpu/peak_allocated_gb"],
        ["summary_metrics.train/tokens_per_s"],
        ["summary_metrics._runtime"],
    ]


def test_a_sweep_without_a_metric_is_shown_by_the_trial_programs_objective():
    view = view_of({"method": "grid", "parameters": {"lora_r": {"values": [4, 8]}}})
    assert (view.objective.name, view.objective.goal) == ("eval/rougeL", "minimize")
    (parallel, importance) = build_panels(view)["What to ship: eval/rougeL (minimize)"]
    assert parallel.columns[-1].metric == wr.SummaryMetric("eval/rougeL")
    assert importance.with_respect_to == "eval/rougeL"


def test_the_report_holds_the_verdicts_the_winner_and_the_same_panels():
    view = view_of()
    report = build_report(view, "Sweep team/lora/sw33p: ...", ["lora_r: makes no difference"], ["too few"], "a: 1\n")
    assert (report.entity, report.project) == ("team", "lora")
    texts = [block for block in report.blocks if isinstance(block, (wr.UnorderedList, wr.CodeBlock))]
    assert texts[0].items == ["lora_r: makes no difference"] and texts[1].code == "a: 1\n"
    assert any(isinstance(block, wr.CalloutBlock) and "too few" in str(block.text) for block in report.blocks)
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


def test_dashboard_saves_the_view_and_the_report_through_wandb_workspaces(monkeypatch):
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
    assert report["type"] == "runs" and report["displayName"] == "Sweep sw33p review"
    blocks = json.dumps(json.loads(report["spec"])["blocks"])
    # The verdicts and the winner are `lora-sweep report`'s, computed from the same runs.
    assert "learning_rate: best at the largest value tried" in blocks
    assert yaml.safe_dump({"learning_rate": 0.001}).strip() in blocks and "run05" in blocks
    assert "Parallel Coordinates Plot" in blocks and "Parameter Importance" in blocks

    lines = first.output.splitlines()
    assert lines[-2].startswith("Workspace: https://") and lines[-2].endswith("/team/lora?nw=sweep-sw33p")
    assert lines[-1].startswith("Report: https://") and "/team/lora/reports/Sweep-sw33p-review--" in lines[-1]

    # Run again: the same view is updated, not a second one created.
    core.graphql.clear()
    again = CliRunner().invoke(main, ["dashboard", "team/lora/sw33p"])
    assert again.exit_code == 0, again.output
    updates = [variables for operation, variables in server.mutations if operation == "UpsertView2"]
    assert len(updates) == 2 and updates[1]["id"] == "view1" and len(server.views) == 1
    assert "Report:" not in again.output


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
