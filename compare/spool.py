"""A durable local spool: every answered request is on disk before its answer is returned.

MLflow traces are written later, by a background thread, between generations
(writing during one slows it down). Until then each record waits here, in a
SQLite file beside the store, and the next start replays what a crash left.
WAL mode with `synchronous=NORMAL`: a committed row survives the process being
killed (it is in the OS's page cache); a power cut may lose the last ones.

Each process takes a spool file of its own in the spool folder (`0.sqlite`,
`1.sqlite`, ...), held by a lock the OS releases when the process dies, so
two app processes on one store never write the same record twice, and a
start takes over (and replays) what a dead one left.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    comparison_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX IF NOT EXISTS pending_comparison ON pending (comparison_id);
"""


@dataclass(frozen=True)
class Entry:
    id: int
    payload: dict
    attempts: int


class Spool:
    """Records waiting for MLflow, in one SQLite file, safe from any thread."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._claim = _claim_slot(folder)
        path = Path(self._claim.lock_file).with_suffix(".sqlite")
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            self.replayed_up_to = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM pending").fetchone()[0]

    def put(self, comparison_id: str, payload: dict) -> None:
        text = json.dumps(payload)
        with self._lock:
            self._db.execute(
                "INSERT INTO pending (comparison_id, payload) VALUES (?, ?)", (comparison_id, text)
            )

    def entries(self, comparison_id: str | None = None, max_attempts: int | None = None) -> list[Entry]:
        """Waiting records, oldest first; only one comparison's, or only those tried fewer times."""
        query, args = "SELECT id, payload, attempts FROM pending WHERE 1=1", []
        if comparison_id is not None:
            query, args = query + " AND comparison_id = ?", [comparison_id]
        if max_attempts is not None:
            query, args = query + " AND attempts < ?", [*args, max_attempts]
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id", args).fetchall()
        return [Entry(row[0], json.loads(row[1]), row[2]) for row in rows]

    def remove(self, entry_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM pending WHERE id = ?", (entry_id,))

    def failed(self, entry_id: int, error: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE pending SET attempts = attempts + 1, error = ? WHERE id = ?", (error, entry_id)
            )

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM pending").fetchone()[0]

    def contains(self, entry_id: int) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM pending WHERE id = ?", (entry_id,)).fetchone() is not None


def _claim_slot(folder: Path) -> FileLock:
    """The first spool file no living process holds: ours until this process ends."""
    for slot in range(1000):
        lock = FileLock(folder / f"{slot}.lock", thread_local=False)
        try:
            lock.acquire(timeout=0)
            return lock
        except Timeout:
            continue
    raise RuntimeError(f"No free spool file in {folder}: 1000 processes hold one.")
