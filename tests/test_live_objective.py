"""While a run trains, its summary holds the objective as a plain number: the best evaluation so far.

W&B's parallel coordinates, importance panel and runs table read the summary; a run whose summary
holds nothing (or `{"max": x}`) under the metric's name is left off them, and a sweep's running,
crashed and preempted runs would be. W&B's Bayesian search takes the best of the history and the
summary (`SweepRun.metric_extremum`), and hyperband reads the history only, so a summary that is the
best of the history keeps them all agreeing.

A real offline trial is read back while it runs with `wandb leet inspect --summary`, as the local
controller reads runs.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from helpers import agent_env

from agent.local import metrics
from agent.local.launch import find_run_file
from agent.records import OBJECTIVE, STEP_KEY, is_number

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_leaked_processes")]

DEADLINE_S = 300


def test_a_run_in_progress_has_its_best_objective_as_a_number_in_its_summary(tmp_path, dialogues, tiny_model_dir):
    argv = [sys.executable, "-m", "agent.train", "--model_name_or_path=builtin:tiny-llama", f"--dataset={dialogues}"]
    argv += ["--max_steps=2000", "--eval_steps=2", "--eval_subset_size=4", "--max_new_tokens=16", "--logging_steps=2"]
    argv += ["--learning_rate=3e-3"]
    env = agent_env(WANDB_DIR=str(tmp_path), WANDB_RUN_ID="live1")
    started = time.time()
    program = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        read = wait_for_evaluations(tmp_path, program, started, count=3)
        assert read["state"] == "running"
        best = read["summary"][OBJECTIVE]
        assert is_number(best)  # a plain number, not {"max": ...}
        run_file = find_run_file(tmp_path / "wandb", "live1", frozenset())  # a new run id: no earlier folder
        history = [
            record["history"]["item"]
            for record in metrics.read_records(run_file, agent_env())
            if record.get("type") == "history"
        ]
        logged = [row[OBJECTIVE] for row in history if OBJECTIVE in row and row[STEP_KEY] <= read["summary"][STEP_KEY]]
        assert len(logged) >= 3 and best == max(logged)  # the best so far, not the last
    finally:
        program.send_signal(signal.SIGTERM)  # preempted: it stops at the next step and exits 143
        program.communicate(timeout=120)


def wait_for_evaluations(folder, program, started: float, count: int) -> dict:
    """What `wandb leet inspect --summary --json` prints once the run has logged `count` evaluations
    (the baseline at step 0 is the first): its state and summary."""
    while time.time() - started < DEADLINE_S:
        assert program.poll() is None, program.stderr.read().decode()[-3000:]
        run_file = find_run_file(folder / "wandb", "live1", frozenset())
        if run_file is not None:
            inspect = [sys.executable, "-m", "wandb", "leet", "inspect", "--summary", "--json", str(run_file.parent)]
            printed = subprocess.run(inspect, env=agent_env(), capture_output=True, text=True, timeout=60)
            read = json.loads(printed.stdout)
            step = read["summary"].get(STEP_KEY)
            if OBJECTIVE in read["summary"] and is_number(step) and step >= 2 * (count - 1):
                return read
        time.sleep(1)
    raise AssertionError(f"no {count} evaluations within {DEADLINE_S}s")
