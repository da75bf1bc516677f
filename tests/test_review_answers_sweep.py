"""The six answers end to end: a local grid run by `lora-sweep agent`, whose stand-in program logs
curves of known shape through wandb (tests/programs/lora_curves.py), then `lora-sweep report`.
Every key of answers.json, best.yaml and next.yaml is checked against what the curves were made
to say, and `lora-sweep validate` accepts next.yaml.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from helpers import run_cli

from agent.local.store import Store

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_leaked_processes")]

PROGRAMS = Path(__file__).parent / "programs"
SWEEP = {
    "program": str(PROGRAMS / "lora_curves.py"),
    "method": "grid",
    "metric": {"name": "eval/rougeL", "goal": "maximize"},
    "parameters": {
        "lora_r": {"values": [8, 32]},
        "learning_rate": {"values": [1.0e-4, 1.0e-3]},
        "target_modules": {"values": ["qv", "qkvo"]},
        "max_steps": {"value": 160},
        "eval_steps": {"value": 20},
        "logging_steps": {"value": 10},
        "per_device_train_batch_size": {"value": 8},
    },
}


@pytest.fixture(scope="module")
def review(tmp_path_factory) -> tuple[Path, dict, dict[str, str]]:
    """The report folder, answers.json, and run ids by (lora_r, learning_rate, target_modules)."""
    work = tmp_path_factory.mktemp("answers")
    (work / "sweep.yaml").write_text(yaml.safe_dump(SWEEP))
    created = run_cli("sweep", "sweep.yaml", "--local", cwd=work)
    assert created.returncode == 0, created.stderr
    sweep_id = re.search(r"Created local sweep (\w+)", created.stdout).group(1)
    ran = run_cli("agent", sweep_id, cwd=work, timeout=600)
    assert ran.returncode == 0, ran.stderr[-3000:]
    report = run_cli("report", sweep_id, "--out", "review", cwd=work, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    runs = Store(work / ".lora-sweep" / "sweeps.db").sweep_record(sweep_id).runs
    ids = {(r.config["lora_r"], r.config["learning_rate"], r.config["target_modules"]): r.run_id for r in runs}
    assert len(ids) == 8 and all(r.state == "finished" for r in runs)
    out = work / "review"
    return out, json.loads((out / "answers.json").read_text()), ids, report.stdout


def test_answers_json_holds_every_documented_key_with_the_values_the_curves_were_made_to_give(review):
    _, answers, ids, _ = review
    questions = answers["questions"]
    assert answers["tolerance"] == 0.3
    assert questions["rank"]["sufficient"] == 8  # 14.0 at rank 8 against 14.2 at 32
    assert [step["gain"] for step in questions["rank"]["gain_per_step"]] == [pytest.approx(0.2)]
    assert questions["learning_rate"]["fastest"] == 1e-3
    assert questions["learning_rate"]["fastest_is_stable"] is False  # rank 32 with qv spikes at 1e-3
    assert questions["target_modules"]["justified"] is False  # qkvo gains 0.1
    assert questions["target_modules"]["extra_gb"] == pytest.approx(1.0)
    assert questions["target_modules"]["gain"] == pytest.approx(0.1)
    assert questions["loss"]["unstable_runs"] == [ids[(32, 1e-3, "qv")]]
    assert questions["loss"]["spikes"] == {ids[(32, 1e-3, "qv")]: [100.0]}
    memory = questions["memory"]
    assert (memory["total_gb"], memory["peak_gb"]) == (24.0, pytest.approx(8.6))
    assert memory["headroom_gb"] == pytest.approx(15.4)
    assert (memory["batch_size"], memory["largest_batch"]) == (8, 34)  # (24 - 4) / ((8.6 - 4) / 8) = 34.8
    steps = questions["steps"]
    assert steps["plateau_step_by_value"]["learning_rate"] == {"0.0001": 120.0, "0.001": 40.0}
    assert steps["plateau_step_by_value"]["lora_r"] == {"8": 80.0, "32": 80.0}
    assert steps["suggested_max_steps"] == 80  # the leaders plateau at 40, plus 2 evaluations of 20 steps
    for answer in questions.values():
        assert isinstance(answer["answer"], str) and "reason" not in answer
    assert answers["winner"] == {"run_id": ids[(32, 1e-3, "qkvo")], "objective": pytest.approx(14.3)}
    recommended = answers["recommended"]
    assert recommended["run_id"] == ids[(8, 1e-3, "qv")] and recommended["objective"] == pytest.approx(14.0)
    assert {name: recommended["params"][name] for name in ("lora_r", "learning_rate", "target_modules")} == {
        "lora_r": 8,
        "learning_rate": 1e-3,
        "target_modules": "qv",
    }


def test_best_yaml_holds_the_lighter_run_and_names_the_winner(review):
    out, answers, ids, _ = review
    text = (out / "best.yaml").read_text()
    assert text.startswith(f"# Recommended configuration of sweep {answers['sweep_id']}: run {ids[(8, 1e-3, 'qv')]}")
    assert f"# The raw winner is run {ids[(32, 1e-3, 'qkvo')]} (eval/rougeL = 14.3000)" in text
    assert "8.0k trainable parameters against 64.0k" in text
    assert yaml.safe_load(text) == {**answers["recommended"]["params"]}


def test_next_yaml_is_a_valid_sweep_that_confirms_the_leaders_and_stops_at_the_plateau(review):
    out, _, _, _ = review
    config = yaml.safe_load((out / "next.yaml").read_text())
    params = config["parameters"]
    assert params["lora_r"] == {"values": [8, 32]} and params["target_modules"] == {"values": ["qv", "qkvo"]}
    assert params["learning_rate"] == {"values": [0.001, 0.00316, 0.01]}
    assert params["max_steps"] == {"value": 80} and params["seed"] == {"values": [0, 1, 2]}
    assert params["plateau_patience"] == {"value": 2} and params["plateau_threshold"] == {"value": 0.3}
    assert params["eval_steps"] == {"value": 20}
    validated = run_cli("validate", str(out / "next.yaml"))
    assert validated.returncode == 0, validated.stderr
    assert "valid, a grid of 36 runs" in validated.stdout  # 2 ranks x 3 rates x 2 module sets x 3 seeds


def test_the_answers_reach_the_terminal_the_summary_and_the_page(review):
    out, answers, _, stdout = review
    sentences = [answer["answer"] for answer in answers["questions"].values()]
    summary, page = (out / "summary.md").read_text(), (out / "report.html").read_text()
    assert "## Answers" in summary and 'id="answers"' in page
    for sentence in sentences:
        assert sentence in stdout and sentence in summary
    assert all(name in page for name in ("figure-grouped_curves", "figure-grouped_loss", "figure-memory_tradeoff"))
    assert (out / "grouped_loss.png").exists() and (out / "curves.png").exists()  # 8 runs: per-run figures too
