"""The prepared GPU benchmark runs end to end on this CPU, in its --dry-run sizes: the tiny shape,
a few steps, a sweep through the real `lora-sweep agent --agents-per-gpu 2` and local controller."""

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
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    assert "| padded (today) |" in out and "| padding-free |" in out
    assert "| 2 | " in out and "| 2/2 |" in out  # both trials finished under two agents on one GPU id
    assert "| 8/8 |" in out  # the static cache predicted what the dynamic one did
    first_rows = [rows[i + 1] for i, row in enumerate(rows) if row.startswith(("| setup", "| agents", "| cache"))]
    assert len(first_rows) == 3 and all("| 1.00x |" in row for row in first_rows), out
