"""The ballot box: whether a vote may be cast now, and one vote per blind battle, across app processes.

Two rules, checked before anything reaches the MLflow store:

- **A rate limit per voter**: at most `VoteLimit.votes` votes in any `VoteLimit.window_s`
  seconds (a changed vote counts too). A refused vote is refused at once, and stores nothing.
- **One vote per blind comparison**: the first vote claims it; any other, however close
  behind (four buttons clicked at once), is refused and stores nothing.

Both live in one SQLite file in the spool folder, which every app process on the same data
folder shares: a write transaction (`BEGIN IMMEDIATE`) holds SQLite's file lock, so two
processes cannot both admit the 21st vote or both claim a battle. Processes on different
machines sharing only a tracking server do not share this file: each enforces its own limit
(the leaderboard's cap per voter still bounds what counts; see `compare/leaderboard.py`).

A vote is admitted first and stored after; if storing fails, the admission is taken back.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS cast (voter TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS cast_voter ON cast (voter, at);
CREATE TABLE IF NOT EXISTS blind (comparison_id TEXT PRIMARY KEY, voter TEXT NOT NULL, at REAL NOT NULL);
"""


class VoteRefused(ValueError):
    """A vote that may not be cast, with the reason; nothing was stored."""


@dataclass(frozen=True)
class VoteLimit:
    """At most `votes` votes per voter in any `window_s` seconds."""

    votes: int = 20
    window_s: float = 600.0


class BallotBox:
    """Admits votes under the limit and claims blind comparisons; safe across threads and processes."""

    def __init__(self, path: Path, limit: VoteLimit | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.limit = limit or VoteLimit()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._lock = threading.Lock()  # one connection, many Gradio worker threads
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)

    @contextlib.contextmanager
    def ballot(self, voter: str, blind_comparison: str | None = None):
        """Admit one vote of `voter` (claiming `blind_comparison`, if given), or raise `VoteRefused`.

        The body stores the vote; if it raises, the admission and the claim are taken back.
        """
        row = self._admit(voter, blind_comparison)
        try:
            yield
        except BaseException:
            self._take_back(row, blind_comparison)
            raise

    def _admit(self, voter: str, blind_comparison: str | None) -> int:
        now, window = time.time(), self.limit.window_s
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # the file's write lock: one admission at a time
            try:
                self._db.execute("DELETE FROM cast WHERE at < ?", (now - window,))
                recent = self._db.execute(
                    "SELECT COUNT(*), MIN(at) FROM cast WHERE voter = ? AND at >= ?", (voter, now - window)
                ).fetchone()
                if recent[0] >= self.limit.votes:
                    wait = max(1, round(recent[1] + window - now))
                    raise VoteRefused(
                        f"Too many votes: at most {self.limit.votes} in {_duration(window)} per voter. "
                        f"Try again in {_duration(wait)}."
                    )
                if blind_comparison is not None:
                    claimed = self._db.execute(
                        "INSERT OR IGNORE INTO blind VALUES (?, ?, ?)", (blind_comparison, voter, now)
                    )
                    if claimed.rowcount == 0:
                        raise VoteRefused("This blind comparison has already been voted on; start a new one.")
                row = self._db.execute("INSERT INTO cast VALUES (?, ?)", (voter, now)).lastrowid
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return row

    def _take_back(self, row: int, blind_comparison: str | None) -> None:
        with self._lock:
            self._db.execute("DELETE FROM cast WHERE rowid = ?", (row,))
            if blind_comparison is not None:
                self._db.execute("DELETE FROM blind WHERE comparison_id = ?", (blind_comparison,))


def _duration(seconds: float) -> str:
    """A short human duration.

    >>> _duration(600), _duration(90), _duration(1)
    ('10 minutes', '90 s', '1 s')
    """
    if seconds >= 120 and seconds % 60 == 0:
        return f"{int(seconds // 60)} minutes"
    return f"{round(seconds)} s"
