"""Fidelity scoring in the Chat tab: an event of its own, chained after the one that generates.

Why not in the generating handler: Gradio's default `trigger_mode` is "once", so while a
dependency is pending, its triggers are ignored. Scoring at the end of the generator kept Send's
dependency pending for the whole scoring (about 12 s at full size) after the verdict was shown,
and a Send clicked then was silently dropped. Now the generating event ends with the panes final
and hands the comparison over here (`Scorings`, one per browser session, as `StopSignals` keeps
its flags); the scoring runs in the models' queue, so a new comparison waits for it rather than
running beside it. A result whose comparison is no longer the session's (a newer comparison,
Clear, Edit) is dropped with `gr.skip()` rather than written over the page.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

import gradio as gr

from compare.service import Comparer

SCORING_NOTE = "scoring the answers through both models…"


@dataclass(frozen=True, eq=False)  # compared by identity: the same hand-over, not an equal one
class ScoringJob:
    """A comparison whose panes are final, with what its scoring needs."""

    comparison_id: str
    latest: Mapping  # side -> Result, as shown
    options: object  # GenerationOptions
    wanted: bool  # the page's "Score fidelity" switch
    same: bool  # both sides were sent the same history


class Scorings:
    """The comparison each browser session has waiting for (or being) scored, if any."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, ScoringJob] = {}

    def hand_over(self, session: str, job: ScoringJob) -> None:
        with self._lock:
            self._jobs[session] = job

    def forget(self, session: str) -> None:
        """A new comparison, Clear or Edit: the page no longer shows what was waiting."""
        with self._lock:
            self._jobs.pop(session, None)

    def current(self, session: str) -> ScoringJob | None:
        with self._lock:
            return self._jobs.get(session)


def scorer(comparer: Comparer, scored, scorings: Scorings):
    """The scoring step; `scored(result, reason)` makes the fidelity line and strip's updates."""

    def score(request: gr.Request) -> dict:
        session = request.session_hash
        job = scorings.current(session)
        if job is None:  # the comparison ended in an error, or the page moved on before this ran
            return _untouched(scored)
        result = comparer.score(job.latest, job.options, job.wanted, job.same).to_api()
        if scorings.current(session) is not job:  # cleared or taken back while it scored
            return _untouched(scored)
        return scored(result["fidelity"], result["fidelity_reason"])

    return score


def awaiting(comparer: Comparer, scored, wanted: bool) -> dict:
    """The fidelity line as the panes become final: "scoring…" when it will be scored."""
    return scored(None, SCORING_NOTE) if comparer.fidelity and wanted else scored()


def _untouched(scored) -> dict:
    return dict.fromkeys(scored(), gr.skip())
