"""The run registry: one SQLite row per run (WAL mode), its epochs in a second table, checkpoints as files beside it.

Every state change of a run is written here as it happens (submitted, started, each finished epoch, ended), so a
server that is killed loses at most the epoch in progress. When a server starts, ``recover`` marks the runs that a
dead server left queued or running as *interrupted*; their completed epochs stay. A registry that cannot be read is
moved aside and rebuilt from the checkpoint files, each of which carries its run's spec, config, history and student.

Nothing read back is trusted: each row is checked (``run.checked``) and a bad one is left out of every page and
listed in ``rejected`` for the teacher; files are read only from inside the runs folder, never through a link.
Every SQLite failure reaches callers as a ``StoreError`` saying whether the file is damaged or only busy.

Connections are opened per operation: SQLite in WAL mode lets the pages read while the worker writes, and a
connection is never shared between threads.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
import uuid
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from . import checkpoint, rules
from .errors import MnistLabError
from .records import RecordError
from .run import ACTIVE, RUN_ID, STATUSES, Run, checked
from .serverlock import ServerLock

__all__ = ["ACTIVE", "STATUSES", "Recovery", "Run", "RunStore", "StoreError", "UnknownRun"]

log = logging.getLogger(__name__)
_DAMAGED = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)  # errors that mean the file itself is broken
_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)  # another connection holds the lock
WAIT_SECONDS = 30  # how long a write waits for another connection's lock (the worker's writes; never under a lock)
PAGE_WAIT_SECONDS = 2  # how long a page's read or write waits: then it says why, and the worker retries a write

SCHEMA_VERSION = 3  # 2: the student's typed name is the column student_name (was who); 3: origin

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
    server TEXT NOT NULL,
    origin TEXT NOT NULL DEFAULT 'trained'
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
    """The registry cannot do what was asked; ``damaged``: the file itself is broken, ``busy``: another program
    holds its lock (wait, never set it aside)."""

    def __init__(self, message: str, damaged: bool = False, busy: bool = False):
        super().__init__(message)
        self.damaged, self.busy = damaged, busy


class UnknownRun(StoreError):
    """No run has that id (never recorded, or deleted)."""


def _store_error(e: sqlite3.Error) -> StoreError:
    code = getattr(e, "sqlite_errorcode", 0) & 0xFF  # the primary code of an extended one
    return StoreError(f"the run registry: {e}", damaged=code in _DAMAGED, busy=code in _BUSY)


@dataclass
class Recovery:
    """What ``RunStore.recover`` found when this server started, for the teacher."""

    notice: str | None = None  # a registry set aside, runs restored from their checkpoints
    restored: list[str] = field(default_factory=list)  # run ids rebuilt from checkpoint files
    interrupted: list[str] = field(default_factory=list)  # runs a dead server left queued or running


class RunStore:
    """The registry in one SQLite file; checkpoints in the same directory."""

    def __init__(self, directory: Path | str, wait: float = WAIT_SECONDS):
        """A handle on the registry in ``directory``; nothing is read or written until ``recover`` (a server) or the
        first read (a monitor, a test, which hold no lock). ``wait``: seconds to wait for another program's lock."""
        self.directory = Path(directory)
        self.wait = wait
        self.path = self.directory / "runs.sqlite3"
        self._lock = ServerLock(self.directory / "servers")
        self.server = self._lock.server
        self.rejected: dict[str, str] = {}  # run id (or file) -> why its record is left out of every page

    # ------------------------------------------------------------------ start-up
    def recover(self) -> Recovery:
        """Make the registry ready for this server: take this server's lock, create or migrate the tables, set a
        damaged registry aside, restore runs from checkpoint files that have no row, and mark the runs a dead server
        left queued or running as interrupted. A StoreError says why the folder cannot be used (then no lock is
        left behind). It runs while a page waits (the server's first), so it waits for a lock only briefly."""
        patient, self.wait = self.wait, min(self.wait, PAGE_WAIT_SECONDS)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # Which server owns an active run: each server holds an exclusive lock on a file of its own while it lives
            # (the OS drops it when the process dies, even by SIGKILL), so recovery leaves a live server's runs alone.
            self._lock.hold()
            return self._recover()
        except OSError as e:
            self.close()
            raise StoreError(f"the runs folder {self.directory} cannot be used: {e.strerror or e}") from None
        except BaseException:  # whatever stops a start leaves no lock file behind
            self.close()
            raise
        finally:
            self.wait = patient

    def _recover(self) -> Recovery:
        recovery = Recovery()
        try:
            self._create()
            problem = self.integrity(quick=True)
        except StoreError as e:
            if not e.damaged:
                raise  # locked, read-only, disk full...: not damage, and not a reason to set anything aside
            problem = str(e)
        if problem != "ok":
            aside = self._set_aside()
            self._create()
            recovery.notice = f"The run registry could not be read ({problem}); it was moved to {aside.name}."
        recovery.restored = self.adopt_checkpoints()
        if recovery.restored:
            recovery.notice = (f"{recovery.notice + ' ' if recovery.notice else ''}{len(recovery.restored)} run(s) "
                               "were restored from their checkpoint files; each counts for the challenge once its "
                               "weights re-evaluate to the accuracy it claims.")
        recovery.interrupted = self.mark_interrupted()
        return recovery

    def _create(self) -> None:
        with self._tx() as con:
            columns = {row["name"] for row in con.execute("PRAGMA table_info(runs)")}
            if "who" in columns:  # a registry from before version 2
                con.execute("ALTER TABLE runs RENAME COLUMN who TO student_name")
            if columns and "origin" not in columns:  # before version 3: every run was trained by a server
                con.execute("ALTER TABLE runs ADD COLUMN origin TEXT NOT NULL DEFAULT 'trained'")
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
        emptied or lost): each checkpoint carries its spec, config, history and student. A file that is not one of
        ours, or whose record does not check, is left alone and listed in ``rejected``. Returns the ids restored."""
        with self._tx() as con:
            known = {row[0] for row in con.execute("SELECT id FROM runs")}
        restored = []
        for path in sorted(self.directory.glob("*.pt")):
            if path.stem in known:
                continue
            try:
                run = _run_from_checkpoint(self.checkpoint_path(path.stem))
                with self._tx() as con:  # all of a run or none of it; a second server adopting too is ignored
                    if not self.add(run, con=con, if_new=True):
                        continue
                    for metrics in run.history:
                        self.add_epoch(run.id, metrics, checkpoint=path.name, con=con)
                    self.ended(run.id, run.status, con=con, error=run.error)
            except Exception as e:  # one bad file, however it is bad, must not stop the server from starting
                self.rejected[path.name] = f"not restored: {e}"
                log.warning("not restoring %s: %s", path, e)
                continue
            restored.append(run.id)
        return restored

    @contextmanager
    def _tx(self, page: bool = False) -> Iterator[sqlite3.Connection]:
        """One transaction. ``page``: for a page's thread, which must not wait long for another program's lock."""
        wait = min(self.wait, PAGE_WAIT_SECONDS) if page else self.wait
        try:
            with closing(sqlite3.connect(self.path, timeout=wait)) as con:
                con.execute("PRAGMA journal_mode = WAL")
                con.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: a crash may lose the last commit only
                con.execute("PRAGMA foreign_keys = ON")
                con.row_factory = sqlite3.Row
                with con:  # one transaction: committed on success, rolled back on error
                    yield con
        except sqlite3.Error as e:
            raise _store_error(e) from e

    # ------------------------------------------------------------------ files
    def checkpoint_path(self, run_id: str) -> Path:
        """Where a run's checkpoint lives: inside this folder, named by its id (nothing else is ever opened)."""
        if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
            raise StoreError(f"{run_id!r} is not a run id")
        return self.directory / f"{run_id}.pt"

    def checkpoint_bytes(self, run_id: str) -> bytes:
        """A run's checkpoint file, to download: a regular file inside the runs folder, never through a link."""
        try:
            return checkpoint.read_regular_file(self.checkpoint_path(run_id), checkpoint.MAX_BYTES,
                                                follow_links=False)
        except checkpoint.CheckpointError as e:
            raise StoreError(str(e)) from None

    def load_checkpoint(self, run_id: str) -> checkpoint.Checkpoint:
        return checkpoint.load(self.checkpoint_path(run_id), follow_links=False)

    # ------------------------------------------------------------------ writes (the job manager's worker)
    @contextmanager
    def _using(self, con: sqlite3.Connection | None, page: bool = False) -> Iterator[sqlite3.Connection]:
        """The caller's transaction, or a new one."""
        if con is not None:
            yield con
        else:
            with self._tx(page) as new:
                yield new

    def add(self, run: Run, con: sqlite3.Connection | None = None, if_new: bool = False, page: bool = False) -> bool:
        """Insert a run's row; with ``if_new``, a run already there is left alone. True when a row was added."""
        with self._using(con, page) as c:
            cur = c.execute(
                f"INSERT {'OR IGNORE ' if if_new else ''}INTO runs (id, owner, student_name, name, spec, config, "
                "params, epochs, eligible, status, submitted_at, server, origin) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run.id, run.owner, run.student_name, run.name, json.dumps(run.spec), json.dumps(run.config),
                 run.params, run.epochs, int(run.challenge_eligible), run.status, run.submitted_at, self.server,
                 run.origin))
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
                self._update(run_id, con=con, checkpoint=Path(checkpoint).name)

    def ended(self, run_id: str, status: str, error: str | None = None, checkpoint: str | None = None,
              con: sqlite3.Connection | None = None, page: bool = False) -> None:
        """The end state; ``checkpoint=None`` keeps whatever checkpoint the last completed epoch left."""
        if status in ACTIVE:
            raise StoreError(f"{status!r} is not an end state")
        with self._using(con, page) as con:
            final = None
            if status == "finished":
                row = con.execute("SELECT test_accuracy FROM epochs WHERE run_id = ? ORDER BY epoch DESC LIMIT 1",
                                  (run_id,)).fetchone()
                final = row["test_accuracy"] if row else None
            kept = {"checkpoint": Path(checkpoint).name} if checkpoint is not None else {}
            self._update(run_id, con=con, status=status, error=error, ended_at=time.time(),
                         final_test_accuracy=final, **kept)

    def set_origin(self, run_id: str, origin: str, note: str | None = None) -> None:
        """Record a restored run's re-evaluation: "verified" or "mismatch", with what was found."""
        self._update(run_id, origin=origin, **({"error": note} if note is not None else {}))

    def delete(self, run_id: str) -> None:
        """Remove an ended run and its checkpoint (a page's request: it does not wait long for a lock)."""
        run = self.get(run_id)
        if run.active:
            raise StoreError("a queued or running job cannot be deleted; cancel it first")
        # The file first: a crash in between leaves a row without weights, never a deleted run that its
        # checkpoint would bring back at the next start (adopt_checkpoints). A link is removed, not what it names.
        try:
            self.checkpoint_path(run_id).unlink(missing_ok=True)
        except OSError as e:  # a folder in its place, a read-only folder
            raise StoreError(f"its checkpoint file cannot be removed: {e.strerror or e}") from None
        with self._tx(page=True) as con:
            con.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    def mark_interrupted(self) -> list[str]:
        """Mark the runs a dead server left queued or running as interrupted, keeping their epochs; their ids."""
        recovered = []
        with self._tx() as con:
            rows = con.execute("SELECT id, status, server FROM runs WHERE status IN ('queued', 'running')").fetchall()
            for row in rows:
                if self._lock.alive(row["server"]):
                    continue
                done = con.execute("SELECT COUNT(*) FROM epochs WHERE run_id = ?", (row["id"],)).fetchone()[0]
                why = (f"The server stopped during epoch {done + 1}; the {done} completed epoch(s) are kept."
                       if row["status"] == "running" else "The server stopped before this run started.")
                self._update(row["id"], con=con, status="interrupted", error=why, ended_at=time.time())
                recovered.append(row["id"])
        return recovered

    def close(self) -> None:
        """Release this server's lock (its remaining active runs become recoverable)."""
        self._lock.release()

    def _update(self, run_id: str, con: sqlite3.Connection | None = None, **values: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in values)
        with self._using(con) as c:
            cur = c.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*values.values(), run_id))
        if cur.rowcount == 0:
            raise UnknownRun(f"no run {run_id!r}")

    # ------------------------------------------------------------------ reads (any thread)
    def get(self, run_id: str) -> Run:
        runs = self._select("WHERE id = ?", (run_id,))
        if not runs:
            raise UnknownRun(f"no run {run_id!r}")
        return runs[0]

    def runs(self, owner: str | None = None, status: tuple[str, ...] | None = None) -> list[Run]:
        """Runs, newest first; only ``owner``'s or those with a ``status`` when given. Records that do not check
        are left out and listed in ``rejected``."""
        where, args = [], []
        if owner is not None:
            where.append("owner = ?")
            args.append(owner)
        if status:
            where.append(f"status IN ({', '.join('?' * len(status))})")
            args.extend(status)
        return self._select(("WHERE " + " AND ".join(where)) if where else "", tuple(args))

    def unverified(self) -> list[Run]:
        """Finished runs restored from checkpoint files whose accuracy has not been re-evaluated yet."""
        return [r for r in self.runs(status=("finished",)) if r.origin == "restored"]

    def count(self) -> int:
        with self._tx(page=True) as con:
            return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]

    def integrity(self, quick: bool = False) -> str:
        """``PRAGMA integrity_check`` (or the faster ``quick_check``): 'ok' for a sound database."""
        with self._tx() as con:
            return con.execute(f"PRAGMA {'quick_check' if quick else 'integrity_check'}").fetchone()[0]

    def _select(self, where: str, args: tuple) -> list[Run]:
        with self._tx(page=True) as con:
            rows = con.execute(f"SELECT * FROM runs {where} ORDER BY submitted_at DESC", args).fetchall()
            ids = [r["id"] for r in rows]
            history: dict[Any, list[Any]] = {i: [] for i in ids}
            if ids:
                marks = ", ".join("?" * len(ids)) if len(ids) < 900 else None
                query = "SELECT run_id, metrics FROM epochs " + (f"WHERE run_id IN ({marks}) " if marks else "")
                for e in con.execute(query + "ORDER BY run_id, epoch", ids if marks else ()):
                    if e["run_id"] in history:
                        history[e["run_id"]].append(_json(e["metrics"]))
        runs = []
        for row in rows:
            try:
                run = checked({**dict(row), "spec": _json(row["spec"]), "config": _json(row["config"])},
                              history[row["id"]])
            except (RecordError, ValueError, TypeError, OverflowError, RecursionError) as e:  # whatever damage raises
                if self.rejected.get(str(row["id"])) is None:
                    log.warning("run %s has a damaged registry record (%s); it is left out", row["id"], e)
                self.rejected[str(row["id"])[:40]] = str(e)
                continue
            run.checkpoint_path = str(self.checkpoint_path(run.id)) if row["checkpoint"] else None
            runs.append(run)
        return runs


def _json(text: Any) -> Any:
    """Parsed JSON, or None for a damaged value."""
    try:
        return json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return None


def _run_from_checkpoint(path: Path) -> Run:
    """A registry row rebuilt from a run's checkpoint file, checked as a row read back is; its weights' accuracy is
    re-evaluated later (``origin`` "restored") before it can count for the challenge."""
    ck = checkpoint.load(path, follow_links=False)
    epochs = rules.TrainingRecord.from_config(ck.config).epochs
    meta = ck.meta
    finished = meta.get("status") == "finished" and len(ck.history) == epochs
    name = meta.get("student_name", meta.get("who", ""))  # "who" in checkpoints written before the rename
    return checked({"id": path.stem, "owner": meta.get("owner", ""), "student_name": name, "spec": ck.spec.to_dict(),
                    "config": ck.config, "status": "finished" if finished else "interrupted", "origin": "restored",
                    "submitted_at": path.stat().st_mtime,
                    "error": None if finished else "Restored from its checkpoint file after the registry was lost; "
                                                   f"{len(ck.history)} of {epochs} epoch(s) had completed."},
                   ck.history)
