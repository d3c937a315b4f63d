"""`Shown`: every component a comparison updates in the Chat tab, and how turns become updates.

The handlers in `ui/chat_events.py` decide what happened; `Shown` turns the turns and the latest
results into one dict of updates for Gradio, so every handler draws the panes, the metrics, the
verdict, the fidelity and the difference view the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import gradio as gr

from compare.turns import Turn
from ui import formatting as fmt
from ui.api import SIDES
from ui.difference import difference_html
from ui.fidelity_view import fidelity_markdown, fidelity_strip_html


@dataclass
class Shown:
    """Everything a comparison updates, and how a turn's state becomes updates."""

    panes: dict[str, dict]
    metrics: gr.Markdown
    verdict: gr.Markdown
    fidelity: dict[str, gr.Markdown | gr.HTML]  # "line" and "strip"
    diff: gr.HTML
    prompt: gr.Textbox
    last_id: gr.State
    turns: gr.State
    results: gr.State
    standing: gr.Markdown  # the vote that stands on the comparison shown

    def all(self) -> list:
        parts = [p[k] for p in self.panes.values() for k in ("chat", "response", "raw")]
        return [
            *parts,
            self.metrics,
            self.verdict,
            *self.fidelity.values(),
            self.diff,
            self.prompt,
            self.last_id,
            self.turns,
            self.results,
            self.standing,
        ]

    def chats(self, turns: list[Turn]) -> dict:
        return {self.panes[side]["chat"]: fmt.chat_messages(turns, side) for side in SIDES}

    def live(self, turns: list[Turn], latest: Mapping) -> dict:
        return self.chats(turns) | {self.metrics: fmt.metrics_markdown(all_sides(latest))}

    def scored(self, result: dict | None = None, reason: str | None = None) -> dict:
        """The fidelity line and token strip under the verdict (empty without either argument)."""
        line = fidelity_markdown(result, reason) if result or reason else ""
        return {self.fidelity["line"]: line, self.fidelity["strip"]: fidelity_strip_html(result)}

    def loaded(self, turns: list[Turn]) -> dict:
        """Turns from elsewhere (an imported file): shown, with nothing left of the last comparison."""
        return self.finished(turns, {}, "", "") | {self.prompt: gr.skip()}

    def finished(self, turns: list[Turn], latest: Mapping, verdict: str, comparison_id: str) -> dict:
        latest = all_sides(latest)
        details = {}
        for side, result in latest.items():
            pane = self.panes[side]
            details |= {pane["response"]: result.response, pane["raw"]: fmt.raw_json(result.raw)}
        done = all(r.done for r in latest.values())
        diff = difference_html(latest[SIDES[0]], latest[SIDES[1]], SIDES) if done else ""
        return (
            self.live(turns, latest)
            | details
            | self.scored()
            | {
                self.verdict: verdict,
                self.diff: diff,
                self.last_id: comparison_id,
                self.turns: turns,
                self.results: dict(latest) if done else {},
                self.standing: "",
            }
        )


def all_sides(latest: Mapping) -> dict:
    """Both sides' results; a side that has not started yet is an empty `Result`."""
    return {side: latest.get(side) or fmt.Result() for side in SIDES}
