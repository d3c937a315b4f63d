"""Votes on recorded comparisons: checked, admitted by the ballot box, stored as MLflow feedback.

The comparison service holds one `Voting` (`Comparer.votes`). Only a finished comparison takes a
vote (`compare/endings.py`); the ballot box (`compare/ballots.py`) admits it, under the voter's
rate limit and a blind battle's one vote, before anything is stored, and a refused vote stores
nothing. Concession: a vote and the one it replaces are stored one at a time in this process
(a lock), since MLflow has no compare-and-set on feedback.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from compare.ballots import BallotBox, VoteLimit
from compare.endings import refusal
from compare.errors import RequestError, StoreError
from compare.owners import Asker
from compare.recorder import Recorder
from compare.requests import check_request, schemas
from compare.votes import canonical_choice, log_vote
from wrappers.errors import public_text
from wrappers.limits import Limits


@dataclass(frozen=True)
class Voting:
    """The votes of one comparison service: its recorder's comparisons, under its limits."""

    recorder: Recorder | None  # None: nothing is traced, so nothing can be voted on
    limits: Limits
    ballots: BallotBox | None = field(init=False)  # the vote limit and blind claims; None without records
    _lock: threading.Lock = field(init=False)  # a vote and the one it replaces, one at a time

    def __post_init__(self) -> None:
        limit = VoteLimit(self.limits.votes_per_voter, self.limits.vote_window_s)
        box = BallotBox(self.recorder.folder / "ballots.sqlite", limit) if self.recorder else None
        object.__setattr__(self, "ballots", box)
        object.__setattr__(self, "_lock", threading.Lock())

    def vote(
        self, comparison_id: Any, choice: Any, comment: Any, asker: Asker, voter: str | None = None
    ) -> tuple[list[str], str | None]:
        """Store the asker's vote on their own comparison as MLflow feedback.

        `voter` is who the rate limit and the leaderboard count the vote against (default: the
        asker's owner id). Returns the trace ids and the vote it replaced (None for a first vote).
        """
        values = {"comparison_id": comparison_id, "choice": choice, "comment": comment}
        asked = check_request(schemas(self.limits).vote, values)
        return self.store(
            asked.comparison_id,
            canonical_choice(asked.choice),
            asked.comment,
            voter or asker.owner,
            owner=asker.owner,
        )

    def store(
        self,
        comparison_id: str,
        choice: str,
        comment: Any,
        voter: str,
        metadata=None,
        owner: str | None = None,
    ) -> tuple[list[str], str | None]:
        """Store a checked vote (blind votes carry `metadata`); return the trace ids and the earlier vote.

        With `owner`, only a comparison of that owner; anyone else's, or an unknown id, gets
        the same answer, so ids cannot be probed. (A blind battle's vote is checked by its battle.)
        Only a finished comparison takes a vote; the ballot box admits it (the voter's rate
        limit, a blind comparison's only vote) before anything is stored, and a refused vote
        stores nothing.
        """
        if self.recorder is None or self.ballots is None:
            raise RequestError("Votes need tracing, which is off in this app.")
        try:
            found = self.recorder.comparison(comparison_id)
        except Exception as exc:
            raise StoreError(public_text(f"The comparison could not be read from MLflow: {exc}")) from exc
        if not found.trace_ids or (owner is not None and found.owner != owner):
            raise RequestError("No comparison of yours has that id.")
        if reason := refusal(found.ending):
            raise RequestError(reason)
        metadata = dict(metadata or {}) | {"voter": voter}
        claim = comparison_id if metadata.get("blind") == "true" else None
        try:
            with self.ballots.ballot(voter, claim), self._lock:
                previous = log_vote(found.trace_ids, choice, comment, metadata)
        except ValueError as exc:  # refused by the ballot box or by the vote's own checks: nothing stored
            raise RequestError(str(exc)) from exc
        except Exception as exc:
            raise StoreError(public_text(f"The vote could not be stored in MLflow: {exc}")) from exc
        return found.trace_ids, previous
