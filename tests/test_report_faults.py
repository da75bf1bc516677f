"""The review never crashes on what real sweeps hold, ranks runs one way everywhere, and writes
only inside its output folder.

Hand-built SweepRecords: each case is one shape of data W&B or the local store can hand over.
"""

from __future__ import annotations

import json
import warnings

import pytest
import yaml
from helpers import plotly_data

from agent.local.listing import runs_as_json, runs_as_table
from agent.records import RunRecord, SweepRecord, best_run, rank_runs
from agent.review.report import REVIEW_ROOT, default_out_dir, write_review

GRID = {"lora_r": {"values": [4, 8]}, "learning_rate": {"values": [1e-4, 1e-3]}}


def curve(best: float) -> list[dict]:
    return [{"train/global_step": 0, "eval/rougeL": 5.0}, {"train/global_step": 50, "eval/rougeL": best}]


def run(run_id, state, best, **params) -> RunRecord:
    summary = {"eval/rougeL": best} if best is not None else {}
    return RunRecord(run_id, state, params, summary, curve(best) if best is not None else [])


# one ranking ------------------------------------------------------------------------------------


def mixed_sweep(goal: str | None) -> SweepRecord:
    metric = {"name": "eval/rougeL", **({"goal": goal} if goal else {})}
    runs = [
        run("crashed_low", "crashed", 1.0, lora_r=4, learning_rate=1e-4),
        run("finished_mid", "finished", 6.0, lora_r=8, learning_rate=1e-4),
        run("running_high", "running", 30.0, lora_r=4, learning_rate=1e-3),
        run("finished_high", "finished", 12.0, lora_r=8, learning_rate=1e-3),
        run("pending", "pending", None, lora_r=4, learning_rate=1e-3),
    ]
    return SweepRecord("mix", {"metric": metric, "parameters": GRID}, runs)


@pytest.mark.parametrize(
    "goal, order",
    [
        ("maximize", ["finished_high", "finished_mid", "running_high", "crashed_low", "pending"]),
        (None, ["finished_mid", "finished_high", "crashed_low", "running_high", "pending"]),  # W&B's minimize
    ],
)
def test_runs_demo_and_report_rank_runs_the_same_way(goal, order, tmp_path):
    record = mixed_sweep(goal)
    assert [r.run_id for r in rank_runs(record)] == order
    # `runs` (table and JSON), the demo's best configuration and the report's best.yaml all agree.
    assert [line.split()[0] for line in runs_as_table(record).splitlines()[1:]] == order
    assert [r["run_id"] for r in json.loads(runs_as_json(record))["runs"]] == order
    assert best_run(record).run_id == order[0]
    review = write_review(record, tmp_path)
    assert [r.run_id for r in review.findings.results.runs] == order
    assert f"run {order[0]}," in (tmp_path / "best.yaml").read_text()


def test_no_best_run_while_nothing_finished():
    record = SweepRecord("s", {"parameters": GRID}, [run("a", "running", 9.0, lora_r=4, learning_rate=1e-3)])
    assert best_run(record) is None


# report never crashes ---------------------------------------------------------------------------


def test_nested_parameter_specs_are_reviewed_under_dotted_names(tmp_path):
    config = {
        "metric": {"name": "eval/rougeL", "goal": "maximize"},
        "parameters": {
            "lora_r": {"values": [4, 8]},
            "optim": {"parameters": {"lr": {"values": [1e-4, 1e-3]}, "wd": {"value": 0.0}}},
        },
    }
    runs = [
        run(f"r{i}", "finished", score, lora_r=rank, optim={"lr": lr, "wd": 0.0})
        for i, (rank, lr, score) in enumerate([(4, 1e-4, 7.0), (4, 1e-3, 11.0), (8, 1e-4, 8.0), (8, 1e-3, 12.0)])
    ]
    record = SweepRecord("nested", config, runs)
    review = write_review(record, tmp_path)
    assert [p.name for p in review.findings.results.swept] == ["lora_r", "optim.lr"]
    assert yaml.safe_load((tmp_path / "best.yaml").read_text()) == {"lora_r": 8, "optim.lr": 1e-3, "optim.wd": 0.0}
    assert any(verdict.startswith("optim.lr: ") for verdict in review.findings.verdicts)
    assert runs_as_table(record).splitlines()[0].split()[-2:] == ["lora_r", "optim.lr"]


def test_a_swept_parameter_missing_from_a_run_is_its_own_value(tmp_path):
    runs = [
        run("a", "finished", 10.0, lora_r=4, learning_rate=1e-4),
        run("b", "finished", 12.0, lora_r=8, learning_rate=1e-3),
        run("c", "finished", 11.0, lora_r=8),  # no learning_rate: a run added from outside the sweep
        run("d", "finished", 9.0, learning_rate=1e-3),
    ]
    config = {"metric": {"name": "eval/rougeL", "goal": "maximize"}, "parameters": GRID}
    review = write_review(SweepRecord("holes", config, runs), tmp_path)
    assert [r.run_id for r in review.findings.results.runs] == ["b", "c", "a", "d"]
    assert review.findings.results.runs[1].params["learning_rate"] is None
    assert {"report.html", "parallel_coordinates.png", "importance.png"} <= set(review.files)


def test_a_non_numeric_step_is_left_out_of_the_curves(tmp_path):
    history = [
        {"train/global_step": 0, "eval/rougeL": 5.0},
        {"train/global_step": "n/a", "eval/rougeL": 6.0},
        {"train/global_step": None, "train/loss": 2.0},
        {"train/global_step": 40, "eval/rougeL": 9.0, "train/loss": 1.5},
    ]
    record = SweepRecord("steps", {"parameters": GRID}, [RunRecord("a", "finished", {"lora_r": 4}, {}, history)])
    review = write_review(record, tmp_path)
    (result,) = review.findings.results.runs
    assert result.curve == [(0.0, 5.0), (40.0, 9.0)] and result.loss == [(40.0, 1.5)]
    assert result.objective == 5.0  # no summary value: the best in history, minimized by default


def test_runs_without_history_are_reviewed_without_warnings(tmp_path, capfd):
    runs = [
        RunRecord(f"r{i}", "finished", {"lora_r": r}, {"eval/rougeL": s}) for i, (r, s) in enumerate([(4, 3), (8, 4)])
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a matplotlib warning fails the test
        review = write_review(SweepRecord("bare", {"parameters": {"lora_r": {"values": [4, 8]}}}, runs), tmp_path)
    assert "curves.png" in review.files and "loss.png" not in review.files
    captured = capfd.readouterr()
    assert "warn" not in (captured.out + captured.err).lower()


def test_peak_gpu_memory_is_drawn_for_the_runs_that_logged_it(tmp_path):
    runs = [
        RunRecord("gpu_a", "finished", {"lora_r": 4}, {"eval/rougeL": 10.0, "gpu/peak_allocated_gb": 3.25}),
        RunRecord("gpu_b", "finished", {"lora_r": 8}, {"eval/rougeL": 12.0, "gpu/peak_allocated_gb": 4.5}),
        RunRecord("cpu", "finished", {"lora_r": 8}, {"eval/rougeL": 11.0}),
    ]
    config = {"metric": {"name": "eval/rougeL", "goal": "maximize"}, "parameters": {"lora_r": {"values": [4, 8]}}}
    review = write_review(SweepRecord("mem", config, runs), tmp_path)
    assert "gpu_memory.png" in review.files
    page = (tmp_path / "report.html").read_text()
    (bars,) = plotly_data(page, "figure-gpu_memory")
    assert bars["y"][0].startswith("gpu_b")
    assert bars["x"] == [4.5, 3.25]  # best run first; the CPU run has no bar
    assert "![peak GPU memory per run](gpu_memory.png)" in (tmp_path / "summary.md").read_text()


# the output folder ------------------------------------------------------------------------------


@pytest.mark.parametrize("sweep_id", ["../../x", "/etc/passwd", "a/b/c", "..", ".", "e/p/..", "a\\..\\..\\b", ""])
def test_the_default_output_folder_never_escapes(sweep_id):
    out = default_out_dir(sweep_id)
    assert out.parent == REVIEW_ROOT and out.name not in ("", ".", "..") and "/" not in out.name
    assert (REVIEW_ROOT / out.name).resolve().parent == REVIEW_ROOT.resolve()
