"""Metrics from a run as it writes them, through W&B's public CLI: no change to the program.

`wandb leet inspect --follow --json RUN_FILE` prints one JSON object per record of the run's
`.wandb` log as it is written and exits after the run's `exit` record; `--summary --json` prints
one object with the run's state, summary, config and console tail. We read only these documented
outputs, never the log's binary format. Checked against wandb 0.31 (setup.cfg pins <0.32;
tests/test_local_metrics.py runs a real offline run through both commands).

What we take from the stream: `{"type": "history", "history": {"item": {...}}}` rows (what the
program passed to `wandb.log`, plus `_step`, `_runtime`, `_timestamp`) and
`{"type": "exit", "exit": {"exit_code": N}}`, and whether the log holds a `{"type": "preempting"}`
record (`run.mark_preempting()`: the run asks to be requeued if it dies).
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.util import get_core_path

from agent.env_vars import CLAIM_ENV
from agent.local.processes import signal_group, start_child
from agent.records import Objective

_AGGREGATES = ("max", "min", "last", "mean", "first", "best")


def inspect_command(run_file: Path, *flags: str) -> list[str]:
    """`wandb leet inspect FLAGS RUN_FILE`, as the argv that command itself runs.

    `wandb leet` is a thin Python wrapper that starts W&B's `wandb-core leet inspect` binary as
    its child and waits. We start that binary ourselves with the arguments the wrapper builds
    (`wandb/cli/leet.py`, offline: `--no-observability`, then `--run-file FILE WANDB_DIR`): one
    process instead of two, and one that dies with the agent, which a grandchild would not."""
    run_file = Path(run_file).resolve()
    if run_file.is_dir():  # a run folder, as `wandb leet inspect` also takes it
        run_file = next(run_file.glob("*.wandb"), run_file)
    return [
        get_core_path(),
        "leet",
        "inspect",
        "--no-observability",
        *flags,
        "--run-file",
        str(run_file),
        str(run_file.parent.parent),
    ]


def inspector_env(base_env: Mapping[str, str] | None) -> dict[str, str]:
    """Reading a local file needs no server: keep the inspector from reaching for one. It reads the
    launch's log but is not the launch's: it does not carry the claim's mark."""
    env = {**(base_env or {}), "WANDB_MODE": "offline", "WANDB_ERROR_REPORTING": "false"}
    env.pop(CLAIM_ENV, None)
    return env


@dataclass(frozen=True)
class _StreamEnd:
    """What the reader thread saw in the whole stream, handed over once when the stream ends."""

    exit_code: int | None
    preempting: bool


class HistoryFollower:
    """Streams a live run's history rows from `wandb leet inspect --follow --json`.

    Its reader thread alone reads the inspector's output: rows go to a queue, and what the stream
    says about the run's end goes to the agent's thread once, through `_stream_ended` (the values
    first, then the event). `exit_code` and `preempting` belong to the agent's thread, set by
    `close()`."""

    def __init__(self, run_file: Path, env: Mapping[str, str] | None = None):
        self.run_file = run_file
        self.env = inspector_env(env)
        self.exit_code: int | None = None
        """The exit code in the run's exit record; None until `close()`, and when it has none."""
        self.preempting = False
        """The run called `mark_preempting()`: if it dies, it wants to be requeued. Known at `close()`."""
        self._seen_steps: set[Any] = set()
        self._rows: queue.Queue[dict[str, Any]] = queue.Queue()
        self._stream_end: _StreamEnd | None = None
        self._stream_ended = threading.Event()
        self._process = start_child(
            inspect_command(run_file, "--follow", "--json"),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            env=self.env,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        exit_code, preempting = None, False
        try:
            for line in self._process.stdout:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if record.get("type") == "history":
                    self._rows.put(record["history"].get("item", {}))
                elif record.get("type") == "exit":
                    exit_code = record["exit"].get("exit_code", 0)
                elif record.get("type") == "preempting":
                    preempting = True
        finally:
            self._stream_end = _StreamEnd(exit_code, preempting)
            self._stream_ended.set()

    def close(self, timeout_s: float) -> list[dict[str, Any]]:
        """The rows not yet taken, up to the end of the log.

        The inspector stops by itself after the run's exit record, so give it `timeout_s` to get
        there. A killed run never writes one: then stop following and read the finished log once
        (`inspect --json` without --follow stops at its end) for whatever the stream had not shown.
        What the stream said about the run's end counts only once its reader has handed it over;
        a reader still stuck after the join says nothing, and the log is read once instead.
        """
        try:
            self._process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass
        self.stop()
        self._reader.join(timeout=5)
        rows = self.new_rows()
        if self._stream_ended.is_set():
            self.exit_code, self.preempting = self._stream_end.exit_code, self._stream_end.preempting
        if self.exit_code is None:
            records = read_records(self.run_file, self.env)
            self.preempting = self.preempting or any(record.get("type") == "preempting" for record in records)
            exits = [record["exit"].get("exit_code", 0) for record in records if record.get("type") == "exit"]
            self.exit_code = exits[-1] if exits else None
            history = [record["history"].get("item", {}) for record in records if record.get("type") == "history"]
            rows += [row for row in history if row.get("_step") not in self._seen_steps]
        return rows

    def stop(self) -> None:
        """End the inspector now; safe to call twice, and on every way out of a run."""
        if self._process.poll() is None:
            signal_group(self._process.pid, signal.SIGKILL)
            self._process.wait()

    def new_rows(self) -> list[dict[str, Any]]:
        rows = []
        while True:
            try:
                rows.append(self._rows.get_nowait())
            except queue.Empty:
                self._seen_steps.update(row.get("_step") for row in rows)
                return rows


def _inspect(run_file: Path, env: Mapping[str, str] | None, timeout_s: float, *flags: str) -> str:
    """The output of one `inspect` that ends by itself; OSError or TimeoutExpired if it cannot."""
    process = start_child(
        inspect_command(run_file, *flags),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=inspector_env(env),
    )
    with process:
        try:
            return process.communicate(timeout=timeout_s)[0]
        except subprocess.TimeoutExpired:
            process.kill()
            raise


def read_records(run_file: Path, env: Mapping[str, str] | None = None, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """Every record of a log as it stands now, as `inspect --json` prints them (none if it cannot
    be read in time)."""
    try:
        output = _inspect(run_file, env, timeout_s, "--json")
    except (OSError, subprocess.TimeoutExpired):
        return []
    records = []
    for line in output.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return [record for record in records if isinstance(record, dict)]


@dataclass(frozen=True)
class SummaryRead:
    """What reading a finished run's summary gave: the summary, or why it could not be read."""

    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    """Why the summary could not be read; then `summary` is empty, not the run's."""


def read_summary(run_file: Path, env: Mapping[str, str] | None = None, timeout_s: float = 60.0) -> SummaryRead:
    """The run's summary from `wandb leet inspect --summary --json`."""
    try:
        data = json.loads(_inspect(run_file, env, timeout_s, "--summary", "--json"))
    except subprocess.TimeoutExpired:
        return SummaryRead(error=f"`wandb leet inspect --summary` took over {timeout_s:g}s")
    except OSError as error:
        return SummaryRead(error=f"`wandb leet inspect --summary` could not start: {error}")
    except json.JSONDecodeError:
        return SummaryRead(error="`wandb leet inspect --summary` printed no summary")
    if not isinstance(data, dict):
        return SummaryRead(error="`wandb leet inspect --summary` printed no summary")
    return SummaryRead(summary=data.get("summary") or {})


def flatten_summary(summary: dict[str, Any], objective: Objective) -> dict[str, Any]:
    """Plain numbers for metrics whose summary the program defined (`define_metric(summary="max")`
    stores `{"max": 9.1}`): the objective takes the extremum of the sweep's goal, as W&B's
    dashboard and `best_run()` read it; other metrics take their last value, or their only one."""
    extremum = "max" if objective.maximize else "min"
    flat = {}
    for key, value in summary.items():
        if isinstance(value, dict) and value and set(value) <= set(_AGGREGATES):
            if key == objective.name and extremum in value:
                value = value[extremum]
            elif "last" in value:
                value = value["last"]
            elif len(value) == 1:
                value = next(iter(value.values()))
        flat[key] = value
    return flat
