"""What the cost buys, on hand-built sweeps whose answer is known: the sweep's total, the cheapest run
within noise of the winner, one cost verdict per swept parameter, and the cost figure and sections of
the offline report.
"""

from __future__ import annotations

import pytest
from helpers import plotly_data

from agent.records import RunRecord, SweepRecord
from agent.review import pages
from agent.review.findings import assess
from agent.review.report import write_review
from agent.review.verdict import MIN_GAIN

PRICE = 3.6  # dollars a GPU-hour: a run costs a thousandth of a dollar per second


def rank_sweep(points: list[tuple[int, float, float]], states: list[str] | None = None) -> SweepRecord:
    """Runs of (lora_r, objective, seconds on the GPU); the cost is the seconds at PRICE."""
    config = {
        "method": "grid",
        "metric": {"name": "eval/rougeL", "goal": "maximize"},
        "parameters": {"lora_r": {"values": sorted({rank for rank, _, _ in points})}, "seed": {"values": [1, 2]}},
    }
    runs = []
    for index, (rank, objective, seconds) in enumerate(points):
        summary = {"eval/rougeL": objective, "_runtime": seconds, "cost/usd": seconds / 3600 * PRICE}
        state = states[index] if states else "finished"
        runs.append(RunRecord(f"run{index}", state, {"lora_r": rank, "seed": index}, summary))
    return SweepRecord("sweep1", config, runs)


def test_a_costlier_rank_that_gains_more_than_the_noise_is_worth_it():
    findings = assess(rank_sweep([(8, 12.0, 100), (32, 14.0, 400)]))
    assert findings.tolerance == MIN_GAIN  # no repeated configuration: the floor
    assert findings.cheapest.run_id == "run1"  # nothing cheaper comes within the tolerance of the winner
    (rank, seed) = findings.cost_verdicts
    assert rank == (
        "lora_r: 32 costs $0.4 a run against $0.1 for 8 and gains 2.00 eval/rougeL, more than the noise (0.3) "
        "(mean cost per run: 8: $0.1 for 12.00, 32: $0.4 for 14.00)"
    )
    assert seed.startswith("seed: ")


def test_a_costlier_rank_within_the_noise_is_not_and_the_cheapest_run_is_named():
    # Seeds of the same rank measure the noise: rank 8 runs at 12.0 and 12.8, so a difference of the
    # pooled std x sqrt(2) = 0.8 is noise, and rank 32's 13.0 does not beat it.
    findings = assess(rank_sweep([(8, 12.0, 100), (8, 12.8, 100), (32, 13.0, 400)]))
    assert findings.tolerance == pytest.approx(0.8)
    assert findings.results.finished[0].run_id == "run2"
    assert findings.cheapest.run_id == "run1"  # 12.8 is within 0.8 of 13.0, for a quarter of the price
    (rank, _) = findings.cost_verdicts
    assert rank.startswith("lora_r: 8 is the cheapest and no costlier value gains more than 0.8 eval/rougeL over it")


def test_the_total_counts_every_run_that_spent_money_and_sweeps_without_prices_say_nothing(tmp_path):
    sweep = rank_sweep([(8, 12.0, 100), (32, 14.0, 400), (32, 0.0, 3600)], states=["finished", "finished", "crashed"])
    findings = assess(sweep)
    assert findings.results.total_cost == pytest.approx(0.1 + 0.4 + 3.6)
    review = write_review(sweep, tmp_path)
    assert "$4.10 in all" in review.format_terminal()
    assert "cost.png" in review.files and "What the cost buys:" in review.format_terminal()

    unpriced = SweepRecord(sweep.sweep_id, sweep.config, [run_without_cost(run) for run in sweep.runs])
    bare = assess(unpriced)
    assert (bare.cheapest, bare.cost_verdicts, bare.results.total_cost) == (None, [], None)
    quiet = write_review(unpriced, tmp_path / "bare")
    assert "cost.png" not in quiet.files and "in all" not in quiet.format_terminal()
    assert "LORA_SWEEP_GPU_HOURLY_USD" in (tmp_path / "bare" / "report.html").read_text()


def run_without_cost(run: RunRecord) -> RunRecord:
    summary = {key: value for key, value in run.summary.items() if key != "cost/usd"}
    return RunRecord(run.run_id, run.state, run.config, summary)


def test_the_cost_figure_plots_each_finished_run_and_marks_the_winner_and_the_cheapest(tmp_path):
    write_review(rank_sweep([(8, 12.0, 100), (8, 12.8, 100), (32, 13.0, 400)]), tmp_path)
    page = (tmp_path / "report.html").read_text()
    plain, marked = plotly_data(page, "figure-cost")
    assert plain["x"] == pytest.approx([0.1]) and plain["y"] == [12.0]
    assert marked["x"] == pytest.approx([0.4, 0.1]) and marked["y"] == [13.0, 12.8]
    assert marked["text"] == ["run2 winner", "run1 cheapest within noise"]
    assert marked["hovertext"] == ["run2 (lora_r=32, seed=2) winner", "run1 (lora_r=8, seed=1) cheapest within noise"]
    assert "Cheapest within 0.8 eval/rougeL of it: run1 with 12.80 for $0.1" in page
    assert (tmp_path / "cost.png").stat().st_size > 1000
    summary = (tmp_path / "summary.md").read_text()
    assert "## What the cost buys" in summary and "![objective vs cost per run](cost.png)" in summary


def test_a_winner_without_a_cost_still_gets_the_cost_figure_and_verdicts_and_says_it_has_none(tmp_path):
    # The winner logged no cost/usd (no price when it ran); two weaker runs, far below it, did.
    priced = rank_sweep([(4, 14.0, 100), (8, 12.0, 100), (32, 10.0, 400)])
    sweep = SweepRecord(priced.sweep_id, priced.config, [run_without_cost(priced.runs[0]), *priced.runs[1:]])
    review = write_review(sweep, tmp_path)
    findings = review.findings
    assert findings.cheapest is None  # no run within the tolerance of the winner has a cost
    assert (
        findings.cost_verdicts[0]
        == "the winner (run0) logged no cost/usd: these compare only the 2 finished runs that did"
    )
    assert findings.cost_verdicts[1].startswith("lora_r: 8 is the cheapest")
    summary = pages.format_summary(findings)
    assert summary.endswith(
        "Winner: run0 with eval/rougeL = 14.00 (it logged no cost/usd, nor did any run within 0.3 eval/rougeL of it)"
    )
    assert "cost.png" in review.files
    page = (tmp_path / "report.html").read_text()
    assert "No run logged cost/usd" not in page and "What the cost buys" in page
    plain, marked = plotly_data(page, "figure-cost")  # the priced runs; nothing to mark
    assert plain["x"] == pytest.approx([0.1, 0.4]) and plain["y"] == [12.0, 10.0] and marked["x"] == []


def test_a_cheaper_run_near_a_winner_without_a_cost_is_named():
    priced = rank_sweep([(32, 14.0, 400), (8, 13.9, 100)])
    sweep = SweepRecord(priced.sweep_id, priced.config, [run_without_cost(priced.runs[0]), priced.runs[1]])
    summary = pages.format_summary(assess(sweep))
    assert summary.endswith("(it logged no cost/usd). Cheapest within 0.3 eval/rougeL of it: run1 with 13.90 for $0.1")


def test_a_parameter_with_many_values_is_judged_on_whether_the_cost_follows_it():
    # Seven ranks, one run each, the cost a step higher at each doubling: a straight line on the log
    # axis the rank is judged on (its grid spans decades).
    ranks = [2, 4, 8, 16, 32, 64, 128]
    findings = assess(rank_sweep([(rank, 10.0 + index / 10, 100 * (index + 1)) for index, rank in enumerate(ranks)]))
    (rank, _) = findings.cost_verdicts
    assert rank == "lora_r: higher values cost more (correlation +1.00); weigh that against its verdict on eval/rougeL"
    flat = assess(rank_sweep([(rank, 10.0 + index / 10, 100) for index, rank in enumerate(ranks)]))
    assert flat.cost_verdicts[0] == "lora_r: the cost does not vary with it"
