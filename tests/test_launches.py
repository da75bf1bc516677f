"""A run's launches: what each way a launch ends leaves in `launches.json`, the mirror and the summary.

The run is a real W&B run, offline; the mirror is our own interface (`CheckpointMirror`), recorded
here to count what is pushed and how long the ledger waited.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import wandb

from agent.records import FAILURE_REASON_KEY, GAVE_UP, LAUNCH_NUMBER_KEY, LAUNCH_OUTCOME_KEY
from agent.trial.checkpoint import EARLIER_LAUNCHES_FILE, LAUNCHES_FILE, read_launches
from agent.trial.checkpoint_artifact import NoMirror
from agent.trial.launches import LaunchLedger, begin_launch, end_launch


class RecordingMirror(NoMirror):
    def __init__(self, push_finishes: bool = True):
        self.pushes: list[list[str]] = []  # the outcomes in launches.json at each push
        self.waits: list[float | None] = []
        self.push_finishes = push_finishes

    def push(self, folder: Path) -> None:
        self.pushes.append([launch["outcome"] for launch in read_launches(folder)])

    def wait(self, timeout_s: float | None = None) -> bool:
        self.waits.append(timeout_s)
        return self.push_finishes


@pytest.fixture
def run(tmp_path):
    run = wandb.init(id="ledger", dir=str(tmp_path), mode="offline")
    yield run
    run.finish()


def ledger_after(folder: Path, run, earlier: list[str], mirror: RecordingMirror, max_attempts: int = 3):
    for outcome in earlier:
        begin_launch(folder)
        if outcome != "running":  # "running": the launch died without a word
            end_launch(folder, outcome, "RuntimeError: boom" if outcome == "failed" else "")
    return LaunchLedger.begin(folder, run, mirror, max_attempts)


@pytest.mark.parametrize(
    "ending, earlier, recorded, summary_outcome, reason",
    [
        ("ended", [], "finished", "finished", None),
        ("stopped", [], "stopped", "stopped", None),
        ("preempted", ["preempted"], "preempted", "preempted", None),
        ("failed", [], "failed", "failed", "ValueError: bad"),
        ("failed", ["failed", "running"], "failed", "failed", "failed on launch 3, the last of max_attempts=3: "),
        ("give_up", ["failed", "running", "failed"], "failed", GAVE_UP, "gave up after 3 failed launches"),
    ],
)
def test_each_ending_records_then_pushes_then_writes_the_summary_once(
    tmp_path, run, ending, earlier, recorded, summary_outcome, reason
):
    mirror = RecordingMirror()
    ledger = ledger_after(tmp_path / "folder", run, earlier, mirror)
    assert run.summary[LAUNCH_NUMBER_KEY] == len(earlier) + 1
    assert mirror.pushes == [[*earlier, "running"]]  # the count itself is pushed when the launch begins
    match ending:
        case "ended":
            ledger.ended(stopped=False)
        case "stopped":
            ledger.ended(stopped=True)
        case "preempted":
            ledger.preempted(lambda: 2.5)
        case "failed":
            ledger.failed(ValueError("bad\nsecond line"))
        case "give_up":
            assert ledger.exhausted
            ledger.give_up()
    assert mirror.pushes[1:] == [[*earlier, recorded]]  # one push, after the outcome is on disk
    assert run.summary[LAUNCH_OUTCOME_KEY] == summary_outcome
    if reason is None:
        assert FAILURE_REASON_KEY not in run.summary.keys()
    else:
        assert run.summary[FAILURE_REASON_KEY].startswith(reason)
    if ending == "preempted":
        assert mirror.waits[-2:] == [2.5, 2.5]  # never past the grace (marking preempting: test_preemption.py)
    else:
        assert mirror.waits[-1] is None


def test_a_preemption_abandons_a_push_still_under_way_at_the_end_of_the_grace(tmp_path, run):
    mirror = RecordingMirror(push_finishes=False)
    ledger = ledger_after(tmp_path / "folder", run, [], mirror)
    ledger.preempted(lambda: -1.0)  # the grace is already over
    assert mirror.pushes == [["running"]]  # the outcome's push is not started
    assert mirror.waits[-1] == 0.0
    assert read_launches(tmp_path / "folder")[-1]["outcome"] == "preempted"  # on disk all the same


def test_a_run_folder_from_before_the_rename_is_counted_and_its_file_replaced(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    earlier = [
        {"number": 1, "outcome": "failed", "reason": "RuntimeError: boom"},
        {"number": 2, "outcome": "preempted"},
    ]
    (folder / EARLIER_LAUNCHES_FILE).write_text(json.dumps(earlier))
    launch = begin_launch(folder)
    assert (launch.number, launch.failures_before, launch.last_failure) == (3, 1, "RuntimeError: boom")
    assert not (folder / EARLIER_LAUNCHES_FILE).exists()
    assert [a["outcome"] for a in json.loads((folder / LAUNCHES_FILE).read_text())] == [
        "failed",
        "preempted",
        "running",
    ]
