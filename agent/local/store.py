"""The local sweep store: one SQLite file that every agent on this machine shares.

SQLite in WAL mode lets readers (`lora-sweep runs`) work while an agent writes. Every change goes
through one `BEGIN IMMEDIATE` transaction (`with store.write() as tx:`), which takes the
database's single write lock up front, and only its `Transaction` holds the mutators: a decision
that must not race (which run an agent gets, requeueing runs of dead agents) is one transaction,
so two agents can never both read "point 7 is free" and both take it.

Every write about a running run names the claim that owns it (`Claim`): an agent that was
frozen past the heartbeat timeout finds its run requeued and claimed by another, and its late
writes change nothing (`RunTaken`). Run states are `agent.records.RunState` words, sweep states
`agent.records.SweepState` words.

The file is marked as ours (`PRAGMA application_id`) with a schema version (`PRAGMA user_version`):
an older store is upgraded when opened for writing (`MIGRATIONS`), a newer one is refused. A file
that is not ours is only ever opened read-only, to say what it is; any fault of the file or its
disk is one `StoreError` line.
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

from agent.errors import UserError
from agent.records import QUEUED_STATES, STEP_KEY, RunRecord, RunState, SweepRecord, SweepState

DEFAULT_STORE = Path(".lora-sweep") / "sweeps.db"

APPLICATION_ID = 0x4C535745  # "LSWE": this SQLite file is a lora-sweep store

MIGRATIONS: list[str] = [
    # 0 -> 1: the first schema. Version 0 is a new file, or a store from before the version stamp,
    # which has these tables already.
    """
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
    """,
    # 1 -> 2: which W&B run folder each claim wrote (then named its attempt), so a run's result can
    # be read again from its own log (`lora-sweep runs --rescan`). Only writing commands query it.
    """
    CREATE TABLE IF NOT EXISTS run_logs (
        run_id  TEXT NOT NULL REFERENCES runs(run_id),
        attempt INTEGER NOT NULL,
        folder  TEXT NOT NULL,
        PRIMARY KEY (run_id, attempt)
    );
    """,
    # 2 -> 3: an agent's take of a run is a claim, as everywhere else: `runs.attempts` counted the
    # claims and `run_logs.attempt` named one. Reading commands read an older store's `attempts`
    # as it stands (`_claims`).
    """
    ALTER TABLE runs RENAME COLUMN attempts TO claims;
    ALTER TABLE run_logs RENAME COLUMN attempt TO claim;
    """,
]
"""How each schema version is reached from the one before: `MIGRATIONS[n]` takes a store at
version n (`PRAGMA user_version`) to n + 1. A change to the schema appends a step; opening an
older store for writing runs the steps it lacks in one transaction. Reading commands never write,
so they read an older store as it stands: a step must leave what they query readable."""
SCHEMA_VERSION = len(MIGRATIONS)
_TABLES = {"sweeps", "runs", "history"}
"""The tables of a store from before the version stamp (version 0 with these is ours)."""


class StoreError(UserError):
    """The store cannot be used: not ours, damaged, unwritable, full, or gone. One line."""


class UnknownSweep(StoreError, LookupError):
    """No sweep with that id in this store (or no store at all)."""


class UnknownRun(StoreError, LookupError):
    """No run with that id in this store."""


def _unknown_sweep(path: Path, sweep_id: str) -> UnknownSweep:
    return UnknownSweep(f"no local sweep {sweep_id!r} in {path}")


def _unknown_run(path: Path, run_id: str) -> UnknownRun:
    return UnknownRun(f"no run {run_id!r} in the local sweep store {path}")


class TransactionError(RuntimeError):
    """The store's write rule broken by its caller, never the store's fault: a write transaction
    opened inside another of the same store, or one used after its block ended."""


class RunNotQueued(Exception):
    """`claim_pending` of a run that is not waiting for an agent: another agent holds it, or it ended."""


class RunTaken(Exception):
    """This claim no longer owns its run: it was requeued (missed heartbeats) and maybe claimed again."""


@dataclass(frozen=True)
class Claim:
    """One time an agent took a run from the store, as the store counts them (`runs.claims`):
    writes about a running run carry it, so a stale claim writes nothing. The trial program counts
    its own launches apart (`agent/trial/launches.py`)."""

    run_id: str
    number: int


@dataclass(frozen=True)
class SweepRow:
    sweep_id: str
    config: dict[str, Any]
    state: SweepState
    project: str | None
    name: str | None


@dataclass(frozen=True)
class RunRow:
    """A run as the store keeps it: the facts review code reads (`record()`), plus the local
    controller's bookkeeping (order, owner, heartbeat, claims)."""

    run_id: str
    sweep_id: str
    seq: int
    """Order of creation within the sweep (the grid engine and `runs` list in this order)."""
    state: RunState
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
    claims: int = 0
    """How many times agents took the run; the latest of them owns it while it runs."""

    @property
    def claim(self) -> Claim:
        """The run's latest claim: the one a write about it while running must name."""
        return Claim(self.run_id, self.claims)

    @property
    def runtime_s(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.ended_at or time.time()) - self.started_at

    def record(self) -> RunRecord:
        """The shape review code reads."""
        return RunRecord(
            run_id=self.run_id,
            state=self.state.value,
            config=self.config,
            summary=self.summary,
            history=self.history,
            runtime_s=self.runtime_s,
            exit_code=self.exit_code,
        )


def _claims(row: sqlite3.Row) -> int:
    """A run's claim count: `claims`, or `attempts` in a store before schema 3, which a reading
    command reads as it stands."""
    return row["claims"] if "claims" in row.keys() else row["attempts"]


def open_store(path: str | os.PathLike | None, must_exist: bool = True, writable: bool = False) -> Store:
    """The store at `path` (default ./.lora-sweep/sweeps.db; the entry point resolves the
    environment). An existing store opens read-only unless `writable`, so reading commands work
    where the file cannot be written; `must_exist=False` creates it."""
    resolved = Path(path or DEFAULT_STORE)
    if not must_exist:
        return Store(resolved)
    if not resolved.exists():
        raise UnknownSweep(f"no local sweep store at {resolved} (create a sweep with `lora-sweep sweep --local`)")
    return Store(resolved, read_only=not writable)


def new_id(length: int = 8) -> str:
    """A W&B-style id: lowercase letters and digits."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _store_error(path: Path, error: BaseException) -> StoreError:
    """One line that says what is wrong with the store and what to do."""
    text = str(error)
    if isinstance(error, sqlite3.Error):
        if "disk is full" in text:
            return StoreError(f"the disk holding the store {path} is full: free space, then run again")
        if "readonly" in text or "read-only" in text:
            return StoreError(f"the store {path} is read-only here: use a writable --store for this command")
        if "malformed" in text or "not a database" in text:
            return StoreError(f"the store {path} is damaged ({text}): move it away; its sweeps cannot be read")
        if "unable to open" in text:
            return StoreError(f"cannot open the store {path} ({text}): check the path and its permissions")
    if isinstance(error, OSError) and error.errno == 28:
        return StoreError(f"the disk holding the store {path} is full: free space, then run again")
    return StoreError(f"local sweep store {path}: {text}")


def _not_a_store(path: Path, error: sqlite3.DatabaseError) -> StoreError:
    if "not a database" in str(error):
        return StoreError(
            f"{path} is not a lora-sweep store (not an SQLite database, or damaged): choose another --store"
        )
    return _store_error(path, error)


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """Read without writing anything into the file. A WAL database in a folder we cannot write
    needs `immutable`: no writer can be at work where nobody may write."""
    for flags in ("mode=ro", "mode=ro&immutable=1"):
        db = sqlite3.connect(f"{path.resolve().as_uri()}?{flags}", uri=True, isolation_level=None)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.OperationalError as error:
            db.close()
            if "unable to open" not in str(error) and "readonly" not in str(error):
                raise
    raise sqlite3.OperationalError("unable to open database file")


def _identify(path: Path) -> int | None:
    """The schema version of our store at `path` (0: ours from before the version stamp), or None
    when nothing is there yet; anything else is a StoreError, found without writing a byte.

    Only SQLite opens the file: closing any other handle on it would drop the POSIX locks that
    this process's connections hold, and another agent could then checkpoint the log away
    under them."""
    if path.is_dir():
        raise StoreError(f"the store path {path} is a folder: give --store a file path")
    if not path.exists() or path.stat().st_size == 0:
        return None
    try:
        db = _connect_read_only(path)
    except sqlite3.DatabaseError as error:
        raise _not_a_store(path, error) from None
    try:
        application_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as error:
        raise _not_a_store(path, error) from None
    finally:
        db.close()
    if application_id == APPLICATION_ID:
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the store {path} has schema version {version}; this lora-sweep reads version {SCHEMA_VERSION}:"
                " use the lora-sweep that wrote it, or another --store"
            )
        return version
    if application_id == 0 and version == 0 and tables == _TABLES:
        return 0
    names = ", ".join(sorted(tables)) or "no tables"
    raise StoreError(
        f"{path} is another program's SQLite database ({names}); lora-sweep leaves it alone: choose another --store"
    )


def _upgrade(db: sqlite3.Connection) -> None:
    """Create the store, or bring an older one to SCHEMA_VERSION, in one transaction. The version
    is read again under the write lock: another agent may have upgraded it meanwhile."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version < SCHEMA_VERSION:
            for step in MIGRATIONS[version:]:
                for statement in step.split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class Store:
    """The sweeps and runs of one machine: its reads, and `write()`, the one transaction through
    which it changes (`Transaction`). One instance per thread; agents share the file."""

    def __init__(self, path: str | os.PathLike, read_only: bool = False):
        self.path = Path(path)
        self.read_only = read_only
        try:
            version = _identify(self.path)
            if read_only:
                if version is None:
                    raise UnknownSweep(f"no local sweep store at {self.path}")
                self._db = _connect_read_only(self.path)
            else:
                self._db = self._open_for_writing(version)
            self._file_id = self._current_file_id()
        except sqlite3.Error as error:
            raise _store_error(self.path, error) from None
        self._db.row_factory = sqlite3.Row
        self._transaction: Transaction | None = None

    def _open_for_writing(self, version: int | None) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise StoreError(f"cannot create the store {self.path}: part of its folder path is a file") from None
        except OSError as error:
            raise StoreError(f"cannot create the store {self.path}: {error.strerror}") from None
        # SQLite keeps its write-ahead log beside the file: both must be writable.
        if not os.access(self.path.parent, os.W_OK) or self.path.exists() and not os.access(self.path, os.W_OK):
            raise StoreError(f"the store {self.path} is read-only here: use a writable --store for this command")
        # isolation_level=None: we issue BEGIN ourselves, so each transaction is explicit.
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        db.execute("PRAGMA busy_timeout=30000")
        if version != SCHEMA_VERSION:
            _upgrade(db)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def _current_file_id(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (stat.st_dev, stat.st_ino)

    def check_present(self) -> None:
        """SQLite goes on writing into a deleted file without a word: look before each write."""
        if self._current_file_id() != self._file_id:
            raise StoreError(
                f"the store {self.path} was deleted or replaced while this agent ran: its runs cannot be recorded"
            )

    def close(self) -> None:
        self._db.close()

    def _sql(self, query: str, params: tuple | list = (), *, many: bool = False) -> sqlite3.Cursor:
        """One statement (`many`: once for each set of `params`); any SQLite fault is a StoreError line."""
        try:
            return (self._db.executemany if many else self._db.execute)(query, params)
        except sqlite3.Error as error:
            raise _store_error(self.path, error) from None

    @contextlib.contextmanager
    def write(self) -> Iterator[Transaction]:
        """One write transaction, the only way to change the store (`with store.write() as tx:`).
        The lock is taken at BEGIN, so reads inside it stay true; the block commits when it ends and
        rolls back when it raises. A write opened inside another of the same store is a
        TransactionError: SQLite would refuse it too, but only in its own words and with the outer
        one left open."""
        if self._transaction is not None:
            raise TransactionError(
                f"a write transaction of the store {self.path} is already open: pass it on instead of opening another"
            )
        self.check_present()
        self._sql("BEGIN IMMEDIATE")
        self._transaction = Transaction(self)
        try:
            yield self._transaction
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise
        else:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as error:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise _store_error(self.path, error) from None
        finally:
            self._transaction._end()
            self._transaction = None

    # -- sweeps ---------------------------------------------------------------------------------

    def sweep(self, sweep_id: str) -> SweepRow:
        row = self._sql("SELECT * FROM sweeps WHERE sweep_id = ?", (sweep_id,)).fetchone()
        if row is None:
            raise _unknown_sweep(self.path, sweep_id)
        return SweepRow(
            sweep_id=row["sweep_id"],
            config=json.loads(row["config"]),
            state=SweepState(row["state"]),
            project=row["project"],
            name=row["name"],
        )

    # -- runs -----------------------------------------------------------------------------------

    def runs(self, sweep_id: str, with_history: bool = True) -> list[RunRow]:
        rows = self._sql("SELECT * FROM runs WHERE sweep_id = ? ORDER BY seq", (sweep_id,)).fetchall()
        return [self._run_row(row, with_history) for row in rows]

    def run(self, run_id: str) -> RunRow:
        row = self._sql("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise _unknown_run(self.path, run_id)
        return self._run_row(row, with_history=True)

    def _run_row(self, row: sqlite3.Row, with_history: bool) -> RunRow:
        history = []
        if with_history:
            history = [
                json.loads(h["row"])
                for h in self._sql("SELECT row FROM history WHERE run_id = ? ORDER BY idx", (row["run_id"],))
            ]
        return RunRow(
            run_id=row["run_id"],
            sweep_id=row["sweep_id"],
            seq=row["seq"],
            state=RunState(row["state"]),
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
            claims=_claims(row),
        )

    def run_log(self, claim: Claim) -> Path | None:
        """The W&B run folder `claim` wrote, if the store recorded it (not before schema 2)."""
        row = self._sql(
            "SELECT folder FROM run_logs WHERE run_id = ? AND claim = ?", (claim.run_id, claim.number)
        ).fetchone()
        return Path(row[0]) if row else None

    # -- the shape review code reads ------------------------------------------------------------

    def sweep_record(self, sweep_id: str) -> SweepRecord:
        sweep = self.sweep(sweep_id)
        return SweepRecord(
            sweep_id=sweep.sweep_id, config=sweep.config, runs=[run.record() for run in self.runs(sweep_id)]
        )


class Transaction:
    """One open write transaction of a `Store` (`with store.write() as tx:`), and the only holder of
    the store's changes: every mutator is here, and refuses to run once its block has ended. Each
    change checks what it changed: an unknown sweep id is UnknownSweep, an unknown run id
    UnknownRun, and a claim that no longer owns its run RunTaken."""

    def __init__(self, store: Store):
        self.store = store
        """Reads inside the transaction go through it: they see the transaction's own changes."""
        self._open = True

    def _end(self) -> None:
        """Called by `Store.write()` when the block ends: nothing goes through this one after that."""
        self._open = False

    def _sql(self, query: str, params: tuple | list = (), *, many: bool = False) -> sqlite3.Cursor:
        if not self._open:
            raise TransactionError(
                "this write transaction has ended: change the store inside `with store.write() as tx:`"
            )
        return self.store._sql(query, params, many=many)

    def _require_run(self, run_id: str) -> None:
        if self._sql("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
            raise _unknown_run(self.store.path, run_id)

    # -- sweeps ---------------------------------------------------------------------------------

    def create_sweep(self, config: dict[str, Any], project: str | None, name: str | None) -> str:
        sweep_id = new_id()
        self._sql(
            "INSERT INTO sweeps VALUES (?, ?, ?, ?, ?, ?)",
            (sweep_id, json.dumps(config), SweepState.RUNNING, project, name, time.time()),
        )
        return sweep_id

    def set_sweep_state(self, sweep_id: str, state: SweepState) -> None:
        cursor = self._sql("UPDATE sweeps SET state = ? WHERE sweep_id = ?", (SweepState(state), sweep_id))
        if cursor.rowcount != 1:
            raise _unknown_sweep(self.store.path, sweep_id)

    # -- runs -----------------------------------------------------------------------------------

    def add_run(self, sweep_id: str, config: dict[str, Any], agent_id: str) -> RunRow:
        """A new run of `sweep_id`, already claimed by `agent_id` (its first claim)."""
        if self._sql("SELECT 1 FROM sweeps WHERE sweep_id = ?", (sweep_id,)).fetchone() is None:
            raise _unknown_sweep(self.store.path, sweep_id)
        seq = self._sql("SELECT COALESCE(MAX(seq), 0) + 1 FROM runs WHERE sweep_id = ?", (sweep_id,)).fetchone()[0]
        run_id = new_id()
        now = time.time()
        self._sql(
            "INSERT INTO runs (run_id, sweep_id, seq, state, config, agent_id, heartbeat_at,"
            " started_at, claims) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)",
            (run_id, sweep_id, seq, RunState.RUNNING, json.dumps(config), agent_id, now, now),
        )
        return self.store.run(run_id)

    def claim_pending(self, run_id: str, agent_id: str) -> RunRow:
        """Give a queued run (pending or preempted) to `agent_id`: a new claim under the same run id.
        Its history stays until the new claim's launch logs. A run that is not queued is never taken
        from whoever holds it, nor reopened once ended: RunNotQueued (UnknownRun if there is no
        such run), and the transaction's caller decides what to do."""
        now = time.time()
        cursor = self._sql(
            "UPDATE runs SET state = ?, agent_id = ?, heartbeat_at = ?, started_at = ?,"
            " ended_at = NULL, exit_code = NULL, claims = claims + 1"
            f" WHERE run_id = ? AND state IN ({', '.join('?' * len(QUEUED_STATES))})",
            (RunState.RUNNING, agent_id, now, now, run_id, *QUEUED_STATES),
        )
        if cursor.rowcount != 1:
            self._require_run(run_id)
            raise RunNotQueued(f"run {run_id} is {self.store.run(run_id).state}, not queued: it was not claimed")
        return self.store.run(run_id)

    def _update_claim(self, claim: Claim, assignments: str, values: tuple) -> None:
        """Change a running run only while `claim` still owns it; else RunTaken."""
        cursor = self._sql(
            f"UPDATE runs SET {assignments} WHERE run_id = ? AND claims = ? AND state = ?",
            (*values, claim.run_id, claim.number, RunState.RUNNING),
        )
        if cursor.rowcount != 1:
            self._require_run(claim.run_id)
            raise RunTaken(f"run {claim.run_id} was requeued while its claim {claim.number} ran")

    def record_run_log(self, claim: Claim, folder: Path) -> None:
        """The W&B run folder this claim's launch writes, once its agent has found it."""
        self._update_claim(claim, "heartbeat_at = ?", (time.time(),))
        self._sql(
            "INSERT OR REPLACE INTO run_logs (run_id, claim, folder) VALUES (?, ?, ?)",
            (claim.run_id, claim.number, str(folder)),
        )

    def replace_summary(self, run_id: str, summary: dict[str, Any]) -> None:
        """A finished run's summary, read again from its own log."""
        cursor = self._sql("UPDATE runs SET summary = ? WHERE run_id = ?", (json.dumps(summary), run_id))
        if cursor.rowcount != 1:
            raise _unknown_run(self.store.path, run_id)

    def set_pid(self, claim: Claim, pid: int) -> None:
        self._update_claim(claim, "pid = ?", (pid,))

    def beat(self, claim: Claim) -> None:
        self._update_claim(claim, "heartbeat_at = ?", (time.time(),))

    def append_history(self, claim: Claim, rows: list[dict[str, Any]], first: bool = False) -> None:
        """Store a claim's rows. `first`: the claim's first rows, which say where its launch took up
        the run: rows an earlier claim stored from that step on are dropped (a resumed launch
        trains them again), so the stored curve is the continued one. Rows without a step start
        the history over."""
        self._update_claim(claim, "heartbeat_at = ?", (time.time(),))
        if first:
            self._drop_history_from(claim.run_id, rows[0].get(STEP_KEY) if rows else None)
        start = self._sql(
            "SELECT COALESCE(MAX(idx), -1) + 1 FROM history WHERE run_id = ?", (claim.run_id,)
        ).fetchone()[0]
        self._sql(
            "INSERT INTO history VALUES (?, ?, ?)",
            [(claim.run_id, start + i, json.dumps(row)) for i, row in enumerate(rows)],
            many=True,
        )

    def _drop_history_from(self, run_id: str, step: Any) -> None:
        """Rows at `step` or later go (a resumed launch logs them again); with no step to go by,
        every row goes (a program that does not log one starts over on each launch)."""
        if not isinstance(step, int | float) or isinstance(step, bool):
            self._sql("DELETE FROM history WHERE run_id = ?", (run_id,))
            return
        self._sql(
            "DELETE FROM history WHERE run_id = ? AND json_extract(row, ?) >= ?",
            (run_id, f'$."{STEP_KEY}"', step),
        )

    def finish_run(
        self,
        claim: Claim,
        state: RunState,
        exit_code: int | None,
        summary: dict[str, Any],
        output_tail: str | None,
    ) -> None:
        """Record how the claim's launch ended."""
        assert RunState(state) not in (RunState.PENDING, RunState.RUNNING), state
        self._update_claim(
            claim,
            "state = ?, exit_code = ?, summary = ?, output_tail = ?, ended_at = ?",
            (state, exit_code, json.dumps(summary), output_tail, time.time()),
        )

    def requeue(self, claim: Claim) -> None:
        """Back to pending under the same id, for the next agent: the agent was interrupted, or
        died (its heartbeat expired). Only the claim that owns the run, or the agent that finds it
        expired, may do this.

        The history stays: the next claim's launch resumes from the run's checkpoint if it has
        one, and its first rows replace what it trains again (`append_history(first=True)`)."""
        self._update_claim(claim, "state = ?, agent_id = NULL, pid = NULL, heartbeat_at = NULL", (RunState.PENDING,))

    def preempt(self, claim: Claim, exit_code: int | None, summary: dict[str, Any], output_tail: str | None) -> None:
        """The claim's launch ended by preemption: record how, and queue the run again under the
        same id. The history stays, as on `requeue`."""
        self._update_claim(
            claim,
            "state = ?, agent_id = NULL, pid = NULL, heartbeat_at = NULL, exit_code = ?, summary = ?,"
            " output_tail = ?, ended_at = ?",
            (RunState.PREEMPTED, exit_code, json.dumps(summary), output_tail, time.time()),
        )
