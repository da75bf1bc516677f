"""Sweep review on hand-built SweepRecords: table, importance, verdicts, warnings, figures, best.yaml.

The numbers are pinned: correlations worked out by hand, verdicts on sweeps whose answer is known.
"""

from __future__ import annotations

import math

import matplotlib.image
import pytest
import yaml
from helpers import plotly_data

from agent.records import RunRecord, SweepRecord
from agent.review.importance import compute_importance
from agent.review.report import ReviewError, write_review
from agent.review.results import collect_results
from agent.review.verdict import judge_parameters, measure_noise, tolerance_of, warn_about_winner

FIXED = {"max_steps": 200, "model_name_or_path": "tiny-llama"}


def make_sweep(points, parameters, method="grid", states=None) -> SweepRecord:
    """A sweep whose runs have the given (params, objective) points; the curve climbs from 7 at step 0."""
    config = {
        "method": method,
        "metric": {"name": "eval/rougeL", "goal": "maximize"},
        "parameters": {**parameters, **{name: {"value": value} for name, value in FIXED.items()}},
    }
    runs = []
    for index, (params, objective) in enumerate(points):
        history = [
            {"train/global_step": step, "eval/rougeL": 7 + (objective - 7) * step / 200} for step in (0, 100, 200)
        ]
        summary = {"eval/rougeL": objective, "final/rougeL": objective - 0.5, "_runtime": 60.0 + index}
        state = states[index] if states else "finished"
        runs.append(RunRecord(f"run{index}", state, {**params, **FIXED}, summary, history))
    return SweepRecord("sweep1", config, runs)


def two_by_two() -> SweepRecord:
    points = [
        ({"lora_r": 4, "target_modules": "qv"}, 10.0),
        ({"lora_r": 4, "target_modules": "all-linear"}, 12.0),
        ({"lora_r": 8, "target_modules": "qv"}, 11.0),
        ({"lora_r": 8, "target_modules": "all-linear"}, 13.0),
    ]
    return make_sweep(points, {"lora_r": {"values": [4, 8]}, "target_modules": {"values": ["qv", "all-linear"]}})


def rank_grid(scores: dict[int, float]) -> SweepRecord:
    points = [({"lora_r": rank}, score) for rank, score in scores.items()]
    return make_sweep(points, {"lora_r": {"values": list(scores)}})


def verdict_of(sweep: SweepRecord) -> str:
    results = collect_results(sweep)
    (verdict,) = judge_parameters(results, tolerance_of(measure_noise(results)))
    return verdict


# results


def test_runs_are_ranked_best_first_with_unfinished_runs_last():
    sweep = make_sweep(
        [({"lora_r": 4}, 10.0), ({"lora_r": 8}, 14.0), ({"lora_r": 16}, 15.0)],
        {"lora_r": {"values": [4, 8, 16]}},
        states=["finished", "finished", "crashed"],
    )
    results = collect_results(sweep)
    assert [run.run_id for run in results.runs] == ["run1", "run0", "run2"]
    assert [run.run_id for run in results.finished] == ["run1", "run0"]
    assert [p.name for p in results.swept] == ["lora_r"]
    assert results.fixed == FIXED


def test_objective_falls_back_to_the_best_in_history_when_the_summary_lacks_it():
    run = RunRecord(
        "r",
        "finished",
        {"lora_r": 4},
        {},
        [
            {"train/global_step": 0, "eval/rougeL": 7.0},
            {"train/global_step": 50, "eval/rougeL": 9.5},
            {"train/global_step": 100, "eval/rougeL": 9.0},
        ],
    )
    config = {"metric": {"name": "eval/rougeL", "goal": "maximize"}, "parameters": {"lora_r": {"values": [4, 8]}}}
    results = collect_results(SweepRecord("s", config, [run]))
    assert results.runs[0].objective == 9.5
    assert results.runs[0].curve == [(0.0, 7.0), (50.0, 9.5), (100.0, 9.0)]


def test_gpu_hours_come_from_runtime_on_gpu_runs_only():
    gpu = RunRecord("g", "finished", {}, {"eval/rougeL": 1.0, "_runtime": 7200.0, "gpu/peak_allocated_gb": 5.5})
    cpu = RunRecord("c", "finished", {}, {"eval/rougeL": 1.0, "_runtime": 7200.0})
    results = collect_results(SweepRecord("s", {}, [gpu, cpu]))
    assert {run.run_id: run.gpu_hours for run in results.runs} == {"g": 2.0, "c": None}


def test_gpu_hours_count_the_runs_share_of_its_gpu():
    summary = {"eval/rougeL": 1.0, "_runtime": 7200.0, "gpu/peak_allocated_gb": 5.5}
    shared = RunRecord("s", "finished", {}, {**summary, "gpu/share": 0.25})  # --agents-per-gpu 4
    whole = RunRecord("w", "finished", {}, summary)  # no share logged: a whole GPU
    results = collect_results(SweepRecord("s", {}, [shared, whole]))
    assert {run.run_id: run.gpu_hours for run in results.runs} == {"s": 0.5, "w": 2.0}


def test_log_distributions_and_decade_spanning_grids_get_a_log_axis():
    sweep = make_sweep(
        [
            ({"learning_rate": 1e-4, "lora_r": 4, "lora_dropout": 0.0}, 10.0),
            ({"learning_rate": 1e-3, "lora_r": 8, "lora_dropout": 0.1}, 12.0),
        ],
        {
            "learning_rate": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-3},
            "lora_r": {"values": [4, 8]},
            "lora_dropout": {"values": [0.0, 0.1]},
        },
    )
    assert {p.name: p.log_scale for p in collect_results(sweep).swept} == {
        "learning_rate": True,
        "lora_r": False,
        "lora_dropout": False,
    }


# importance


def test_importance_pins_pearson_correlations_and_one_hot_encodes_categories():
    rows = {row.feature: row for row in compute_importance(collect_results(two_by_two()))}
    assert set(rows) == {"lora_r", "target_modules=qv", "target_modules=all-linear"}
    # lora_r: deviations (-2,-2,2,2) against (-1.5,.5,-.5,1.5): 4 / sqrt(16 * 5)
    assert rows["lora_r"].correlation == pytest.approx(4 / math.sqrt(80))
    assert rows["target_modules=all-linear"].correlation == pytest.approx(2 / math.sqrt(5))
    assert rows["target_modules=qv"].correlation == pytest.approx(-2 / math.sqrt(5))
    assert sum(row.importance for row in rows.values()) == pytest.approx(1.0)


def test_forest_importance_finds_the_parameter_that_drives_the_objective():
    points = [
        ({"lora_r": rank, "learning_rate": lr}, (18.0 if lr == 1e-3 else 10.0) + rank / 100)
        for rank in (4, 8, 16, 32)
        for lr in (1e-4, 1e-3)
    ]
    sweep = make_sweep(points, {"lora_r": {"values": [4, 8, 16, 32]}, "learning_rate": {"values": [1e-4, 1e-3]}})
    first, second = compute_importance(collect_results(sweep))
    assert first.feature == "learning_rate" and first.importance > 0.9
    assert second.feature == "lora_r" and second.importance < 0.1


def test_importance_needs_three_finished_runs_for_the_forest():
    sweep = make_sweep([({"lora_r": 4}, 10.0), ({"lora_r": 8}, 11.0)], {"lora_r": {"values": [4, 8]}})
    (row,) = compute_importance(collect_results(sweep))
    assert row.importance is None and row.correlation == pytest.approx(1.0)


# verdicts


def test_rank_beyond_which_gains_are_below_the_tolerance():
    verdict = verdict_of(rank_grid({4: 18.5, 8: 19.5, 16: 19.7, 32: 19.6}))
    assert verdict.startswith("lora_r: beyond 8 gains less than 0.3 eval/rougeL")
    assert "(4: 18.50, 8: 19.50, 16: 19.70, 32: 19.60)" in verdict


def test_best_at_the_edge_of_the_range_suggests_extending_it():
    assert "best at the largest value tried (32), 1.00 eval/rougeL above 16" in verdict_of(
        rank_grid({4: 10.0, 8: 11.0, 16: 12.0, 32: 13.0})
    )
    assert "best at the smallest value tried (4)" in verdict_of(rank_grid({4: 13.0, 8: 11.0, 16: 10.0}))


def test_values_within_the_tolerance_make_no_difference():
    assert verdict_of(rank_grid({4: 12.0, 8: 12.1, 16: 12.2})).startswith("lora_r: makes no difference")


def test_categorical_verdict_names_the_winner_and_its_lead_or_the_ties():
    clear = make_sweep(
        [
            ({"target_modules": "qv"}, 10.0),
            ({"target_modules": "qkvo"}, 11.0),
            ({"target_modules": "all-linear"}, 12.5),
        ],
        {"target_modules": {"values": ["qv", "qkvo", "all-linear"]}},
    )
    assert verdict_of(clear).startswith("target_modules: all-linear is best, 1.50 eval/rougeL ahead of qkvo")
    tied = make_sweep(
        [
            ({"target_modules": "qv"}, 10.0),
            ({"target_modules": "qkvo"}, 12.4),
            ({"target_modules": "all-linear"}, 12.5),
        ],
        {"target_modules": {"values": ["qv", "qkvo", "all-linear"]}},
    )
    assert verdict_of(tied).startswith("target_modules: all-linear, qkvo are within 0.3 eval/rougeL of each other")


def test_a_continuous_parameter_is_judged_on_its_trend():
    rates = [1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3]
    points = [({"learning_rate": lr}, 10 + math.log10(lr / 1e-5) * 3) for lr in rates]
    sweep = make_sweep(
        points, {"learning_rate": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-3}}, method="random"
    )
    assert verdict_of(sweep).startswith(
        "learning_rate: higher is better (correlation +1.00 on a log scale with eval/rougeL over 7 runs); "
        "the winner used 0.001"
    )


# warnings


def seeded_sweep(winner_seeds: list[float], runner_up_seeds: list[float]) -> SweepRecord:
    points = [({"lora_r": 8, "seed": seed}, score) for seed, score in enumerate(winner_seeds)]
    points += [({"lora_r": 4, "seed": seed}, score) for seed, score in enumerate(runner_up_seeds)]
    return make_sweep(points, {"lora_r": {"values": [4, 8]}, "seed": {"values": [0, 1]}})


def test_a_lead_within_run_to_run_noise_is_flagged():
    results = collect_results(seeded_sweep([13.0, 12.0], [12.6, 11.4]))
    noise = measure_noise(results)
    # pooled variance of (13, 12) and (12.6, 11.4): (0.5 + 0.72) / 2; the difference of two runs: x sqrt(2)
    assert noise.std == pytest.approx(math.sqrt(0.61)) and noise.groups == 2
    (warning,) = warn_about_winner(results, noise)
    # The runner-up is the other configuration's best (12.6), not the winner's other seed (12.0).
    assert "lead over the runner-up (run2) is 0.40 eval/rougeL, within run-to-run noise (1.10" in warning


def test_a_lead_beyond_noise_raises_no_warning():
    results = collect_results(seeded_sweep([15.0, 14.9], [12.0, 12.1]))
    assert warn_about_winner(results, measure_noise(results)) == []


def test_too_few_finished_runs_are_flagged():
    sweep = make_sweep(
        [({"lora_r": 4}, 10.0), ({"lora_r": 8}, 11.0), ({"lora_r": 16}, 0.0)],
        {"lora_r": {"values": [4, 8, 16]}},
        states=["finished", "finished", "failed"],
    )
    results = collect_results(sweep)
    assert warn_about_winner(results, None) == [
        "only 2 of 3 runs finished: too few to conclude; treat the winner as provisional"
    ]


# the written review


def test_no_finished_runs_is_a_clear_error(tmp_path):
    sweep = make_sweep(
        [({"lora_r": 4}, 10.0), ({"lora_r": 8}, 11.0)], {"lora_r": {"values": [4, 8]}}, states=["failed", "running"]
    )
    sweep = SweepRecord(sweep.sweep_id, sweep.config, [RunRecord(r.run_id, r.state, r.config) for r in sweep.runs])
    with pytest.raises(
        ReviewError, match=r"^sweep sweep1 has no finished run with eval/rougeL yet \(1 failed, 1 running\)"
    ):
        write_review(sweep, tmp_path)
    assert not any(tmp_path.iterdir())


def test_best_yaml_holds_every_sweep_parameter_of_the_winner(tmp_path):
    review = write_review(two_by_two(), tmp_path)
    text = (tmp_path / "best.yaml").read_text()
    assert text.startswith("# Winning configuration of sweep sweep1: run run3, eval/rougeL = 13.0000\n")
    assert "# Rerun or promote it with: python -m agent.train --config best.yaml\n" in text
    assert yaml.safe_load(text) == {"lora_r": 8, "target_modules": "all-linear", **FIXED}
    assert review.findings.best_yaml == text


def test_written_figures_hold_the_runs_values(tmp_path):
    sweep = two_by_two()
    write_review(sweep, tmp_path)
    for name in ("report.html", "summary.md", "best.yaml", "parallel_coordinates.png", "curves.png", "importance.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    for png in ("parallel_coordinates.png", "curves.png", "importance.png"):
        assert matplotlib.image.imread(tmp_path / png).shape[0] > 100
    page = (tmp_path / "report.html").read_text()
    assert page.count("plotly.js v") == 1  # the library is inlined once for all figures

    (parcoords,) = plotly_data(page, "figure-parallel_coordinates")
    axes = {dimension["label"]: dimension for dimension in parcoords["dimensions"]}
    assert list(axes) == ["lora_r", "target_modules", "eval/rougeL"]  # objective last
    assert axes["eval/rougeL"]["values"] == [13.0, 12.0, 11.0, 10.0]  # best first
    assert parcoords["line"]["color"] == [13.0, 12.0, 11.0, 10.0]  # coloured by the objective
    assert axes["lora_r"]["values"] == [8, 4, 8, 4]
    assert [axes["target_modules"]["ticktext"][i] for i in axes["target_modules"]["values"]] == [
        "all-linear",
        "all-linear",
        "qv",
        "qv",
    ]

    curves = plotly_data(page, "figure-curves")
    by_run = {trace["name"].split()[0]: trace for trace in curves}
    assert set(by_run) == {"run0", "run1", "run2", "run3"}
    assert by_run["run3"]["x"] == [0, 100, 200] and by_run["run3"]["y"] == [7.0, 10.0, 13.0]

    summary = (tmp_path / "summary.md").read_text()
    assert "| run3 | 8 | all-linear | 13.00 |" in summary
    assert "![parallel coordinates](parallel_coordinates.png)" in summary
