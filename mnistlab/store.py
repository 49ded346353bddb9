"""The run registry: one SQLite row per run (WAL mode), its epochs in a second table, checkpoints as files beside it.

Every state change of a run is written here as it happens (submitted, started, each finished epoch, ended), so a
server that is killed loses at most the epoch in progress. When a server starts, ``recover`` marks the runs that a
dead server left queued or running as *interrupted*; their completed epochs stay. A registry that cannot be read is
moved aside and rebuilt from the checkpoint files, each of which carries its run's spec, config, history and student.

Connections are opened per operation: SQLite in WAL mode lets the pages read while the worker writes, and a
connection is never shared between threads.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import time
import uuid
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

from . import checkpoint, rules
from .arch import ArchSpec, count_params
from .errors import MnistLabError

log = logging.getLogger(__name__)
_DAMAGED = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)  # errors that mean the file itself is broken

STATUSES = ("queued", "running", "finished", "cancelled", "failed", "interrupted")
ACTIVE = ("queued", "running")
SCHEMA_VERSION = 2  # 2: the student's typed name is the column student_name (was who)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    student_name TEXT NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    config TEXT NOT NULL,
    params INTEGER NOT NULL,
    epochs INTEGER NOT NULL,
    eligible INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ({', '.join(repr(s) for s in STATUSES)})),
    device TEXT NOT NULL DEFAULT '',
    precision TEXT NOT NULL DEFAULT '',
    final_test_accuracy REAL,
    error TEXT,
    checkpoint TEXT,
    submitted_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    server TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status);
CREATE TABLE IF NOT EXISTS epochs (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    test_accuracy REAL NOT NULL,
    metrics TEXT NOT NULL,
    PRIMARY KEY (run_id, epoch)
);
"""


class StoreError(MnistLabError):
    """A run that does not exist or cannot change that way; the message says why."""


@dataclass
class Run:
    """One training run as the pages see it: what the registry holds, plus live progress while it is active."""

    id: str
    owner: str  # the submitting session, for "my runs" and the one-job-per-session rule
    student_name: str  # the name the student typed; always shown as plain text
    name: str  # the network's name
    spec: dict[str, Any]
    config: dict[str, Any]
    params: int
    epochs: int
    status: str = "queued"
    device: str = ""
    precision: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    checkpoint_path: str | None = None
    submitted_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    eligible: bool | None = None  # as stored; computed from the spec and config when None
    # live only, never stored:
    queue_position: int | None = None  # 1 = next to run; None when not queued
    batch: int = 0
    batches: int = 0

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def epochs_done(self) -> int:
        """Epochs completed."""
        return len(self.history)

    @property
    def progress(self) -> float:
        """Fraction of all batches done, 0..1."""
        if self.status == "finished":
            return 1.0
        if not self.epochs or not self.batches:
            return self.epochs_done / self.epochs if self.epochs else 0.0
        return min(1.0, (self.epochs_done * self.batches + self.batch) / (self.epochs * self.batches))

    @property
    def final_test_accuracy(self) -> float | None:
        """The last epoch's test accuracy of a finished run (never a best-epoch pick)."""
        return self.history[-1]["test_accuracy"] if self.history and self.status == "finished" else None

    @property
    def train_seconds(self) -> float:
        return sum(h["seconds"] for h in self.history)

    def verdict(self) -> rules.Verdict:
        """Each challenge rule and whether this run meets it (the accuracy first, once it has finished)."""
        return rules.judge(ArchSpec.from_dict(self.spec), rules.TrainingRecord.from_config(self.config),
                           self.final_test_accuracy)

    @property
    def challenge_eligible(self) -> bool:
        """Every rule but the accuracy met: the leaderboard's filter. As stored, else judged from the spec and
        config."""
        if self.eligible is not None:
            return self.eligible
        return self.verdict().eligible


@dataclass
class Recovery:
    """What ``RunStore.recover`` found when this server started, for the teacher."""

    notice: str | None = None  # a registry set aside, runs restored from their checkpoints
    restored: list[str] = field(default_factory=list)  # run ids rebuilt from checkpoint files
    interrupted: list[str] = field(default_factory=list)  # runs a dead server left queued or running


class RunStore:
    """The registry in one SQLite file; checkpoints in the same directory."""

    def __init__(self, directory: Path | str):
        """A handle on the registry in ``directory``; nothing is read or written until ``recover`` (a server) or the
        first read (a monitor, a test, which hold no lock)."""
        self.directory = Path(directory)
        self.path = self.directory / "runs.sqlite3"
        self.server = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._lock_file = None

    def recover(self) -> Recovery:
        """Make the registry ready for this server: take this server's lock, create or migrate the tables, set a
        damaged registry aside, restore runs from checkpoint files that have no row, and mark the runs a dead server
        left queued or running as interrupted."""
        self.directory.mkdir(parents=True, exist_ok=True)
        # Which server owns an active run: each server holds an exclusive lock on a file of its own for as long as it
        # lives (the OS drops it when the process dies, even by SIGKILL), so recovery leaves a live server's runs alone.
        if self._lock_file is None:
            self._lock_file = _hold_lock(self._server_lock(self.server))
        recovery = Recovery()
        try:
            self._create()
            problem = self.integrity(quick=True)
        except sqlite3.DatabaseError as e:
            if (getattr(e, "sqlite_errorcode", 0) & 0xFF) not in _DAMAGED:  # the primary code of an extended one
                raise  # locked, read-only, disk full...: not damage, and not a reason to set anything aside
            problem = str(e)
        if problem != "ok":
            aside = self._set_aside()
            self._create()
            recovery.notice = f"The run registry could not be read ({problem}); it was moved to {aside.name}."
        recovery.restored = self.adopt_checkpoints()
        if recovery.restored:
            recovery.notice = (f"{recovery.notice + ' ' if recovery.notice else ''}{len(recovery.restored)} run(s) "
                               "were restored from their checkpoint files.")
        recovery.interrupted = self.mark_interrupted()
        return recovery

    def _create(self) -> None:
        with self._tx() as con:
            columns = {row["name"] for row in con.execute("PRAGMA table_info(runs)")}
            if "who" in columns:  # a registry from before version 2
                con.execute("ALTER TABLE runs RENAME COLUMN who TO student_name")
            con.executescript(_SCHEMA)
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _set_aside(self) -> Path:
        """Move a damaged registry (and its WAL files) out of the way, keeping it for a closer look."""
        aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}")
        for suffix in ("", "-wal", "-shm"):
            part = Path(f"{self.path}{suffix}")
            if part.exists():
                part.rename(Path(f"{aside}{suffix}"))
        return aside

    def adopt_checkpoints(self) -> list[str]:
        """Register the runs whose checkpoint file is in this folder but whose row is not (a registry set aside,
        emptied or lost): each checkpoint carries its spec, config, history and student. Returns their ids."""
        with self._tx() as con:
            known = {row[0] for row in con.execute("SELECT id FROM runs")}
        restored = []
        for path in sorted(self.directory.glob("*.pt")):
            if path.stem in known:
                continue
            try:
                run, history, finished = _run_from_checkpoint(path)
                with self._tx() as con:  # all of a run or none of it; a second server adopting too is ignored
                    if not self.add(run, con=con, if_new=True):
                        continue
                    for metrics in history:
                        self.add_epoch(run.id, metrics, checkpoint=str(path), con=con)
                    self.ended(run.id, "finished" if finished else "interrupted", con=con, error=None if finished
                               else f"Restored from its checkpoint file after the registry was lost; "
                                    f"{len(history)} of {run.epochs} epoch(s) had completed.")
            except Exception as e:  # one unreadable file must not stop the server from starting
                log.warning("not restoring %s: %s", path, e)
                continue
            restored.append(run.id)
        return restored

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30)) as con:
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: a crash can lose the last commit, never corrupt
            con.execute("PRAGMA foreign_keys = ON")
            con.row_factory = sqlite3.Row
            with con:  # one transaction: committed on success, rolled back on error
                yield con

    def checkpoint_path(self, run_id: str) -> Path:
        return self.directory / f"{run_id}.pt"

    # ------------------------------------------------------------------ writes (the job manager's worker)
    @contextmanager
    def _using(self, con: sqlite3.Connection | None) -> Iterator[sqlite3.Connection]:
        """The caller's transaction, or a new one."""
        if con is not None:
            yield con
        else:
            with self._tx() as new:
                yield new

    def add(self, run: Run, con: sqlite3.Connection | None = None, if_new: bool = False) -> bool:
        """Insert a run's row; with ``if_new``, a run already there is left alone. True when a row was added."""
        with self._using(con) as c:
            cur = c.execute(
                f"INSERT {'OR IGNORE ' if if_new else ''}INTO runs (id, owner, student_name, name, spec, config, "
                "params, "
                "epochs, eligible, status, submitted_at, server) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run.id, run.owner, run.student_name, run.name, json.dumps(run.spec), json.dumps(run.config),
                 run.params,
                 run.epochs, int(run.challenge_eligible), run.status, run.submitted_at, self.server))
            return cur.rowcount == 1

    def started(self, run_id: str) -> None:
        self._update(run_id, status="running", started_at=time.time())

    def set_device(self, run_id: str, device: str, precision: str) -> None:
        self._update(run_id, device=device, precision=precision)

    def add_epoch(self, run_id: str, metrics: dict[str, Any], checkpoint: str | None = None,
                  con: sqlite3.Connection | None = None) -> None:
        """One completed epoch, and (in the same transaction) the checkpoint holding its weights."""
        with self._using(con) as con:
            con.execute("INSERT OR REPLACE INTO epochs (run_id, epoch, test_accuracy, metrics) VALUES (?, ?, ?, ?)",
                        (run_id, metrics["epoch"], metrics["test_accuracy"], json.dumps(metrics)))
            if checkpoint is not None:
                self._update(run_id, con=con, checkpoint=checkpoint)

    def ended(self, run_id: str, status: str, error: str | None = None, checkpoint: str | None = None,
              con: sqlite3.Connection | None = None) -> None:
        """The end state; ``checkpoint=None`` keeps whatever checkpoint the last completed epoch left."""
        if status in ACTIVE:
            raise StoreError(f"{status!r} is not an end state")
        with self._using(con) as con:
            final = None
            if status == "finished":
                row = con.execute("SELECT test_accuracy FROM epochs WHERE run_id = ? ORDER BY epoch DESC LIMIT 1",
                                  (run_id,)).fetchone()
                final = row["test_accuracy"] if row else None
            kept = {"checkpoint": checkpoint} if checkpoint is not None else {}
            self._update(run_id, con=con, status=status, error=error, ended_at=time.time(),
                         final_test_accuracy=final, **kept)

    def delete(self, run_id: str) -> None:
        """Remove an ended run and its checkpoint."""
        run = self.get(run_id)
        if run.active:
            raise StoreError("a queued or running job cannot be deleted; cancel it first")
        # The file first: a crash in between leaves a row without weights, never a deleted run that its
        # checkpoint would bring back at the next start (adopt_checkpoints).
        self.checkpoint_path(run_id).unlink(missing_ok=True)
        with self._tx() as con:
            con.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    def mark_interrupted(self) -> list[str]:
        """Mark the runs a dead server left queued or running as interrupted, keeping their epochs; their ids."""
        recovered = []
        with self._tx() as con:
            rows = con.execute("SELECT id, status, server FROM runs WHERE status IN ('queued', 'running')").fetchall()
            for row in rows:
                if self._server_alive(row["server"]):
                    continue
                done = con.execute("SELECT COUNT(*) FROM epochs WHERE run_id = ?", (row["id"],)).fetchone()[0]
                why = (f"The server stopped during epoch {done + 1}; the {done} completed epoch(s) are kept."
                       if row["status"] == "running" else "The server stopped before this run started.")
                self._update(row["id"], con=con, status="interrupted", error=why, ended_at=time.time())
                recovered.append(row["id"])
        return recovered

    def _server_lock(self, server: str) -> Path:
        locks = self.directory / "servers"
        locks.mkdir(exist_ok=True)
        return locks / f"{server}.lock"

    def _server_alive(self, server: str) -> bool:
        if server == self.server:
            return True
        path = self._server_lock(server)
        if fcntl is None:  # no flock (Windows): only this process's own stores are known to be alive
            return False
        try:
            with open(path, "a+") as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # we got it: its owner is gone
        except BlockingIOError:
            return True
        path.unlink(missing_ok=True)
        return False

    def close(self) -> None:
        """Release this server's lock (its remaining active runs become recoverable)."""
        if self._lock_file is None:
            return
        self._lock_file.close()
        self._server_lock(self.server).unlink(missing_ok=True)

    def _update(self, run_id: str, con: sqlite3.Connection | None = None, **values: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in values)
        with self._using(con) as c:
            cur = c.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*values.values(), run_id))
        if cur.rowcount == 0:
            raise StoreError(f"no run {run_id!r}")

    # ------------------------------------------------------------------ reads (any thread)
    def get(self, run_id: str) -> Run:
        runs = self._select("WHERE id = ?", (run_id,))
        if not runs:
            raise StoreError(f"no run {run_id!r}")
        return runs[0]

    def runs(self, owner: str | None = None, status: tuple[str, ...] | None = None) -> list[Run]:
        """Runs, newest first; only ``owner``'s or those with a ``status`` when given."""
        where, args = [], []
        if owner is not None:
            where.append("owner = ?")
            args.append(owner)
        if status:
            where.append(f"status IN ({', '.join('?' * len(status))})")
            args.extend(status)
        return self._select(("WHERE " + " AND ".join(where)) if where else "", tuple(args))

    def count(self) -> int:
        with self._tx() as con:
            return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]

    def integrity(self, quick: bool = False) -> str:
        """``PRAGMA integrity_check`` (or the faster ``quick_check``): 'ok' for a sound database."""
        with self._tx() as con:
            return con.execute(f"PRAGMA {'quick_check' if quick else 'integrity_check'}").fetchone()[0]

    def _select(self, where: str, args: tuple) -> list[Run]:
        with self._tx() as con:
            rows = con.execute(f"SELECT * FROM runs {where} ORDER BY submitted_at DESC", args).fetchall()
            ids = [r["id"] for r in rows]
            history: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
            if ids:
                marks = ", ".join("?" * len(ids)) if len(ids) < 900 else None
                query = "SELECT run_id, metrics FROM epochs " + (f"WHERE run_id IN ({marks}) " if marks else "")
                for e in con.execute(query + "ORDER BY run_id, epoch", ids if marks else ()):
                    metrics = _json(e["metrics"])
                    if e["run_id"] in history and isinstance(metrics, dict):  # a damaged epoch row is left out
                        history[e["run_id"]].append(metrics)
        runs = []
        for r in rows:
            spec, config = _json(r["spec"]), _json(r["config"])
            if not isinstance(spec, dict) or not isinstance(config, dict):
                log.warning("run %s has a damaged registry row; it is left out", r["id"])
                continue
            # Checkpoints live beside the registry; the file name is kept, so a moved or restored folder still works.
            ckpt = str(self.directory / Path(r["checkpoint"]).name) if r["checkpoint"] else None
            runs.append(Run(id=r["id"], owner=r["owner"], student_name=r["student_name"], name=r["name"], spec=spec,
                            config=config,
                            params=r["params"], epochs=r["epochs"], status=r["status"], device=r["device"],
                            precision=r["precision"], history=history[r["id"]], error=r["error"],
                            checkpoint_path=ckpt, submitted_at=r["submitted_at"], started_at=r["started_at"],
                            ended_at=r["ended_at"], eligible=bool(r["eligible"])))
        return runs


def _json(text: Any) -> Any:
    """Parsed JSON, or None for a damaged value."""
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def _run_from_checkpoint(path: Path) -> tuple[Run, list[dict[str, Any]], bool]:
    """A registry row rebuilt from a run's checkpoint file: (run, its epochs' metrics, whether it finished)."""
    ck = checkpoint.load(path)
    epochs = rules.TrainingRecord.from_config(ck.config).epochs
    history = [h for h in ck.history if isinstance(h, dict) and "epoch" in h and "test_accuracy" in h]
    meta = ck.meta
    name = meta.get("student_name", meta.get("who", ""))  # "who" in checkpoints written before the rename
    run = Run(id=path.stem, owner=str(meta.get("owner", "")), student_name=str(name), name=ck.spec.name,
              spec=ck.spec.to_dict(), config=ck.config, params=count_params(ck.spec), epochs=epochs,
              submitted_at=path.stat().st_mtime)
    return run, history, meta.get("status") == "finished" and len(history) == epochs


def _hold_lock(path: Path):
    """Open ``path`` and hold an exclusive lock on it; the returned file must stay open for the lock to last."""
    f = open(path, "a+")
    if fcntl is not None:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return f
