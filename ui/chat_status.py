"""The status line above the Chat tab's panes, and each side's model card under its details.

During start-up a one-second timer shows each side's progress and the last lines of its log,
and Send waits ("Loading models…"); once both are done, the cards are filled in and the timer stops.
"""

from __future__ import annotations

import gradio as gr

from compare.service import Comparer
from ui import formatting as fmt
from ui.api import SIDES
from wrappers.errors import public_text


def status_poll(demo, comparer: Comparer, status, panes, send) -> None:
    """Show start-up progress until both models are ready, then their model cards; Send waits."""
    startup = comparer.startup
    timer = gr.Timer(1.0, active=startup is not None)

    def poll():
        if startup is None:
            return {timer: gr.Timer(active=False)}
        states, lines = startup.snapshot()
        updates = {status: startup_status(states, lines, startup.notices, startup.finished)}
        if startup.finished:
            updates |= {panes[side]["card"]: _card(comparer, side, states[side]) for side in SIDES}
            updates |= {timer: gr.Timer(active=False), send: gr.Button("Send", interactive=True)}
        return updates

    outputs = [status, timer, send, *(panes[side]["card"] for side in SIDES)]
    timer.tick(poll, None, outputs, api_visibility="private", concurrency_limit=None)
    demo.load(poll, None, outputs, api_visibility="private", concurrency_limit=None)


def startup_status(states: dict[str, str], lines: list[str], notices: list[str], finished: bool) -> str:
    """The status line above the panes: each side's state, and what a visitor should know all along
    (e.g. limits lowered to fit the memory); during start-up, also the last lines of its log.

    >>> startup_status({"onnx": "ready"}, [], ["Limits lowered."], finished=True)
    '<small>**onnx**: ready</small>\\n\\n⚠️ Limits lowered.'
    """
    text = public_text(" · ".join(f"**{side}**: {state}" for side, state in states.items()))
    notes = "".join(f"\n\n⚠️ {public_text(notice)}" for notice in notices)
    if finished:
        return f"<small>{text}</small>{notes}"
    log = public_text("\n".join(lines[-4:]))
    return f"Start-up: {text}{notes}\n\n```\n{log}\n```"


def _card(comparer: Comparer, side: str, state: str) -> str:
    if not state.startswith("ready"):
        return public_text(f"⚠️ This model is not available: {state}")
    backend = comparer.backends[side]
    ref = backend.model_ref()
    return fmt.model_card_markdown(
        ref.uri, ref.name, ref.version, backend.signature(), backend.streaming_note, backend.weights()
    )
