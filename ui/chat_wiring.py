"""Which handler each of the Chat tab's buttons runs, in which queue, and what follows it.

The handlers are in `chat_events.py` and `chat_scoring.py`; `chat.py` lays the buttons out.
Every check is a step with no outputs, so bad input is one toast and the page is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from compare.service import Comparer
from ui.api import MODEL_EVENTS, SIDES
from ui.chat_events import (
    Shown,
    StopSignals,
    chat_handler,
    checker,
    clearer,
    regenerate_checker,
    regenerate_handler,
    retry_checker,
    take_back_checker,
    take_last_prompt,
)
from ui.chat_scoring import Scorings, scorer, scoring_stopper


@dataclass(frozen=True)
class Buttons:
    """What starts, stops and takes back a comparison in named mode."""

    send: gr.Button
    stop: gr.Button
    regenerate: dict[str, gr.Button]  # side -> "Regenerate side"
    edit: gr.Button
    retry: gr.Button
    clear: gr.Button


@dataclass(frozen=True)
class Wiring:
    """What the Chat tab's events are wired with."""

    comparer: Comparer
    shown: Shown
    settings: list  # system prompt, max tokens, temperature, top_p, stop sequences
    scoring: gr.Checkbox  # "Score fidelity"
    stops: StopSignals
    scorings: Scorings


PRIVATE = {"api_visibility": "private"}
QUICK = {"concurrency_limit": None, **PRIVATE}  # checks and take-backs: at once, beside what runs


def wire_comparisons(wiring: Wiring, buttons: Buttons) -> None:
    """Send, retry, regenerate, edit, Stop and Clear: each checks first; a generation runs in the
    models' queue.

    Fidelity is scored in an event of its own after each generating one (see `ui/chat_scoring.py`):
    a generating event still pending ignores its triggers, so Send must not wait on the scoring.
    """
    shown = wiring.shown
    score = scorer(wiring.comparer, shown.scored, wiring.scorings)
    scored, run = list(shown.fidelity.values()), _models_queue(wiring.comparer)
    for generating in _generating_events(wiring, buttons):  # in the models' queue: a new one waits for it
        # "multiple": with more than one generation at a time, a comparison may end while the one
        # before is still scored, and Gradio would skip the trigger of a pending event
        generating.success(score, None, scored, trigger_mode="multiple", **run)
    _wire_take_backs(wiring, buttons)


def _models_queue(comparer: Comparer) -> dict:
    return {"concurrency_id": MODEL_EVENTS, "concurrency_limit": comparer.limits.concurrency, **PRIVATE}


def _generating_events(w: Wiring, b: Buttons) -> list:
    """Send, Enter, Retry and each Regenerate: a check with no outputs (one toast), then the generation."""
    shown, prompt, turns, run = w.shown, w.shown.prompt, w.shown.turns, _models_queue(w.comparer)
    check, generate = checker(w.comparer, w.stops), chat_handler(w.comparer, shown, w.stops, w.scorings)
    asked = [prompt, *w.settings, w.scoring, turns]
    events = [
        trigger(check, [prompt, *w.settings, turns], None, **QUICK).success(
            generate, asked, shown.all(), **run
        )
        for trigger in (b.send.click, prompt.submit)
    ]
    events.append(
        b.retry.click(retry_checker(w.comparer, w.stops), [*w.settings, turns], None, **QUICK)
        .success(take_last_prompt, turns, [prompt, turns], **QUICK)
        .success(generate, asked, shown.all(), **run)
    )
    for side, button in b.regenerate.items():
        check_side = regenerate_checker(w.comparer, w.stops, side)
        again = regenerate_handler(w.comparer, shown, w.stops, w.scorings, side)
        events.append(
            button.click(check_side, [turns, shown.results, *w.settings], None, **QUICK).success(
                again, [*w.settings, w.scoring, turns, shown.results], shown.all(), **run
            )
        )
    return events


def _wire_take_backs(w: Wiring, b: Buttons) -> None:
    """Edit, Stop and Clear, at once; each also keeps a scoring under way off the page."""
    shown, turns = w.shown, w.shown.turns
    b.edit.click(take_back_checker(w.scorings), turns, None, **QUICK).success(
        take_last_prompt, turns, [shown.prompt, turns], **QUICK
    ).success(
        shown.loaded, turns, shown.all(), **QUICK
    )  # the comparison taken back can no longer be voted on
    stop = scoring_stopper(w.stops, shown.scored, w.scorings)  # a comparison running, or its scoring
    b.stop.click(stop, None, list(shown.fidelity.values()), **QUICK)
    chats = [shown.panes[side]["chat"] for side in SIDES]
    for trigger in (b.clear.click, *(chat.clear for chat in chats)):  # a pane never clears alone
        trigger(clearer(shown, w.stops, w.scorings), None, shown.all(), **QUICK)
