"""The local controller under load, with faults: many real agents on one store, some killed, one frozen.

Three scenarios, each on real `lora-sweep agent` processes over a fresh temporary store. The
program is tests/programs/record_args.py: no W&B import, it appends each start and end to one log
in one O_APPEND write, so the log says exactly which points ran to their end, and how often.

  a. a grid of --points worked by --agents; --kills of them SIGKILLed mid-run, at different moments,
     each replaced by a new agent; then the store's write lock held past the heartbeat timeout (as by
     an agent frozen inside a transaction) and meanwhile one agent frozen (SIGSTOP) past the timeout,
     then continued;
  b. a random sweep with run_cap --run-cap worked by --random-agents;
  c. --crowd agents on one store, a grid of --points.

Agents run with the shortest --heartbeat-timeout the CLI allows. For each scenario it checks that
every point finished exactly once (the store holds one finished run per point; the log shows a
point done more than once only for a run whose agent was killed or frozen, never more often than
it was launched), that run_cap holds exactly, that `PRAGMA integrity_check` is ok, that no agent
printed `database is locked` or a traceback, and that nothing it started is left running; then the
controller's overhead per run (claim to record, from the store, minus the bare start-up of the same
program measured here) and runs per second. Exits 1 if any check fails.

    .venv/bin/python benchmarks/controller_soak.py      # --points 500 --agents 8 --kills 3 --run-cap 300 --crowd 16
    .venv/bin/python benchmarks/controller_soak.py --points 40 --agents 4 --kills 1 --run-cap 20 --crowd 6
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from agent.local.launch import prepare_launch
from agent.local.options import MIN_HEARTBEAT_TIMEOUT_S
from agent.local.store import Store

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "tests" / "programs" / "record_args.py"
COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]
HEARTBEAT_TIMEOUT_S = MIN_HEARTBEAT_TIMEOUT_S
MIN_FREEZE_S = HEARTBEAT_TIMEOUT_S + 2.0
"""A frozen agent stays stopped at least this long, and until its run was taken over..."""
MAX_FREEZE_S = 24.0
"""...but no longer than this: frozen inside a write transaction it holds the store's lock, and
the others wait at most 30 s for it (the store's busy timeout)."""
MARK_VAR = "LORA_SWEEP_SOAK_MARK"
"""In the environment of every agent this script starts, and so of everything those start."""
POLL_S = 0.25


# --- what a scenario runs on -------------------------------------------------------------------


def soak_env(workdir: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The agents' environment: W&B offline and silent, this checkout importable, no store chosen by
    the caller's shell, and a mark of this soak, which every process the agents start inherits."""
    env = dict(os.environ if base is None else base)
    env.pop("LORA_SWEEP_STORE", None)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(ROOT)
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=str(workdir))
    env.setdefault(MARK_VAR, uuid.uuid4().hex)
    return env


def grid_config(log: Path, points: int) -> dict:
    return {
        "method": "grid",
        "program": str(PROGRAM),
        "command": COMMAND,
        "parameters": {"point": {"values": list(range(points))}, "log": {"value": str(log)}},
    }


def random_config(log: Path, run_cap: int) -> dict:
    return {
        "method": "random",
        "program": str(PROGRAM),
        "command": COMMAND,
        "run_cap": run_cap,
        "parameters": {"x": {"distribution": "uniform", "min": 0, "max": 1}, "log": {"value": str(log)}},
    }


@dataclass(frozen=True)
class Sweep:
    workdir: Path
    store: Path
    sweep_id: str
    log: Path
    config: dict


def new_sweep(workdir: Path, make_config: Callable[[Path, int], dict], size: int) -> Sweep:
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "program.jsonl"
    config = make_config(log, size)
    store = Store(workdir / "sweeps.db")
    try:
        with store.write() as tx:
            sweep_id = tx.create_sweep(config, None, None)
    finally:
        store.close()
    return Sweep(workdir, workdir / "sweeps.db", sweep_id, log, config)


@dataclass
class Agent:
    process: subprocess.Popen
    output: Path
    """Its stdout and stderr together."""
    fault: str | None = None
    """"killed" or "frozen", once it was."""


class Fleet:
    """The agents of one scenario. On any exit every one of them, and everything they started,
    is ended: a frozen one is continued first so that it can die."""

    def __init__(self, sweep: Sweep, env: Mapping[str, str]):
        self.sweep = sweep
        self.env = dict(env)
        self.agents: list[Agent] = []

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        for agent in self.agents:
            if agent.process.poll() is None:
                for signum in (signal.SIGCONT, signal.SIGKILL):
                    agent.process.send_signal(signum)
        for agent in self.agents:
            agent.process.wait()
        kill_marked(self.env[MARK_VAR])

    def start(self) -> Agent:
        output = self.sweep.workdir / f"agent-{len(self.agents):02d}.out"
        with open(output, "w") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "agent.cli", "agent", self.sweep.sweep_id, "--store", str(self.sweep.store)]
                + ["--heartbeat-timeout", f"{HEARTBEAT_TIMEOUT_S:g}"],
                cwd=self.sweep.workdir,
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C here reaches this script, whose cleanup ends them
            )
        agent = Agent(process, output)
        self.agents.append(agent)
        return agent

    def live(self) -> list[Agent]:
        return [agent for agent in self.agents if agent.process.poll() is None]

    def wait(self, deadline: float) -> bool:
        """True once every agent has exited, False at the deadline."""
        while self.live():
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL_S)
        return True


def marked(mark: str) -> list[psutil.Process]:
    """Live processes carrying this soak's mark (zombies excluded: they are only a record)."""
    found = []
    for process in psutil.process_iter(["environ", "status"]):
        # An attribute psutil could not read (another user's process, one gone meanwhile) is None.
        if (process.info["environ"] or {}).get(MARK_VAR) == mark and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


def kill_marked(mark: str) -> None:
    processes = marked(mark)
    for process in processes:
        try:
            process.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(processes, timeout=5)


def left_behind(mark: str, timeout_s: float = 15.0) -> list[str]:
    """What still runs with the mark once every agent has exited. A killed agent's program gets
    its parent-death signal at once, but may take a moment to go: wait for that, boundedly."""
    deadline = time.monotonic() + timeout_s
    while (left := marked(mark)) and time.monotonic() < deadline:
        time.sleep(0.2)
    names = []
    for process in left:
        try:
            names.append(" ".join(process.cmdline()))
        except psutil.Error:
            continue
    return names


# --- reading the store -------------------------------------------------------------------------


def read_only(store: Path) -> sqlite3.Connection:
    """A plain read-only connection: polls never take the agents' write lock."""
    return sqlite3.connect(f"{store.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)


def finished_count(sweep: Sweep) -> int:
    db = read_only(sweep.store)
    try:
        query = "SELECT count(*) FROM runs WHERE sweep_id = ? AND state = 'finished'"
        return db.execute(query, (sweep.sweep_id,)).fetchone()[0]
    finally:
        db.close()


def agent_pid(agent_id: str | None) -> int | None:
    """The pid inside an agent id (`host-pid-xxxx`; a host name may hold dashes)."""
    return int(agent_id.rsplit("-", 2)[1]) if agent_id else None


def runs_held(sweep: Sweep, pid: int) -> dict[str, int]:
    """The running runs the agent of `pid` owns, each with its claim number; launched: pid set."""
    db = read_only(sweep.store)
    try:
        query = "SELECT run_id, agent_id, claims FROM runs WHERE sweep_id = ? AND state = 'running' AND pid IS NOT NULL"
        rows = db.execute(query, (sweep.sweep_id,)).fetchall()
    finally:
        db.close()
    return {run_id: claims for run_id, agent_id, claims in rows if agent_pid(agent_id) == pid}


def taken_over(sweep: Sweep, held: dict[str, int], pid: int) -> bool:
    """Every run in `held` was requeued away from the agent of `pid` (and maybe launched again)."""
    db = read_only(sweep.store)
    try:
        for run_id, claims in held.items():
            agent_id, now = db.execute("SELECT agent_id, claims FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if agent_pid(agent_id) == pid and now == claims:
                return False
        return True
    finally:
        db.close()


# --- scenario (a): faults ----------------------------------------------------------------------


@dataclass
class Faults:
    """What was done to which agent, and the reruns it must cause: one more claim per run that a
    killed or frozen agent held (and lost) at that moment."""

    lines: list[str] = field(default_factory=list)
    reruns: collections.Counter = field(default_factory=collections.Counter)


def a_victim(fleet: Fleet, sweep: Sweep) -> tuple[Agent, dict[str, int]] | None:
    """A live, unharmed agent that has launched its run's program now: a fault mid-run."""
    for agent in fleet.live():
        if agent.fault is None:
            held = runs_held(sweep, agent.process.pid)
            if held:
                return agent, held
    return None


def kill_one(fleet: Fleet, sweep: Sweep, faults: Faults) -> bool:
    found = a_victim(fleet, sweep)
    if found is None:
        return False
    agent, _ = found
    agent.process.send_signal(signal.SIGKILL)
    agent.process.wait(timeout=30)
    agent.fault = "killed"
    # What it held once it is dead: it can change nothing after this, and each such run must come back.
    held = runs_held(sweep, agent.process.pid)
    faults.reruns.update(list(held))
    done = finished_count(sweep)
    faults.lines.append(f"SIGKILL agent {agent.process.pid} at {done} finished, holding {sorted(held) or 'nothing'}")
    fleet.start()
    return True


@dataclass
class Freeze:
    agent: Agent
    held: dict[str, int]
    since: float


def freeze_one(fleet: Fleet, sweep: Sweep, faults: Faults) -> Freeze | None:
    found = a_victim(fleet, sweep)
    if found is None:
        return None
    agent, _ = found
    agent.process.send_signal(signal.SIGSTOP)
    agent.fault = "frozen"
    held = runs_held(sweep, agent.process.pid)  # a stopped agent writes nothing: this is what it holds
    faults.lines.append(
        f"SIGSTOP agent {agent.process.pid} at {finished_count(sweep)} finished, holding {sorted(held) or 'nothing'}"
    )
    return Freeze(agent, held, time.monotonic())


def thaw_when_due(freeze: Freeze, sweep: Sweep, faults: Faults) -> bool:
    """SIGCONT once the freeze has outlasted the heartbeat timeout and its runs were taken over."""
    frozen_s = time.monotonic() - freeze.since
    taken = taken_over(sweep, freeze.held, freeze.agent.process.pid)
    if frozen_s < MIN_FREEZE_S or not taken and frozen_s < MAX_FREEZE_S:
        return False
    freeze.agent.process.send_signal(signal.SIGCONT)
    word = "taken over" if taken else "NOT taken over"
    faults.lines.append(f"SIGCONT agent {freeze.agent.process.pid} after {frozen_s:.1f}s, its runs {word}")
    return True


def runs_taken_from(agent: Agent) -> list[str]:
    """The runs an agent says were taken from it (`run ID taken`): requeued while it was alive."""
    words = [line.split() for line in agent.output.read_text(errors="replace").splitlines()]
    return [w[2] for w in words if len(w) > 3 and w[:2] == ["agent:", "run"] and w[3] == "taken"]


@dataclass
class LockHold:
    """The store's write lock held past the heartbeat timeout, from a thread of this script, as an
    agent frozen inside a write transaction holds it: no agent can beat meanwhile, yet none of their
    runs is dead."""

    store: Path
    seconds: float = MIN_FREEZE_S
    taken: threading.Event = field(default_factory=threading.Event)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._hold, daemon=True)
        thread.start()
        if not self.taken.wait(timeout=60):
            raise TimeoutError(f"could not take the write lock of {self.store}")
        return thread

    def _hold(self) -> None:
        db = sqlite3.connect(self.store, timeout=30.0, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            self.taken.set()
            time.sleep(self.seconds)
            db.execute("ROLLBACK")
        finally:
            db.close()


def run_with_faults(
    fleet: Fleet, sweep: Sweep, points: int, agents: int, kills: int, deadline: float
) -> tuple[Faults, bool]:
    """Start the agents, then at evenly spaced moments of progress kill `kills` of them (each
    replaced at once), hold the write lock and freeze one, until every agent has exited; False
    when the deadline came first or a fault could not be done."""
    faults = Faults()
    for _ in range(agents):
        fleet.start()
    # Each when its share of the grid has finished: the kills, then the lock held and, while it is,
    # the freeze (so both waits overlap; the lock holder is this script, never the frozen agent).
    events = ["kill"] * kills + ["hold lock", "freeze"]
    due_at = [points * (i + 1) // (kills + 2) for i in range(kills + 1)]
    due_at.append(due_at[-1])
    freeze = hold = None
    while fleet.live() or freeze is not None:
        if time.monotonic() > deadline:
            return faults, False
        if events and finished_count(sweep) >= due_at[0]:
            if events[0] == "freeze":
                freeze = freeze_one(fleet, sweep, faults)
                fired = freeze is not None
            elif events[0] == "hold lock":
                faults.lines.append(
                    f"holding the store's write lock for {MIN_FREEZE_S:g}s at {finished_count(sweep)} finished"
                )
                hold, fired = LockHold(sweep.store).start(), True
            else:
                fired = kill_one(fleet, sweep, faults)
            if fired:
                events.pop(0)
                due_at.pop(0)
        if freeze is not None and thaw_when_due(freeze, sweep, faults):
            freeze = None
        time.sleep(POLL_S)
    if hold is not None:
        hold.join(timeout=60)
    if events:
        faults.lines.append(f"not done (no agent held a run at the moment): {events}")
    # The frozen agent's runs that another agent took over ran again; whatever else was taken from
    # a live agent is a run taken for dead (check_store_and_agents says so).
    for agent in fleet.agents:
        if agent.fault == "frozen":
            faults.reruns.update(runs_taken_from(agent))
    return faults, not events


# --- the checks --------------------------------------------------------------------------------


@dataclass
class Report:
    name: str
    checks: list[tuple[bool, str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    runs_per_s: float = 0.0
    cycle_s: float = 0.0
    """The median claim-to-record time of a run, from the store."""

    def check(self, ok: bool, what: str) -> None:
        self.checks.append((bool(ok), what))

    @property
    def ok(self) -> bool:
        return all(ok for ok, _ in self.checks)

    @property
    def problems(self) -> list[str]:
        return [what for ok, what in self.checks if not ok]


def log_events(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def check_grid(report: Report, sweep: Sweep, points: int, reruns: Mapping[str, int]) -> None:
    """One finished run per point in the store, launched once plus once per fault that took it;
    in the program's log, each point done at least once, under its one run id, and never more
    often than it was launched."""
    store = Store(sweep.store, read_only=True)
    try:
        runs = store.runs(sweep.sweep_id, with_history=False)
    finally:
        store.close()
    by_point = collections.Counter(run.config["point"] for run in runs)
    report.check(
        sorted(by_point) == list(range(points)) and set(by_point.values()) == {1},
        f"store: one run per grid point ({len(runs)} runs for {points} points)",
    )
    unfinished = [run.run_id for run in runs if run.state != "finished" or run.exit_code != 0]
    report.check(not unfinished, f"store: every run finished, exit 0 ({len(unfinished)} not: {unfinished[:5]})")
    wrong = {run.run_id: run.claims for run in runs if run.claims != 1 + reruns.get(run.run_id, 0)}
    report.check(
        not wrong,
        f"store: launched once, plus once per fault that took the run ({sum(reruns.values())} reruns; wrong: {wrong})",
    )
    run_of_point = {run.config["point"]: run for run in runs}
    events = log_events(sweep.log)
    done = collections.Counter(int(event["args"]["point"]) for event in events if event["event"] == "done")
    starts = collections.Counter(int(event["args"]["point"]) for event in events if event["event"] == "start")
    strangers = {
        event["run_id"]
        for event in events
        if run_of_point.get(int(event["args"]["point"])) is None
        or event["run_id"] != run_of_point[int(event["args"]["point"])].run_id
    }
    report.check(not strangers, f"log: every event under its point's one run id ({len(strangers)} others)")
    never = [point for point in range(points) if done[point] == 0]
    report.check(not never, f"log: every point done ({len(never)} never: {never[:5]})")
    too_often = [
        point
        for point, run in run_of_point.items()
        if max(done[point], starts[point]) > run.claims or done[point] > 1 and run.run_id not in reruns
    ]
    twice = sum(count > 1 for count in done.values())
    report.check(
        not too_often,
        f"log: each point done once, more only after a fault took its run ({twice} done twice; wrong: {too_often[:5]})",
    )


def check_run_cap(report: Report, sweep: Sweep, run_cap: int) -> None:
    store = Store(sweep.store, read_only=True)
    try:
        runs = store.runs(sweep.sweep_id, with_history=False)
    finally:
        store.close()
    report.check(len(runs) == run_cap, f"store: exactly run_cap {run_cap} runs ({len(runs)})")
    report.check(
        all(run.state == "finished" and run.claims == 1 for run in runs),
        "store: every run finished on its first launch",
    )
    done = collections.Counter(event["run_id"] for event in log_events(sweep.log) if event["event"] == "done")
    report.check(
        set(done) == {run.run_id for run in runs} and set(done.values()) == {1},
        f"log: each run done exactly once ({len(done)} run ids, {sum(done.values())} done)",
    )


def check_store_and_agents(report: Report, sweep: Sweep, fleet: Fleet) -> None:
    db = read_only(sweep.store)
    try:
        integrity = db.execute("PRAGMA integrity_check").fetchall()
    finally:
        db.close()
    report.check(integrity == [("ok",)], f"PRAGMA integrity_check: {integrity[:3]}")
    outputs = {agent.output.name: agent.output.read_text(errors="replace") for agent in fleet.agents}
    locked = [name for name, text in outputs.items() if "database is locked" in text]
    report.check(not locked, f"no agent printed 'database is locked' ({len(fleet.agents)} agents; in: {locked})")
    tracebacks = [name for name, text in outputs.items() if "Traceback" in text]
    report.check(not tracebacks, f"no agent printed a traceback (in: {tracebacks})")
    taken = {agent.output.name: runs_taken_from(agent) for agent in fleet.agents if agent.fault != "frozen"}
    taken = {name: runs for name, runs in taken.items() if runs}
    report.check(not taken, f"no run taken from a live agent that was not frozen (taken: {taken})")
    exits = {agent.output.name: agent.process.returncode for agent in fleet.agents if agent.fault != "killed"}
    bad = {name: code for name, code in exits.items() if code != 0}
    report.check(not bad, f"every agent not killed exited 0 ({len(exits)}; others: {bad})")


def check_leftovers(report: Report, fleet: Fleet) -> None:
    left = left_behind(fleet.env[MARK_VAR])
    report.check(not left, f"no process left behind ({len(left)} carrying the soak's mark: {left[:3]})")


def measure(report: Report, sweep: Sweep, wall_s: float, bare_s: float) -> None:
    store = Store(sweep.store, read_only=True)
    try:
        runs = [run for run in store.runs(sweep.sweep_id, with_history=False) if run.state == "finished"]
    finally:
        store.close()
    cycles = sorted(run.ended_at - run.started_at for run in runs)
    if not cycles:
        return
    report.cycle_s = statistics.median(cycles)
    report.runs_per_s = len(runs) / wall_s
    p95 = cycles[int(0.95 * (len(cycles) - 1))]
    report.lines.append(
        f"{len(runs)} runs in {wall_s:.1f}s: {report.runs_per_s:.1f} runs/s | claim to record median"
        f" {report.cycle_s:.3f}s (p95 {p95:.3f}s) | bare start-up {bare_s:.3f}s | overhead"
        f" {report.cycle_s - bare_s:+.3f}s/run"
    )


# --- the scenarios -----------------------------------------------------------------------------


def bare_startup_s(workdir: Path, env: Mapping[str, str], runs: int = 10) -> float:
    """The median start-up of the program started directly, with the environment and files an agent
    would give it (as benchmarks/agent_overhead.py measures it)."""
    workdir.mkdir(parents=True, exist_ok=True)
    times = []
    for i in range(runs):
        params = {"point": i, "log": str(workdir / "bare.jsonl")}
        plan = prepare_launch(
            {"program": str(PROGRAM), "command": COMMAND}, "bare", f"bare{i:04d}", params, base_env=env
        )
        started = time.perf_counter()
        subprocess.run(plan.argv, env=plan.env, check=True, timeout=60, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def grid_with_faults(
    workdir: Path, points: int, agents: int, kills: int, bare_s: float, base_env=None, timeout_s: float = 1800
) -> Report:
    report = Report(
        f"a. grid of {points}, {agents} agents, {kills} SIGKILLed and replaced, 1 frozen, the write lock held"
    )
    sweep = new_sweep(workdir, grid_config, points)
    started = time.monotonic()
    with Fleet(sweep, soak_env(workdir, base_env)) as fleet:
        faults, all_fired = run_with_faults(fleet, sweep, points, agents, kills, started + timeout_s)
        wall = time.monotonic() - started
        report.lines.extend(faults.lines)
        report.check(all_fired and not fleet.live(), f"every fault done and every agent exited within {timeout_s:g}s")
        if not fleet.live():
            check_grid(report, sweep, points, faults.reruns)
            check_store_and_agents(report, sweep, fleet)
            check_leftovers(report, fleet)
            measure(report, sweep, wall, bare_s)
    return report


def random_with_cap(
    workdir: Path, run_cap: int, agents: int, bare_s: float, base_env=None, timeout_s: float = 1800
) -> Report:
    report = Report(f"b. random sweep, run_cap {run_cap}, {agents} agents")
    sweep = new_sweep(workdir, random_config, run_cap)
    return without_faults(report, sweep, agents, bare_s, soak_env(workdir, base_env), timeout_s,
                          lambda: check_run_cap(report, sweep, run_cap))  # fmt: skip


def crowded_grid(
    workdir: Path, points: int, agents: int, bare_s: float, base_env=None, timeout_s: float = 1800
) -> Report:
    report = Report(f"c. grid of {points}, {agents} agents on one store")
    sweep = new_sweep(workdir, grid_config, points)
    return without_faults(report, sweep, agents, bare_s, soak_env(workdir, base_env), timeout_s,
                          lambda: check_grid(report, sweep, points, {}))  # fmt: skip


def without_faults(
    report: Report, sweep: Sweep, agents: int, bare_s: float, env: dict, timeout_s: float, check_sweep
) -> Report:
    """`agents` agents work the sweep to its end; then the sweep's own check and the common ones."""
    started = time.monotonic()
    with Fleet(sweep, env) as fleet:
        for _ in range(agents):
            fleet.start()
        exited = fleet.wait(started + timeout_s)
        wall = time.monotonic() - started
        report.check(exited, f"every agent exited within {timeout_s:g}s")
        if exited:
            check_sweep()
            check_store_and_agents(report, sweep, fleet)
            check_leftovers(report, fleet)
            measure(report, sweep, wall, bare_s)
    return report


def print_report(report: Report) -> None:
    print(f"[{report.name}]")
    for line in report.lines:
        print(f"  {line}")
    for ok, what in report.checks:
        print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    print(flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=500, help="grid size of scenarios a and c")
    parser.add_argument("--agents", type=int, default=8, help="agents of scenario a")
    parser.add_argument("--kills", type=int, default=3, help="agents SIGKILLed and replaced in scenario a")
    parser.add_argument("--run-cap", type=int, default=300, help="run_cap of scenario b")
    parser.add_argument("--random-agents", type=int, default=4, help="agents of scenario b")
    parser.add_argument("--crowd", type=int, default=16, help="agents of scenario c")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds each scenario may take at most")
    args = parser.parse_args()
    print(
        f"cpu count {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}; heartbeat timeout {HEARTBEAT_TIMEOUT_S:g}s"
    )
    with tempfile.TemporaryDirectory(prefix="controller-soak-") as tmp:
        root = Path(tmp)
        bare_s = bare_startup_s(root / "bare", soak_env(root / "bare"))
        reports = []
        for run in (
            lambda: grid_with_faults(root / "a", args.points, args.agents, args.kills, bare_s, timeout_s=args.timeout),
            lambda: random_with_cap(root / "b", args.run_cap, args.random_agents, bare_s, timeout_s=args.timeout),
            lambda: crowded_grid(root / "c", args.points, args.crowd, bare_s, timeout_s=args.timeout),
        ):
            reports.append(run())
            print_report(reports[-1])
    failed = [report.name for report in reports if not report.ok]
    print("FAILED: " + "; ".join(failed) if failed else "every check passed")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
