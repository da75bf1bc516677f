"""The review's six answers, the recommendation and next.yaml, rule by rule, on hand-made curves.

Each table states a curve or a sweep whose answer is known by construction, edge cases included:
a curve that never plateaus, a single evaluation, a NaN loss, one run per configuration (no noise
estimate), a parameter with one value.
"""

from __future__ import annotations

import math

import pytest
import yaml

from agent.records import RunRecord, SweepRecord
from agent.review.answers import ON_CPU, answer_questions
from agent.review.curves import check_loss, median_or_none, plateau_step
from agent.review.findings import assess
from agent.review.results import collect_results
from agent.review.verdict import MIN_GAIN, measure_noise, tolerance_of
from agent.sweep_config import load_valid_sweep

# plateau_step


@pytest.mark.parametrize(
    ("curve", "expected"),
    [
        ([(0, 5.0), (50, 8.0), (100, 10.0), (150, 10.1), (200, 10.2)], 100),  # gains after 100 sum to 0.2
        ([(0, 5.0), (50, 6.0), (100, 7.0), (150, 8.0)], None),  # still rising at the last evaluation
        ([(0, 5.0)], None),  # a single evaluation shows no trend
        ([], None),
        ([(0, 5.0), (50, 5.0), (100, 5.0)], 0),  # flat from the start: plateaued at once
        ([(0, 5.0), (50, 9.0), (100, 8.0), (150, 9.3)], 50),  # a later gain of exactly the tolerance is no gain
        ([(0, 5.0), (50, 9.0), (100, 8.0), (150, 9.31)], None),  # just beyond it is
        ([(0, 5.0), (50, 9.0), (100, 9.0), (150, 10.0), (200, 10.0)], 150),  # a second climb moves the plateau
    ],
)
def test_plateau_step_is_the_first_evaluation_no_later_one_beats_by_more_than_the_tolerance(curve, expected):
    assert plateau_step(curve, tolerance=0.3) == expected


def test_plateau_step_follows_the_goal_of_a_metric_to_minimize():
    falling = [(0, 3.0), (50, 2.0), (100, 1.9), (150, 1.85)]
    assert plateau_step(falling, tolerance=0.3, maximize=False) == 50
    assert plateau_step(falling, tolerance=0.3, maximize=True) == 0  # read the wrong way it never improves


# check_loss


def smooth_loss(steps: int = 20, start: float = 3.0) -> list[tuple[float, float]]:
    """A falling loss with a little alternating noise: the differences vary, none stands out."""
    return [(10.0 * k, start - 0.05 * k + (0.02 if k % 2 else -0.02)) for k in range(steps)]


def test_a_smooth_noisy_loss_has_no_spike_and_does_not_diverge():
    check = check_loss(smooth_loss())
    assert (check.spikes, check.diverged, check.unstable) == ([], None, False)


def test_a_jump_far_outside_the_runs_own_variation_is_a_spike_at_its_step():
    loss = smooth_loss()
    loss[12] = (120.0, loss[12][1] + 1.5)
    check = check_loss(loss)
    assert check.spikes == [loss[12]] and check.diverged is None and check.unstable


def test_a_jump_on_a_perfectly_steady_loss_is_still_a_spike():
    loss = [(10.0 * k, 3.0 - 0.1 * k) for k in range(10)]  # every difference the same: MAD 0
    loss[5] = (50.0, 3.0)
    assert [step for step, _ in check_loss(loss).spikes] == [50.0]


@pytest.mark.parametrize(
    ("loss", "diverged"),
    [
        ([(10, 3.0), (20, 2.5), (30, math.nan), (40, 2.0)], "non-finite loss at step 30"),
        ([(10, 3.0), (20, math.inf)], "non-finite loss at step 20"),
        ([(10, 3.0), (20, 2.0), (30, 3.5)], "ends above its start"),
        ([(10, 3.0), (20, 2.0), (30, 2.5)], None),  # up at the end, still below the start
        ([(k, 3.0 + (0.8 if k % 2 else -0.8) - 0.1 * k) for k in range(12)], None),  # noisy ends, falling
        ([(k, 3.0 + (0.8 if k % 2 else -0.8) + 0.1 * k) for k in range(12)], "ends above its start"),
        ([(10, 3.0)], None),
    ],
)
def test_a_loss_diverges_when_it_is_not_finite_or_ends_above_its_start(loss, diverged):
    assert check_loss(loss).diverged == diverged


def test_too_few_losses_to_know_the_runs_variation_give_no_spike():
    assert check_loss([(10, 3.0), (20, 2.9), (30, 9.0), (40, 2.8)]).spikes == []


@pytest.mark.parametrize(
    ("values", "expected"),
    [([100, 200, 300], 200), ([100, None, 300], 300), ([100, None], None), ([None], None), ([], None), ([1, 3], 2)],
)
def test_a_median_counts_never_reached_as_later_than_any_step(values, expected):
    assert median_or_none(values) == expected


# sweeps of known shape


def curve_to(top: float, speed: int, steps: int = 200, every: int = 25, start: float = 5.0) -> list[dict]:
    """ROUGE climbing linearly from `start` at step 0 to `top` at step `speed`, then flat."""
    return [
        {"train/global_step": s, "eval/rougeL": start + (top - start) * min(1, s / speed)}
        for s in range(0, steps + 1, every)
    ]


def loss_rows(spike_at: int | None = None, nan_at: int | None = None) -> list[dict]:
    rows = []
    for step, value in smooth_loss():
        if step == spike_at:
            value += 1.5
        if step == nan_at:
            value = math.nan
        rows.append({"train/global_step": step, "train/loss": value})
    return rows


def run(
    run_id, params, top, speed=50, summary=None, spike_at=None, nan_at=None, state="finished", memory=None, start=5.0
):
    history = curve_to(top, speed, start=start) + loss_rows(spike_at, nan_at)
    history += [{"train/global_step": step, "gpu/allocated_gb": gb} for step, gb in (memory or [])]
    return RunRecord(run_id, state, params, {"eval/rougeL": top, **(summary or {})}, history)


def sweep_of(runs, parameters, method="grid") -> SweepRecord:
    config = {
        "program": "agent/train.py",
        "method": method,
        "metric": {"name": "eval/rougeL", "goal": "maximize"},
        "parameters": {**parameters, "max_steps": {"value": 200}},
        "command": ["${env}", "${interpreter}", "-m", "agent.train", "${args}"],
    }
    return SweepRecord("sw", config, runs)


def answers_of(sweep: SweepRecord):
    results = collect_results(sweep)
    return answer_questions(results, tolerance_of(measure_noise(results)))


RANKS = {"lora_r": {"values": [4, 8, 16, 32]}}


def rank_sweep(scores: dict[int, float]) -> SweepRecord:
    runs = [
        run(f"r{rank}", {"lora_r": rank}, top, summary={"train/trainable_params": rank * 1000})
        for rank, top in scores.items()
    ]
    return sweep_of(runs, RANKS)


def test_rank_sufficient_is_the_smallest_value_within_the_tolerance_of_the_best():
    rank = answers_of(rank_sweep({4: 12.0, 8: 14.0, 16: 14.2, 32: 14.25})).questions["rank"]
    assert rank.data["sufficient"] == 8
    assert [(g["from"], g["to"], g["gain"]) for g in rank.data["gain_per_step"]] == [
        (4, 8, 2.0),
        (8, 16, 0.2),
        (16, 32, 0.05),
    ]
    assert rank.answer.startswith("lora_r = 8 is enough: within 0.3 eval/rougeL of the best (32)")


def test_rank_still_paying_at_the_largest_value_says_so():
    rank = answers_of(rank_sweep({4: 10.0, 8: 11.0, 16: 12.0, 32: 13.0})).questions["rank"]
    assert rank.data["sufficient"] == 32 and "the largest value tried" in rank.answer


def test_a_question_on_a_parameter_with_one_value_or_none_gives_a_reason_not_an_answer():
    one = sweep_of([run("a", {"lora_r": 8}, 12.0), run("b", {"lora_r": 8}, 12.1)], {"lora_r": {"values": [8]}})
    answers = answers_of(one)
    assert answers.questions["rank"].answer is None
    assert answers.questions["rank"].reason == "lora_r was not swept (fixed at 8)"
    assert answers.questions["learning_rate"].reason == "learning_rate was not swept"
    assert answers.questions["rank"].to_json() == {
        "parameter": "lora_r",
        "sufficient": None,
        "gain_per_step": [],
        "reason": "lora_r was not swept (fixed at 8)",
    }


LEARNING_RATES = {"learning_rate": {"values": [1e-5, 1e-4, 1e-3]}}


def test_the_fastest_learning_rate_plateaus_soonest_among_those_that_learned_and_its_stability_is_said():
    runs = [
        run("flat", {"learning_rate": 1e-5}, 5.1, speed=50),  # never left the untuned model: no contender
        run("slow", {"learning_rate": 1e-4}, 12.0, speed=150),
        run("fast", {"learning_rate": 1e-3}, 12.1, speed=50, spike_at=120),
    ]
    lr = answers_of(sweep_of(runs, LEARNING_RATES)).questions["learning_rate"]
    assert lr.data["fastest"] == 1e-3 and lr.data["fastest_is_stable"] is False
    never = {"plateau_step": None, "learned": False, "unstable_runs": 0, "runs_with_loss": 1}
    assert lr.data["by_value"]["1e-05"] == never  # a flat curve has no plateau to reach: not the fastest
    assert lr.data["by_value"]["0.0001"]["plateau_step"] == 150
    assert lr.answer == (
        "learning_rate = 0.001 plateaus soonest (median step 50; 1e-05 never learned, 0.0001 step 150) "
        "and is unstable in 1 of 1 runs."
    )


def test_no_learning_rate_reaching_a_plateau_says_train_longer():
    runs = [run("a", {"learning_rate": 1e-4}, 12.0, speed=400), run("b", {"learning_rate": 1e-3}, 13.0, speed=400)]
    lr = answers_of(sweep_of(runs, LEARNING_RATES)).questions["learning_rate"]
    assert lr.data["fastest"] is None and "train longer" in lr.answer


MODULES = {"target_modules": {"values": ["qv", "qkvo"]}}


def modules_sweep(qkvo_top: float, gpu: bool = True) -> SweepRecord:
    def summary(peak, params):
        memory = {"gpu/peak_allocated_gb": peak, "gpu/total_gb": 24.0} if gpu else {}
        return {"train/trainable_params": params, **memory}

    runs = [
        run("qv", {"target_modules": "qv"}, 12.0, summary=summary(8.0, 850_000)),
        run("qkvo", {"target_modules": "qkvo"}, qkvo_top, summary=summary(9.5, 1_700_000)),
    ]
    return sweep_of(runs, MODULES)


@pytest.mark.parametrize(("qkvo_top", "justified"), [(12.2, False), (12.3, False), (13.0, True)])
def test_heavier_target_modules_are_justified_only_by_a_gain_beyond_the_tolerance(qkvo_top, justified):
    modules = answers_of(modules_sweep(qkvo_top)).questions["target_modules"]
    assert modules.data["justified"] is justified
    assert modules.data["extra_gb"] == pytest.approx(1.5)
    assert modules.data["gain"] == pytest.approx(qkvo_top - 12.0)
    assert "1.50 GB more peak memory than qv, 1.70M trainable parameters against 0.85M" in modules.answer


def test_on_cpu_target_modules_are_weighed_by_trainable_parameters_and_memory_is_not_measured():
    answers = answers_of(modules_sweep(12.1, gpu=False))
    modules = answers.questions["target_modules"]
    assert (modules.data["extra_gb"], modules.data["justified"]) == (None, False)
    assert "(GPU memory: not measured, on CPU)" in modules.answer
    memory = answers.questions["memory"]
    assert memory.answer is None and memory.reason == ON_CPU
    assert memory.to_json()["headroom_gb"] is None


def test_unstable_runs_are_those_whose_loss_spikes_or_diverges():
    runs = [
        run("calm", {"lora_r": 8}, 12.0),
        run("spiky", {"lora_r": 16}, 12.1, spike_at=120),
        run("broken", {"lora_r": 32}, 6.0, nan_at=90, state="failed"),
    ]
    loss = answers_of(sweep_of(runs, {"lora_r": {"values": [8, 16, 32]}})).questions["loss"]
    assert loss.data["unstable_runs"] == ["spiky", "broken"]
    assert loss.data["spikes"] == {"spiky": [120.0], "broken": []}
    assert loss.answer == ("2 of 3 runs are unstable: spiky (spikes at step 120); broken (non-finite loss at step 90).")


def test_headroom_is_the_total_less_the_largest_peak_and_the_batch_estimate_says_how():
    memory = [(step, 4.0) for step in (10, 20, 30)]  # weights, adapter and optimizer state between steps
    summary = {"gpu/peak_allocated_gb": 10.0, "gpu/total_gb": 20.0, "gpu/share": 0.5}
    runs = [
        run("big", {"lora_r": 16, "per_device_train_batch_size": 8}, 12.0, summary=summary, memory=memory),
        run(
            "small",
            {"lora_r": 8, "per_device_train_batch_size": 8},
            11.0,
            summary={**summary, "gpu/peak_allocated_gb": 7.0},
        ),
    ]
    parameters = {"lora_r": {"values": [8, 16]}, "per_device_train_batch_size": {"value": 8}}
    answer = answers_of(sweep_of(runs, parameters)).questions["memory"]
    assert answer.to_json() | {"answer": ""} == {
        "total_gb": 20.0,
        "peak_gb": 10.0,
        "headroom_gb": 10.0,
        "largest_batch": 21,  # (20 - 4) / ((10 - 4) / 8) = 21.3 examples
        "batch_size": 8,
        "run_id": "big",
        "answer": "",
    }
    assert "of 20.00 GB (its share's cap, run big): 10.00 GB of headroom" in answer.answer
    assert "at 0.75 GB per example, a batch of about 21 would fit (now 8)" in answer.answer


def test_steps_give_the_median_plateau_per_value_and_max_steps_from_the_leaders():
    runs = [
        run("a", {"lora_r": 8, "learning_rate": 1e-3}, 12.0, speed=50),
        run("b", {"lora_r": 16, "learning_rate": 1e-3}, 12.1, speed=100),
        run("c", {"lora_r": 8, "learning_rate": 1e-4}, 9.0, speed=150),
        run("d", {"lora_r": 16, "learning_rate": 1e-4}, 9.1, speed=400, start=1.0),  # +0.5 an evaluation to the end
    ]
    sweep = sweep_of(runs, {"lora_r": {"values": [8, 16]}, "learning_rate": {"values": [1e-4, 1e-3]}})
    steps = answers_of(sweep).questions["steps"]
    assert steps.data["plateau_step_by_value"] == {
        "lora_r": {"8": 100.0, "16": None},  # a at 50 and c at 150; b at 100, d never: half never got there
        "learning_rate": {"0.001": 75.0, "0.0001": None},
    }
    assert steps.data["suggested_max_steps"] == 150  # the leaders a, b: 100, plus 2 evaluations of 25 steps


def test_a_leader_still_rising_at_its_last_evaluation_is_not_reached_and_max_steps_doubles():
    runs = [run("a", {"lora_r": 8}, 12.0, speed=400), run("b", {"lora_r": 16}, 9.0, speed=50)]
    steps = answers_of(sweep_of(runs, {"lora_r": {"values": [8, 16]}})).questions["steps"]
    assert steps.data["suggested_max_steps"] == 400 and "not reached" in steps.answer


def test_a_single_evaluation_per_run_gives_no_steps_answer():
    runs = [
        RunRecord(
            name, "finished", {"lora_r": rank}, {"eval/rougeL": top}, [{"train/global_step": 200, "eval/rougeL": top}]
        )
        for name, rank, top in (("a", 8, 12.0), ("b", 16, 11.0))
    ]
    steps = answers_of(sweep_of(runs, {"lora_r": {"values": [8, 16]}})).questions["steps"]
    assert steps.answer is None and "fewer than two evaluations" in steps.reason


# the recommendation


def test_the_recommendation_is_the_lightest_stable_run_within_the_tolerance_of_the_winner():
    answers = answers_of(rank_sweep({4: 12.0, 8: 14.0, 16: 14.2, 32: 14.25}))  # one run each: no noise estimate
    assert answers.tolerance == MIN_GAIN
    assert (answers.winner.run_id, answers.recommended.run_id) == ("r32", "r8")
    assert answers.why_recommended == (
        "within 0.3 eval/rougeL of the winner r32 (lead 0.25) and lighter: 8.0k trainable parameters against 32.0k"
    )


def test_an_unstable_light_run_is_passed_over_and_nothing_close_keeps_the_winner():
    runs = [
        run("heavy", {"lora_r": 32}, 14.0, summary={"train/trainable_params": 32000}),
        run("light", {"lora_r": 8}, 13.9, summary={"train/trainable_params": 8000}, spike_at=100),
        run("far", {"lora_r": 4}, 12.0, summary={"train/trainable_params": 4000}),
    ]
    answers = answers_of(sweep_of(runs, {"lora_r": {"values": [4, 8, 32]}}))
    assert answers.recommended is answers.winner and answers.why_recommended == ""


def test_best_yaml_holds_the_recommendation_and_names_the_raw_winner_and_its_lead():
    findings = assess(rank_sweep({4: 12.0, 8: 14.0, 16: 14.2, 32: 14.25}))
    header, body = findings.best_yaml.split("# Rerun or promote it with: python -m agent.train --config best.yaml\n")
    assert header.startswith("# Recommended configuration of sweep sw: run r8, eval/rougeL = 14.0000\n")
    assert "# The raw winner is run r32 (eval/rougeL = 14.2500)" in header and "lead 0.25" in header
    assert yaml.safe_load(body) == {"lora_r": 8, "max_steps": 200}


# next.yaml


def test_next_yaml_fixes_settled_values_extends_an_edge_confirms_with_seeds_and_validates(tmp_path):
    runs = [
        run(f"r{rank}-{lr}", {"lora_r": rank, "learning_rate": lr, "target_modules": modules}, top, speed=50,
            summary={"train/trainable_params": rank * (2 if modules == "qkvo" else 1) * 1000})
        for rank, lr, modules, top in [
            (8, 1e-4, "qv", 11.0), (16, 1e-4, "qv", 11.1), (32, 1e-4, "qv", 11.2),
            (8, 1e-3, "qv", 14.0), (16, 1e-3, "qv", 14.1), (32, 1e-3, "qv", 14.2),
            (8, 1e-3, "qkvo", 14.1), (16, 1e-3, "qkvo", 14.15), (32, 1e-3, "qkvo", 14.25),
        ]
    ]  # fmt: skip
    parameters = {
        "lora_r": {"values": [8, 16, 32]},
        "learning_rate": {"values": [1e-4, 1e-3]},
        "target_modules": {"values": ["qv", "qkvo"]},
        "model_name_or_path": {"value": "builtin:tiny-llama"},
    }
    findings = assess(sweep_of(runs, parameters))
    assert findings.answers.recommended.run_id == "r8-0.001"  # qv, rank 8: within 0.25 of r32 qkvo
    text = findings.next_yaml
    body = [line for line in text.splitlines() if not line.startswith("#")]
    assert all("  # " in line for line in body), "every line says why"
    config = yaml.safe_load(text)
    assert config["method"] == "grid" and config["metric"] == {"name": "eval/rougeL", "goal": "maximize"}
    params = config["parameters"]
    assert params["lora_r"] == {"values": [8, 32]}  # the recommended and the winner, within noise
    assert params["target_modules"] == {"values": ["qv", "qkvo"]}
    assert params["learning_rate"] == {"values": [0.001, 0.00316, 0.01]}  # at the top edge: beyond it, log-spaced
    assert params["model_name_or_path"] == {"value": "builtin:tiny-llama"}
    assert params["seed"] == {"values": [0, 1, 2]}
    assert params["max_steps"] == {"value": 100}  # plateau at 50, plus 2 evaluations of 25 steps
    assert params["plateau_patience"] == {"value": 2} and params["plateau_threshold"] == {"value": MIN_GAIN}
    path = tmp_path / "next.yaml"
    path.write_text(text)
    assert load_valid_sweep(str(path))["parameters"] == params


def test_next_yaml_settles_a_clear_winner_with_one_seed():
    runs = [run("a", {"target_modules": "qv"}, 12.0), run("b", {"target_modules": "qkvo"}, 14.0)]
    params = yaml.safe_load(assess(sweep_of(runs, MODULES)).next_yaml)["parameters"]
    assert params["target_modules"] == {"value": "qkvo"} and params["seed"] == {"value": 0}
