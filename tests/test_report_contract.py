"""Contract test: the W&B path of the review (`fetch_wandb_sweep`, `lora-sweep report ENTITY/PROJECT/ID`)
through wandb 0.31's real public-API classes.

Boundary faked, and why: W&B's server cannot be reached from tests. The fake (tests/wandb_backend.py)
replaces only the connection from wandb's Python API to wandb-core, the process that talks to the
server; `wandb.Api().sweep`, the paged `Runs`, lazy run loading, the summary object and
`scan_history` are wandb's own code. Runs are served as W&B stores them: config entries wrapped as
`{value, desc}`, with the 100+ keys transformers' callback adds and `_wandb`.
"""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner
from wandb_backend import FakeServer, StoredRun, fresh_wandb_settings, serve

from agent.cli import main
from agent.review.fetch import fetch_wandb_sweep, is_wandb_path
from agent.review.report import write_review

SWEEP_CONFIG = {
    "method": "grid",
    "metric": {"name": "eval/rougeL", "goal": "maximize"},
    "parameters": {
        "learning_rate": {"values": [1e-4, 1e-3]},
        "model_name_or_path": {"value": "builtin:tiny-llama"},
        "lora_r": {"values": [4, 8, 16]},
    },
    "command": ["${env}", "${interpreter}", "-m", "agent.train", "${args}"],
}


def stored_run(index: int, learning_rate: float, lora_r: int) -> StoredRun:
    best = 10 + 5 * (learning_rate > 5e-4) + lora_r / 8 + index / 100
    history = [{"_step": 0, "train/global_step": 0, "eval/rougeL": 7.0, "_runtime": 1.0}]
    history += [{"_step": 1, "train/global_step": 10, "train/loss": 2.5, "train/learning_rate": learning_rate}]
    history += [{"_step": 2, "train/global_step": 20, "train/loss": 2.0 - lora_r / 100}]
    history += [{"_step": 3, "train/global_step": 20, "eval/rougeL": best, "eval/gen_len": 14.0}]
    summary = {
        "eval/rougeL": best,
        "final/rougeL": best - 1,
        "train/tokens_per_s": 900.0 + index,
        "gpu/peak_allocated_gb": 3.5 + lora_r / 100,
        "_runtime": 120.0 + index,
        "_step": 3,
        "_wandb": {"runtime": 121},
        "eval/samples": {"_type": "table-file", "path": "media/table/eval/samples.table.json", "ncols": 4},
    }
    params = {"learning_rate": learning_rate, "model_name_or_path": "builtin:tiny-llama", "lora_r": lora_r}
    return StoredRun(f"run{index:02d}", "finished", params, summary, history)


def twelve_runs() -> list[StoredRun]:
    """Two pages of runs (the public API pages a sweep's runs by 10), one of them crashed."""
    points = [(lr, r) for lr in (1e-4, 1e-3) for r in (4, 8, 16)] * 2
    runs = [stored_run(index, lr, r) for index, (lr, r) in enumerate(points)]
    runs[11].state, runs[11].summary = "crashed", {"_runtime": 5.0}
    return runs


def test_report_reads_a_wandb_sweep_through_the_real_public_api(tmp_path, monkeypatch):
    server = FakeServer("team", "lora", "sw33p", SWEEP_CONFIG, twelve_runs())
    core = serve(monkeypatch, server)
    result = CliRunner().invoke(main, ["report", "team/lora/sw33p", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    # The best run: learning rate 1e-3, rank 16, the later of its two seeds (index 11 crashed, so 5).
    assert "Sweep team/lora/sw33p: 11 of 12 runs finished" in result.output
    assert "Winner: run05 with eval/rougeL = 17.05" in result.output
    best = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert best == {"learning_rate": 0.001, "model_name_or_path": "builtin:tiny-llama", "lora_r": 16}
    # Only the sweep's parameters reach the table, not transformers' 100+ config keys.
    header = result.output.split("\n\n")[1].splitlines()[0].split()
    assert header[:4] == ["run", "learning_rate", "lora_r", "eval/rougeL"]
    assert "loss.png" in result.output and "gpu_memory.png" in result.output
    assert (tmp_path / "report.html").exists()
    operations = [query.split("(")[0].split()[-1] for query, _ in core.graphql]
    assert operations.count("Runs") == 2  # both pages were read


def test_a_wandb_run_becomes_a_run_record_as_a_local_run_does(tmp_path, monkeypatch):
    serve(monkeypatch, FakeServer("team", "lora", "sw33p", SWEEP_CONFIG, twelve_runs()))
    sweep = fetch_wandb_sweep("team/lora/sw33p")
    assert sweep.sweep_id == "team/lora/sw33p" and sweep.config == SWEEP_CONFIG
    first = sweep.runs[0]
    assert (first.run_id, first.state, first.runtime_s) == ("run00", "finished", 120.0)
    assert (first.config["learning_rate"], first.config["lora_r"]) == (1e-4, 4)
    assert not [key for key in first.config if key.startswith("_")]  # W&B's own keys (`_wandb`) dropped
    assert "eval/samples" not in first.summary and "_wandb" not in first.summary  # media and W&B's own are no metrics
    # The evaluations, then the training-loss rows: the two scans the review asks for.
    assert [(row["train/global_step"], row.get("eval/rougeL"), row.get("train/loss")) for row in first.history] == [
        (0, 7.0, None),
        (20, pytest.approx(10.5), None),
        (10, None, 2.5),
        (20, None, pytest.approx(1.96)),
    ]
    # Everything after fetching is the local path's code: ranked best first, the crashed run last.
    results = write_review(sweep, tmp_path).findings.results
    assert (results.runs[0].run_id, results.runs[-1].run_id, results.runs[-1].state) == ("run05", "run11", "crashed")
    assert results.runs[0].curve == [(0.0, 7.0), (20.0, pytest.approx(17.05))]


def test_wandb_paths_are_told_from_local_ids():
    assert is_wandb_path("team/lora/sw33p")
    assert not is_wandb_path("sw33p")
    assert not is_wandb_path("lora/sw33p")
    assert not is_wandb_path("team//sw33p")


def test_report_command_without_wandb_login_fails_in_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc credentials
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    fresh_wandb_settings(monkeypatch)  # as a fresh `lora-sweep report`, not what an earlier test left
    result = CliRunner().invoke(main, ["report", "team/lora/sw33p", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: cannot read W&B sweep team/lora/sw33p: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "wandb login" in result.stderr  # the missing login itself, not a failed check of a stale key


def test_a_failing_page_of_runs_is_one_line(tmp_path, monkeypatch):
    serve(monkeypatch, FakeServer("team", "lora", "sw33p", SWEEP_CONFIG, twelve_runs(), failing_runs_page=1))
    result = CliRunner().invoke(main, ["report", "team/lora/sw33p", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "Error: cannot read W&B sweep team/lora/sw33p: returned error 502 Bad Gateway: upstream connect error\n"
    )
    assert not (tmp_path / "out").exists()


def test_a_failing_history_scan_is_one_line(tmp_path, monkeypatch):
    serve(monkeypatch, FakeServer("team", "lora", "sw33p", SWEEP_CONFIG, twelve_runs(), failing_history_run="run03"))
    result = CliRunner().invoke(main, ["report", "team/lora/sw33p", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: cannot read W&B sweep team/lora/sw33p: failed to read run history: context deadline exceeded\n"
    )


def test_an_unknown_sweep_is_one_line(tmp_path, monkeypatch):
    serve(monkeypatch, FakeServer("team", "lora", "sw33p", SWEEP_CONFIG, twelve_runs()))
    result = CliRunner().invoke(main, ["report", "team/lora/nope", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: cannot read W&B sweep team/lora/nope: Could not find sweep")
    assert len(result.stderr.splitlines()) == 1
