"""What the Chat tab's buttons do: compare, regenerate one side, take back the last prompt, stop, clear.

Every handler reads and writes the turns in one `gr.State` (see `compare/turns.py`)
and draws both panes from them (`Shown`, in `ui/shown.py`). Stop is cooperative: Stop raises the
session's flag (`StopSignals`), and the comparison service ends the running
comparison at its next step and records it as stopped (`compare/endings.py`),
rather than it being cancelled under Gradio's feet, which left the page
half-updated. Every comparison keeps its id once it ends, however it ended: a
vote on one that did not finish is refused by the service, with the reason.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import gradio as gr

from compare.comparison import judge
from compare.endings import LABELS, NOT_VOTABLE_NOTE, Ending, ending_of
from compare.service import Comparer, new_comparison_id
from compare.turns import Turn, histories_differ, messages_for
from ui import formatting as fmt
from ui.api import SIDES, asker_of, at_boundary, input_error
from ui.chat_scoring import ScoringJob, Scorings, awaiting
from ui.checks import box_options, check_send
from ui.pacing import paced
from ui.shown import Shown, all_sides
from ui.votes import standing_text


class StopFlag(threading.Event):
    """A comparison's stop flag. `cleared`: Clear raised it, so the page has moved on and the
    comparison's last updates must not land on it (it is still recorded, as stopped)."""

    cleared = False


class StopSignals:
    """One stop flag per browser session, raised by Stop (or Clear) and read by the running comparison."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, StopFlag] = {}

    def arm(self, session: str) -> StopFlag:
        """A fresh flag for the comparison this session is about to run."""
        with self._lock:
            self._events[session] = event = StopFlag()
            return event

    def stop(self, session: str, cleared: bool = False) -> None:
        with self._lock:
            event = self._events.get(session)
        if event is not None:
            event.cleared = event.cleared or cleared
            event.set()

    def current(self, session: str) -> StopFlag:
        with self._lock:
            return self._events.get(session) or StopFlag()


def checker(comparer: Comparer, stops: StopSignals):
    @at_boundary
    def check(prompt, system, max_tokens, temperature, top_p, stop_text, turns, request: gr.Request):
        """Refuse bad input with one toast, before any output is touched."""
        check_send(comparer, prompt, system, (max_tokens, temperature, top_p, stop_text), turns)
        stops.arm(request.session_hash)

    return check


def retry_checker(comparer: Comparer, stops: StopSignals):
    @at_boundary
    def check(system, max_tokens, temperature, top_p, stop_text, turns, request: gr.Request):
        """Retry sends the last prompt again: refuse it before the turn is taken back."""
        prompt, earlier = take_last_prompt(turns)
        check_send(comparer, prompt, system, (max_tokens, temperature, top_p, stop_text), earlier)
        stops.arm(request.session_hash)

    return check


def chat_handler(comparer: Comparer, shown: Shown, stops: StopSignals, scorings: Scorings):
    @at_boundary
    def chat(prompt, system, max_tokens, temperature, top_p, stop_text, scoring, turns, request: gr.Request):
        options = box_options(comparer, max_tokens, temperature, top_p, stop_text)
        stopping = stops.current(request.session_hash)
        conversations = {side: messages_for(turns, side, system, prompt) for side in SIDES}
        comparison_id, latest, turn = new_comparison_id(), {}, Turn(prompt)
        scorings.forget(request.session_hash)  # whatever was waiting is no longer on the page
        label = f"Comparison `{fmt.short_id(comparison_id)}`:"
        yield (
            shown.chats([*turns, turn])
            | shown.scored()
            | {shown.prompt: "", shown.verdict: f"{label} comparing…", shown.last_id: "", shown.diff: ""}
            | {shown.standing: ""}
        )
        asker = asker_of(request)
        updates = comparer.compare(conversations, options, comparison_id, asker, stop=stopping)
        for latest in paced(updates, comparer.limits.stream_interval_s):  # Stop ends it at its next step
            if not stopping.cleared:
                yield shown.live([*turns, turn.answered(latest)], latest)
        if stopping.cleared:
            return  # Clear emptied the page: nothing of this comparison lands on it
        ending = ending_of(latest, stopping.is_set())  # as the service decided, from the same results
        final = [*turns, turn.answered(latest, stopped=ending is Ending.STOPPED)]
        same = not histories_differ(turns, SIDES)
        if ending is Ending.STOPPED:
            summary = f"{label} {_stopped_summary(latest)}"  # scored too: what was shown
        else:
            verdict = judge(latest[SIDES[0]], latest[SIDES[1]], SIDES, same)
            notice = f"  \n⚠️ {comparer.notice}" if comparer.notice else ""
            summary = f"{label} {_verdict_text(verdict, ending)}{notice}"
        scorings.hand_over(
            request.session_hash, ScoringJob(comparison_id, latest, options, bool(scoring), same)
        )
        yield shown.finished(final, latest, summary, comparison_id) | awaiting(
            comparer, shown.scored, scoring
        )

    return chat


def _stopped_summary(latest: Mapping) -> str:
    counts = " and ".join(f"{side} {len(r.pieces)}" for side, r in all_sides(latest).items())
    return (
        f"⏹ Stopped (tokens so far: {counts}). The partial answers stay on screen and are sent to "
        "neither model again; the comparison is kept on the record as stopped, but only comparisons "
        "that finished can be voted on."
    )


def _verdict_text(verdict, ending: Ending) -> str:
    """The verdict's summary as text, saying when the comparison cannot be voted on (timed out, failed)."""
    summary = fmt.plain(verdict.summary)
    return summary if ending is Ending.FINISHED else f"{summary} {NOT_VOTABLE_NOTE}"


def regenerate_checker(comparer: Comparer, stops: StopSignals, side: str):
    @at_boundary
    def check(turns, results, system, max_tokens, temperature, top_p, stop_text, request: gr.Request):
        comparer.require_ready()
        options = box_options(comparer, max_tokens, temperature, top_p, stop_text)
        if not turns or not results:
            raise input_error("Regenerate needs a finished comparison above: send a prompt first.")
        *earlier, last = turns
        comparer.check_fits({side: messages_for(earlier, side, system, last.prompt)}, options)
        stops.arm(request.session_hash)

    return check


def regenerate_handler(comparer: Comparer, shown: Shown, stops: StopSignals, scorings: Scorings, side: str):
    @at_boundary
    def regenerate(
        system, max_tokens, temperature, top_p, stop_text, scoring, turns, results, request: gr.Request
    ):
        """Answer the last prompt again on `side` only; the other side's answer stays."""
        options = box_options(comparer, max_tokens, temperature, top_p, stop_text)
        stopping = stops.current(request.session_hash)
        *earlier, last = turns
        conversations = {s: messages_for(earlier, s, system, last.prompt) for s in SIDES}
        comparison_id, latest = new_comparison_id(), dict(results)
        scorings.forget(request.session_hash)
        label = f"Comparison `{fmt.short_id(comparison_id)}` ({side} regenerated):"
        yield shown.scored() | {
            shown.verdict: f"{label} generating…",
            shown.last_id: "",
            shown.diff: "",
            shown.standing: "",
        }
        asker = asker_of(request)
        updates = comparer.regenerate(side, conversations, options, results, comparison_id, asker, stopping)
        for result in paced(updates, comparer.limits.stream_interval_s):
            latest[side] = result
            if not stopping.cleared:
                yield shown.live([*earlier, last.answered({side: result})], latest)
        if stopping.cleared:
            return  # Clear emptied the page: nothing of this answer lands on it
        same = not histories_differ(earlier, SIDES)
        ending = ending_of({side: latest[side]}, stopping.is_set())
        stopped = ending is Ending.STOPPED
        final = [*earlier, last.answered({side: latest[side]}, stopped=stopped)]
        if stopped:
            summary = f"{label} {_stopped_summary(latest)}"
        else:
            verdict = judge(latest[SIDES[0]], latest[SIDES[1]], SIDES, same)
            summary = f"{label} {_verdict_text(verdict, ending_of(latest))}"
        scorings.hand_over(
            request.session_hash, ScoringJob(comparison_id, latest, options, bool(scoring), same)
        )
        yield shown.finished(final, latest, summary, comparison_id) | awaiting(
            comparer, shown.scored, scoring
        )

    return regenerate


def take_last_prompt(turns: list[Turn]):
    """Retry and edit: take the last turn off both panes and put its prompt back in the box."""
    if not turns:
        raise input_error("There is no prompt to take back yet.")
    return turns[-1].prompt, turns[:-1]


def take_back_checker(scorings: Scorings):
    def check_take_back(turns: list[Turn], request: gr.Request) -> None:
        """Edit's check, before anything on the page changes (a scoring under way then lands nowhere)."""
        take_last_prompt(turns)
        scorings.forget(request.session_hash)

    return check_take_back


def stopper(stops: StopSignals):
    def stop(request: gr.Request) -> None:
        stops.stop(request.session_hash)

    return stop


REOPENED_FIDELITY = (
    "not recorded with a comparison (it is scored as one runs): send a prompt to score a new one."
)


def reopener(shown: Shown, system_box: gr.Textbox):
    def reopen(
        turns: list[Turn],
        system: str,
        comparison_id: str,
        results: Mapping | None = None,
        ending: Ending = Ending.FINISHED,
        vote: str = "",
    ) -> dict:
        """A past comparison in the panes, with its metrics and verdict as its traces recorded them,
        saying whether it can be voted on, and its vote if any."""
        named = f"Comparison `{fmt.short_id(comparison_id)}`"
        results = {side: r for side, r in (results or {}).items() if side in SIDES}
        summary = ""
        if len(results) == len(SIDES):
            summary = _recorded_verdict(results, not histories_differ(turns[:-1], SIDES)) + "  \n"
        if ending is Ending.FINISHED:
            note = f"{named}, reopened from History: {summary}Vote on it, or send a prompt to continue it."
        else:
            how = f"{named} ({LABELS[ending]}), reopened from History: {summary}"
            note = f"{how}{NOT_VOTABLE_NOTE} Send a prompt to continue it."
        return (
            shown.finished(turns, results, note, comparison_id)
            | shown.scored(None, REOPENED_FIDELITY)
            | {system_box: system, shown.prompt: gr.skip()}
            | {shown.standing: standing_text(comparison_id, vote)}
        )

    return reopen


def _recorded_verdict(results: Mapping, same: bool) -> str:
    """The verdict on recorded answers; a record older than its per-token pieces compares texts."""
    left, right = results[SIDES[0]], results[SIDES[1]]
    if (left.text and not left.pieces) or (right.text and not right.pieces):
        same_text = "The two answers are the same text" if left.text == right.text else "The answers differ"
        return f"{same_text} (recorded without per-token pieces, so no token position)."
    return judge(left, right, SIDES, same).summary


def clearer(shown: Shown, stops: StopSignals, scorings: Scorings):
    def clear(request: gr.Request) -> dict:
        """Stop anything running and forget the conversation and its comparison id."""
        stops.stop(request.session_hash, cleared=True)
        scorings.forget(request.session_hash)  # a scoring under way lands nowhere
        return shown.loaded([])

    return clear
