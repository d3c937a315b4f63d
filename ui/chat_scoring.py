"""Fidelity scoring in the Chat tab: an event of its own, chained after the one that generates.

Why not in the generating handler: Gradio's default `trigger_mode` is "once", so while a
dependency is pending, its triggers are ignored. Scoring at the end of the generator kept Send's
dependency pending for the whole scoring (about 12 s at full size) after the verdict was shown,
and a Send clicked then was silently dropped. Now the generating event ends with the panes final
and hands the comparison over here (`Scorings`, one per browser session, as `StopSignals` keeps
its flags); the scoring runs in the models' queue, so a new comparison waits for it rather than
running beside it. A result whose comparison is no longer the session's (a newer comparison,
Clear, Edit, Stop) is dropped with `gr.skip()` rather than written over the page.

Stop during the scoring abandons it: the line says so at once. The pass through the models is not
cut short (it is one forward pass per side, not a stream with steps to stop at); its result is
simply not shown. Whichever of the scoring and Stop claims the job first wins (`Scorings.claim`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

import gradio as gr

from compare.service import Comparer

SCORING_NOTE = "scoring the answers through both models…"
STOPPED_NOTE = "not scored: Stop was clicked while the answers were being scored."


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

    def claim(self, session: str, job: ScoringJob | None = None) -> ScoringJob | None:
        """Take the session's job off the list (only if it is `job`, when given); None if gone."""
        with self._lock:
            current = self._jobs.get(session)
            if current is None or (job is not None and current is not job):
                return None
            return self._jobs.pop(session)


def scorer(comparer: Comparer, scored, scorings: Scorings):
    """The scoring step; `scored(result, reason)` makes the fidelity line and strip's updates."""

    def score(request: gr.Request) -> dict:
        session = request.session_hash
        job = scorings.current(session)
        if job is None:  # the comparison ended in an error, or the page moved on before this ran
            return _untouched(scored)
        result = comparer.score(job.latest, job.options, job.wanted, job.same).to_api()
        if scorings.claim(session, job) is None:  # cleared, taken back or stopped while it scored
            return _untouched(scored)
        return scored(result["fidelity"], result["fidelity_reason"])

    return score


def scoring_stopper(stops, scored, scorings: Scorings):
    """The Chat tab's Stop: raises the session's stop flag (`StopSignals`) for a running comparison,
    and abandons a scoring waiting or under way, saying so on the fidelity line."""

    def stop(request: gr.Request) -> dict:
        stops.stop(request.session_hash)
        if scorings.claim(request.session_hash) is None:  # a comparison runs, or nothing does
            return _untouched(scored)
        return scored(None, STOPPED_NOTE)

    return stop


def awaiting(comparer: Comparer, scored, wanted: bool) -> dict:
    """The fidelity line as the panes become final: "scoring…" when it will be scored."""
    return scored(None, SCORING_NOTE) if comparer.fidelity and wanted else scored()


def _untouched(scored) -> dict:
    return dict.fromkeys(scored(), gr.skip())
