"""Benchmarks run end to end on this CPU in their small sizes. The prepared GPU benchmark in its
--dry-run: the tiny shape, a few steps, a sweep through the real `lora-sweep agent --agents-per-gpu 2`
and local controller. The time-to-answer benchmark in its --quick mode: both of its grids."""

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import agent_env

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.e2e
def test_the_gpu_sweep_benchmark_runs_end_to_end_in_its_dry_run(tiny_model_dir, tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_sweep.py"), "--dry-run", "--agents", "2"],
        cwd=tmp_path, env=agent_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for table in ("1. training", "2. sweep", "3. evaluation"):
        assert table in out, out
    tables = parse_tables(out)
    assert [row["setup"] for row in tables["setup"]] == ["padded (today)", "padding-free"], out
    (sweep,) = [row for row in tables["agents per GPU"] if row["agents per GPU"] == "2"]
    assert sweep["finished"] == "2/2", out  # both trials finished under two agents on one GPU id
    # the static cache predicted what the dynamic one did
    assert any(row["same predictions"] == "8/8" for row in tables["cache"]), out
    ratios = [row["ratio"] for table in tables.values() for row in table]
    assert all(ratio.endswith("x") and float(ratio[:-1]) > 0 for ratio in ratios), out  # each row was measured


def parse_tables(out: str) -> dict[str, list[dict[str, str]]]:
    """Each Markdown table printed, by its first column's name: its rows, as column -> cell."""
    tables: dict[str, list[dict[str, str]]] = {}
    columns = None
    for line in out.splitlines():
        if not line.startswith("|"):
            columns = None
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if columns is None:
            columns = cells
            tables[columns[0]] = []
        elif set(cells) != {"---"}:
            tables[columns[0]].append(dict(zip(columns, cells)))
    return tables


@pytest.mark.e2e
def test_the_time_to_answer_benchmark_runs_both_grids_in_its_quick_mode(tiny_model_dir, tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "time_to_answer.py"), "--quick"],
        cwd=tmp_path, env=agent_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    fixed, plateau = parse_tables(out)["setup"]
    assert fixed["finished"] == "2/2" and plateau["finished"] == "2/2", out
    assert fixed["stopped early"] == "0" and int(plateau["training steps"]) <= int(fixed["training steps"]), out
    assert all(float(row["wall ratio"][:-1]) > 0 for row in (fixed, plateau)), out
    assert "same recommendation: " in out
