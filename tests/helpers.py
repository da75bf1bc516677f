"""The one set of helpers the tests share: the offline W&B environment, the CLI and programs as real
subprocesses, what a run left on disk, the figures' plotly data, and local sweeps in a temporary store
with agents as real processes (so signals and concurrency are real)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from agent.local.controller import sweeps  # imported there with its pydantic warning silenced
from agent.local.store import Store

REPO = Path(__file__).resolve().parents[1]
PROGRAMS = Path(__file__).parent / "programs"
PYTHON_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]

# Every process these tests start, and everything those start, inherits this mark in its
# environment, so a test can find whatever was left running (`marked_processes`).
MARK_VAR = "LORA_SWEEP_TEST_MARK"
MARK = uuid.uuid4().hex


def agent_env(**extra: str) -> dict[str, str]:
    """The environment of every process a test starts: W&B offline and silent, this checkout importable,
    no store chosen by the caller's shell, and this session's mark.

    `${interpreter}` is the literal `python` on PATH, as under `wandb agent`: ours comes first.
    """
    env = dict(os.environ)
    env.pop("LORA_SWEEP_STORE", None)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(REPO)
    env["WANDB_MODE"] = "offline"
    env["WANDB_SILENT"] = "true"
    env[MARK_VAR] = MARK
    env.update(extra)
    return env


def run_program(
    args: list[str], cwd: Path, timeout: float = 300, env: dict | None = None
) -> subprocess.CompletedProcess:
    """`python ARGS` as an agent launches it, to its end."""
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=agent_env(**(env or {})), capture_output=True, text=True, timeout=timeout
    )


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`lora-sweep ARGS` as a user runs it, so a check covers what reaches the terminal, tracebacks included."""
    return run_program(["-m", "agent.cli", *args], cwd=cwd or Path.cwd(), timeout=timeout)


def assert_one_line(result, *words: str) -> None:
    """A refusal, from a subprocess or click's runner: non-zero, one line on stderr saying `Error: ...` with
    each of `words`, and no traceback."""
    err = result.stderr.strip()
    if isinstance(result, subprocess.CompletedProcess):
        assert result.returncode != 0, result.stdout
    else:  # click's runner: an exception other than click's own exit would be a traceback in a terminal
        assert result.exit_code != 0 and isinstance(result.exception, SystemExit), result.exception
    assert err.splitlines() == [err], err
    assert err.startswith("Error: ") and "Traceback" not in err
    for word in words:
        assert word in err, err


def wandb_run_dir(cwd: Path) -> Path:
    runs = sorted((cwd / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, f"expected one offline run in {cwd}, found {runs}"
    return runs[0]


def inspect_summary(run_dir: Path) -> dict:
    """The run's summary through W&B's public CLI, as the local controller reads it."""
    out = subprocess.run(
        [str(Path(sys.executable).parent / "wandb"), "leet", "inspect", "--summary", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout)


def logged_rows(run_dir: Path) -> list[dict]:
    """The rows the run passed to `wandb.log`, in order, through W&B's public CLI."""
    out = subprocess.run(
        [str(Path(sys.executable).parent / "wandb"), "leet", "inspect", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    records = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    return [record["history"].get("item", {}) for record in records if record.get("type") == "history"]


def plotly_data(page: str, div_id: str) -> list[dict]:
    """The traces a written page hands to Plotly.newPlot for the figure in `div_id`."""
    start = page.index(f'"{div_id}",', page.index("Plotly.newPlot")) + len(div_id) + 3
    data, _ = json.JSONDecoder().raw_decode(page[start:].lstrip())
    return data


def create_sweep(store_path: Path, config: dict) -> str:
    """Register a sweep the way `lora-sweep sweep --local` does, after the engine's schema check."""
    assert sweeps.schema_violations_from_proposed_config(config) == []
    store = Store(store_path)
    try:
        with store.write() as tx:
            return tx.create_sweep(config, project=None, name=None)
    finally:
        store.close()


def record_args_sweep(log: Path, points: list[int], sleep: float = 0.0) -> dict:
    """A grid over `point` of tests/programs/record_args.py, which logs each start and end to `log`
    (a first launch sleeps `sleep` seconds; a requeued one finishes at once)."""
    return {
        "method": "grid",
        "program": str(PROGRAMS / "record_args.py"),
        "command": PYTHON_COMMAND,
        "parameters": {"point": {"values": points}, "log": {"value": str(log)}, "sleep": {"value": sleep}},
    }


def logged_points(log: Path, event: str = "done") -> list[int]:
    """The points record_args.py logged `event` for ("start" or "done"), in order."""
    lines = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return [int(line["args"]["point"]) for line in lines if line["event"] == event]


def runs_of(store_path: Path, sweep_id: str):
    store = Store(store_path)
    try:
        return store.runs(sweep_id)
    finally:
        store.close()


def start_agent(sweep_id: str, store_path: Path, cwd: Path, *flags: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "agent", sweep_id, "--store", str(store_path), *flags],
        cwd=cwd,
        env=agent_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition, timeout_s: float, what: str, interval_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def exited(pid: int) -> bool:
    """Whether the process is gone (a zombie waiting for its parent counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def marked_processes() -> list[str]:
    """Command lines of live processes that carry this session's mark (zombies excluded)."""
    found = []
    for proc in psutil.process_iter(["environ", "status", "cmdline"]):
        # An attribute psutil could not read (another user's process, one gone meanwhile) is None.
        if (proc.info["environ"] or {}).get(MARK_VAR) == MARK and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(" ".join(proc.info["cmdline"] or []))
    return found


def wait_until_no_marked_processes(timeout_s: float = 15.0) -> None:
    """What the tests started must all end, and soon; otherwise name what was left behind."""
    deadline = time.monotonic() + timeout_s
    while (left := marked_processes()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"processes left running: {left}"


@pytest.fixture
def no_leaked_processes():
    """Use in every test that starts agents or programs: nothing may outlive the test."""
    yield
    wait_until_no_marked_processes()


def adapter(folder: Path) -> dict:
    """The LoRA weights a saved adapter or checkpoint folder holds."""
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] == b[key]).all(), f"{key} differs"


class JsonHandler(BaseHTTPRequestHandler):
    """A request handler for the stand-ins of an HTTP API (RunPod's): JSON replies, no access log."""

    def reply(self, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[ThreadingHTTPServer]:
    """`handler` answering on a free loopback port until the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


FLEET_BIN = Path(__file__).parent / "fleet_bin"
"""The strict stand-ins for `pip` and `git` (the package index and git hosts are the boundary)."""
STANDIN_INDEX = {"torch": ["2.8.0"], "lora-sweep": ["0.1.0"]}
"""What the stand-in `pip` finds on its index (STANDIN_PIP_INDEX)."""
SECRET_WANDB_KEY = "0123456789abcdefSECRETwandb0123456789abcdef"


def run_with_standins(*args: str, **env_extra: str):
    """`lora-sweep ARGS` in click's runner, with the stand-ins first on PATH and a W&B key set that
    must never appear in what it prints."""
    from click.testing import CliRunner

    from agent.cli import main

    env = {
        "PATH": f"{FLEET_BIN}{os.pathsep}{os.environ['PATH']}",
        "STANDIN_PIP_INDEX": json.dumps(STANDIN_INDEX),
        "WANDB_API_KEY": SECRET_WANDB_KEY,
        **env_extra,
    }
    done = CliRunner().invoke(main, list(args), env=env, prog_name="lora-sweep")
    assert SECRET_WANDB_KEY not in done.output, "a secret was printed"
    return done
