"""The local sweep store: one SQLite file that every agent on this machine shares.

SQLite in WAL mode lets readers (`lora-sweep runs`) work while an agent writes. Every decision
that must not race (which run an agent gets, requeueing runs of dead agents) happens inside one
`BEGIN IMMEDIATE` transaction, which takes the database's single write lock up front: two agents
can never both read "point 7 is free" and both take it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
import string
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.records import RunRecord, SweepRecord

DEFAULT_STORE = Path(".lora-sweep") / "sweeps.db"
STORE_ENV_VAR = "LORA_SWEEP_STORE"

SWEEP_STATES = ("RUNNING", "PAUSED", "FINISHED", "CANCELED")
"""W&B's sweep states: FINISHED takes no new runs (`--stop`), CANCELED also stops running ones."""

RUN_STATES = ("pending", "running", "finished", "failed", "crashed", "stopped")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sweeps (
    sweep_id   TEXT PRIMARY KEY,
    config     TEXT NOT NULL,
    state      TEXT NOT NULL,
    project    TEXT,
    name       TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id        TEXT PRIMARY KEY,
    sweep_id      TEXT NOT NULL REFERENCES sweeps(sweep_id),
    seq           INTEGER NOT NULL,
    state         TEXT NOT NULL,
    config        TEXT NOT NULL,
    summary       TEXT NOT NULL DEFAULT '{}',
    agent_id      TEXT,
    pid           INTEGER,
    heartbeat_at  REAL,
    started_at    REAL,
    ended_at      REAL,
    exit_code     INTEGER,
    output_tail   TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    UNIQUE (sweep_id, seq)
);
CREATE TABLE IF NOT EXISTS history (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    idx    INTEGER NOT NULL,
    row    TEXT NOT NULL,
    PRIMARY KEY (run_id, idx)
);
"""


class UnknownSweep(LookupError):
    """No sweep with that id in this store."""


@dataclass(frozen=True)
class SweepRow:
    sweep_id: str
    config: dict[str, Any]
    state: str
    project: str | None
    name: str | None


@dataclass(frozen=True)
class RunRow:
    run_id: str
    sweep_id: str
    seq: int
    """Order of creation within the sweep (the grid engine and `runs` list in this order)."""
    state: str
    config: dict[str, Any]
    """Parameter values as assigned, flat: {"lora_r": 8, ...}."""
    summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    agent_id: str | None = None
    pid: int | None = None
    heartbeat_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    output_tail: str | None = None
    attempts: int = 0

    @property
    def runtime_s(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.ended_at or time.time()) - self.started_at


def resolve_store_path(path: str | os.PathLike | None) -> Path:
    """The flag wins, then $LORA_SWEEP_STORE, then ./.lora-sweep/sweeps.db."""
    return Path(path or os.environ.get(STORE_ENV_VAR) or DEFAULT_STORE)


def open_store(path: str | os.PathLike | None, must_exist: bool = True) -> Store:
    """The store at `path` (see resolve_store_path); reading commands want it to exist already."""
    resolved = resolve_store_path(path)
    if must_exist and not resolved.exists():
        raise UnknownSweep(f"no local sweep store at {resolved} (create a sweep with `lora-sweep sweep --local`)")
    return Store(resolved)


def new_id(length: int = 8) -> str:
    """A W&B-style id: lowercase letters and digits."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


class Store:
    """The sweeps and runs of one machine. One instance per process, used from one thread."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN ourselves, so each transaction is explicit.
        self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def write(self) -> Iterator[Store]:
        """One write transaction; the lock is taken at BEGIN, so reads inside it stay true."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- sweeps ---------------------------------------------------------------------------------

    def create_sweep(self, config: dict[str, Any], project: str | None, name: str | None) -> str:
        sweep_id = new_id()
        self._db.execute(
            "INSERT INTO sweeps VALUES (?, ?, 'RUNNING', ?, ?, ?)",
            (sweep_id, json.dumps(config), project, name, time.time()),
        )
        return sweep_id

    def sweep(self, sweep_id: str) -> SweepRow:
        row = self._db.execute("SELECT * FROM sweeps WHERE sweep_id = ?", (sweep_id,)).fetchone()
        if row is None:
            raise UnknownSweep(f"no local sweep {sweep_id!r} in {self.path}")
        return SweepRow(
            sweep_id=row["sweep_id"],
            config=json.loads(row["config"]),
            state=row["state"],
            project=row["project"],
            name=row["name"],
        )

    def set_sweep_state(self, sweep_id: str, state: str) -> None:
        assert state in SWEEP_STATES, state
        self.sweep(sweep_id)  # raises UnknownSweep
        self._db.execute("UPDATE sweeps SET state = ? WHERE sweep_id = ?", (state, sweep_id))

    # -- runs -----------------------------------------------------------------------------------

    def runs(self, sweep_id: str, with_history: bool = True) -> list[RunRow]:
        rows = self._db.execute("SELECT * FROM runs WHERE sweep_id = ? ORDER BY seq", (sweep_id,)).fetchall()
        return [self._run_row(row, with_history) for row in rows]

    def run(self, run_id: str) -> RunRow:
        row = self._db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return self._run_row(row, with_history=True)

    def _run_row(self, row: sqlite3.Row, with_history: bool) -> RunRow:
        history = []
        if with_history:
            history = [
                json.loads(h["row"])
                for h in self._db.execute("SELECT row FROM history WHERE run_id = ? ORDER BY idx", (row["run_id"],))
            ]
        return RunRow(
            run_id=row["run_id"],
            sweep_id=row["sweep_id"],
            seq=row["seq"],
            state=row["state"],
            config=json.loads(row["config"]),
            summary=json.loads(row["summary"]),
            history=history,
            agent_id=row["agent_id"],
            pid=row["pid"],
            heartbeat_at=row["heartbeat_at"],
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            exit_code=row["exit_code"],
            output_tail=row["output_tail"],
            attempts=row["attempts"],
        )

    def add_run(self, sweep_id: str, config: dict[str, Any], agent_id: str) -> RunRow:
        """A new run, already claimed by `agent_id` (call inside `write()`)."""
        seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM runs WHERE sweep_id = ?", (sweep_id,)).fetchone()[
            0
        ]
        run_id = new_id()
        now = time.time()
        self._db.execute(
            "INSERT INTO runs (run_id, sweep_id, seq, state, config, agent_id, heartbeat_at,"
            " started_at, attempts) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, 1)",
            (run_id, sweep_id, seq, json.dumps(config), agent_id, now, now),
        )
        return self.run(run_id)

    def claim_pending(self, run_id: str, agent_id: str) -> RunRow:
        """Give a requeued run to `agent_id` (call inside `write()`)."""
        now = time.time()
        self._db.execute(
            "UPDATE runs SET state = 'running', agent_id = ?, heartbeat_at = ?, started_at = ?,"
            " attempts = attempts + 1 WHERE run_id = ? AND state = 'pending'",
            (agent_id, now, now, run_id),
        )
        return self.run(run_id)

    def set_pid(self, run_id: str, pid: int) -> None:
        self._db.execute("UPDATE runs SET pid = ? WHERE run_id = ?", (pid, run_id))

    def beat(self, run_id: str) -> None:
        self._db.execute("UPDATE runs SET heartbeat_at = ? WHERE run_id = ?", (time.time(), run_id))

    def append_history(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        with self.write():
            start = self._db.execute("SELECT COUNT(*) FROM history WHERE run_id = ?", (run_id,)).fetchone()[0]
            self._db.executemany(
                "INSERT INTO history VALUES (?, ?, ?)",
                [(run_id, start + i, json.dumps(row)) for i, row in enumerate(rows)],
            )
            self._db.execute("UPDATE runs SET heartbeat_at = ? WHERE run_id = ?", (time.time(), run_id))

    def finish_run(
        self,
        run_id: str,
        state: str,
        exit_code: int | None,
        summary: dict[str, Any],
        output_tail: str | None,
    ) -> None:
        assert state in RUN_STATES, state
        self._db.execute(
            "UPDATE runs SET state = ?, exit_code = ?, summary = ?, output_tail = ?, ended_at = ? WHERE run_id = ?",
            (state, exit_code, json.dumps(summary), output_tail, time.time(), run_id),
        )

    def requeue(self, run_id: str) -> None:
        """Back to pending, as if never started: the next agent runs it again from scratch."""
        self._db.execute("DELETE FROM history WHERE run_id = ?", (run_id,))
        self._db.execute(
            "UPDATE runs SET state = 'pending', agent_id = NULL, pid = NULL, heartbeat_at = NULL,"
            " started_at = NULL, ended_at = NULL, exit_code = NULL, summary = '{}',"
            " output_tail = NULL WHERE run_id = ?",
            (run_id,),
        )

    # -- the shape review code reads ------------------------------------------------------------

    def sweep_record(self, sweep_id: str) -> SweepRecord:
        sweep = self.sweep(sweep_id)
        runs = [
            RunRecord(
                run_id=run.run_id,
                state=run.state,
                config=run.config,
                summary=run.summary,
                history=run.history,
                runtime_s=run.runtime_s,
                exit_code=run.exit_code,
            )
            for run in self.runs(sweep_id)
        ]
        return SweepRecord(sweep_id=sweep.sweep_id, config=sweep.config, runs=runs)
