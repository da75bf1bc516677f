"""The W&B path of the review, fed at the public-API boundary.

W&B's cloud is a network service we cannot reach in tests, so these tests hand the fetcher small
stand-ins for `wandb.Api`, `Sweep` and `Run` shaped exactly like wandb's public API (wandb 0.31,
`wandb/apis/public/{api,sweeps,runs}.py`): `Api.sweep(path)` raises ValueError for an unknown
sweep; `Sweep.config` is the parsed sweep YAML and `Sweep.runs` iterates over `Run`s; `Run.id`,
`Run.state` (lowercase), `Run.config` (values unwrapped, `_wandb` still present), `Run.summary`
(a mapping with `items()`, nested objects for media) and `Run.scan_history(keys=[...])`, which
yields only the rows holding every requested key. These are the only fakes in the test suite.
Everything after fetching is the same code the local path runs.
"""

from __future__ import annotations

import pytest
import wandb
import yaml
from click.testing import CliRunner
from wandb_backend import fresh_wandb_settings

from agent.cli import main
from agent.review.fetch import FetchError, fetch_wandb_sweep, is_wandb_path
from agent.review.report import write_review

SWEEP_CONFIG = {
    "method": "grid",
    "metric": {"name": "eval/rougeL", "goal": "maximize"},
    "parameters": {"lora_r": {"values": [4, 16]}, "learning_rate": {"value": 0.001}},
}


class Run:
    def __init__(self, run_id, state, lora_r, best, history):
        self.id = run_id
        self.state = state
        self.config = {"lora_r": lora_r, "learning_rate": 0.001, "_wandb": {"cli_version": "0.31.0"}}
        self.summary = {"eval/rougeL": best, "_runtime": 90.5, "_step": 9, "predictions": {"_type": "table-file"}}
        self._history = history

    def scan_history(self, keys=None, page_size=1000, min_step=0, max_step=None, use_cache=True):
        return iter([row for row in self._history if all(key in row for key in keys or [])])


class Sweep:
    def __init__(self, runs):
        self.config = SWEEP_CONFIG
        self.runs = runs


class Api:
    def __init__(self, sweeps):
        self.sweeps = sweeps

    def sweep(self, path=""):
        if path not in self.sweeps:
            raise ValueError(f"Could not find sweep <Sweep {path} (Unknown State)>")
        return self.sweeps[path]


def demo_api() -> Api:
    # History rows as W&B stores them: evaluations and training-loss rows interleaved.
    history_a = [
        {"_step": 0, "train/global_step": 0, "eval/rougeL": 7.0},
        {"_step": 1, "train/global_step": 10, "train/loss": 2.5},
        {"_step": 2, "train/global_step": 50, "eval/rougeL": 12.0},
    ]
    history_b = [
        {"_step": 0, "train/global_step": 0, "eval/rougeL": 7.0},
        {"_step": 2, "train/global_step": 50, "eval/rougeL": 15.5},
    ]
    runs = [
        Run("aaa111", "finished", 4, 12.0, history_a),
        Run("bbb222", "finished", 16, 15.5, history_b),
        Run("ccc333", "crashed", 4, None, []),
    ]
    return Api({"team/lora/sw3ep": Sweep(runs)})


def test_wandb_paths_are_told_from_local_ids():
    assert is_wandb_path("team/lora/sw3ep")
    assert not is_wandb_path("sw3ep")
    assert not is_wandb_path("lora/sw3ep")


def test_a_wandb_sweep_becomes_a_sweep_record():
    sweep = fetch_wandb_sweep("team/lora/sw3ep", api=demo_api())
    assert sweep.sweep_id == "team/lora/sw3ep" and sweep.config == SWEEP_CONFIG
    first = sweep.runs[0]
    assert (first.run_id, first.state, first.runtime_s) == ("aaa111", "finished", 90.5)
    assert first.config == {"lora_r": 4, "learning_rate": 0.001}  # W&B's own keys dropped
    assert "predictions" not in first.summary  # media objects are not metrics
    # The evaluations, then the training-loss rows: the two scans the review asks for.
    assert [(row["train/global_step"], row.get("eval/rougeL"), row.get("train/loss")) for row in first.history] == [
        (0, 7.0, None),
        (50, 12.0, None),
        (10, None, 2.5),
    ]


def test_the_wandb_path_writes_the_same_review(tmp_path):
    review = write_review(fetch_wandb_sweep("team/lora/sw3ep", api=demo_api()), tmp_path)
    assert [run.run_id for run in review.findings.results.runs] == ["bbb222", "aaa111", "ccc333"]
    assert review.findings.results.runs[0].curve == [(0.0, 7.0), (50.0, 15.5)]
    assert yaml.safe_load((tmp_path / "best.yaml").read_text()) == {"lora_r": 16, "learning_rate": 0.001}


def test_an_unknown_wandb_sweep_is_one_line(tmp_path):
    with pytest.raises(FetchError, match=r"^cannot read W&B sweep team/lora/nope: Could not find sweep"):
        fetch_wandb_sweep("team/lora/nope", api=demo_api())


def test_report_command_reads_wandb_through_the_public_api(tmp_path, monkeypatch):
    api = demo_api()
    monkeypatch.setattr(wandb, "Api", lambda *args, **kwargs: api)
    result = CliRunner().invoke(main, ["report", "team/lora/sw3ep", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Winner: bbb222 with eval/rougeL = 15.50" in result.output
    assert (tmp_path / "report.html").exists()


def test_report_command_without_wandb_login_fails_in_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc credentials
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    fresh_wandb_settings(monkeypatch)  # as a fresh `lora-sweep report`, not what an earlier test left
    result = CliRunner().invoke(main, ["report", "team/lora/sw3ep", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: cannot read W&B sweep team/lora/sw3ep: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "wandb login" in result.stderr  # the missing login itself, not a failed check of a stale key
