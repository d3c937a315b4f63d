"""The vote row under the verdict: named votes on the comparison shown, and the vote that stands.

The line under the buttons (`#vote-standing`) shows the vote that stands on the comparison
shown, and the one it replaced; every handler that changes the comparison clears it.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from compare.service import Comparer
from ui import formatting as fmt
from ui.api import asker_of, at_boundary, input_error, voter_of

VOTES = {
    "transformers": "transformers is better",
    "onnx": "onnx is better",
    "tie": "Tie",
    "both_bad": "Both are bad",
}


@dataclass(frozen=True)
class VoteRow:
    events: list  # one click event per button (the leaderboard refreshes after each)
    standing: gr.Markdown  # the vote that stands on the comparison shown


def vote_row(comparer: Comparer, last_id: gr.State) -> VoteRow:
    """Buttons that vote on the comparison shown, and under them the vote that stands."""
    with gr.Row(elem_id="vote-row"):
        buttons = {
            choice: gr.Button(label, size="sm", elem_id=f"vote-{choice}", min_width=80)
            for choice, label in VOTES.items()
        }
        comment = gr.Textbox(placeholder="Optional comment on your vote", show_label=False, scale=3)
    standing = gr.Markdown(elem_id="vote-standing")

    @at_boundary
    def check(comparison_id: str, text: str) -> None:
        """Refuse a vote before anything is stored or changed on the page."""
        if not comparison_id:
            raise input_error("Nothing to vote on: compare the two models first, then vote.")
        comparer.check("vote", {"comparison_id": comparison_id, "choice": "tie", "comment": text or ""})

    def handler(choice: str):
        @at_boundary
        def vote_from_ui(comparison_id: str, text: str, request: gr.Request) -> str:
            asker, voter = asker_of(request), voter_of(request)
            _, previous = comparer.votes.vote(comparison_id, choice, text or "", asker, voter)
            if previous and previous != choice:
                gr.Info(f"Vote changed from “{VOTES[previous]}” to “{VOTES[choice]}”.")
            else:
                gr.Info(f"Vote stored in MLflow: {VOTES[choice]}")
            return standing_text(comparison_id, choice, previous)

        return vote_from_ui

    # Every step that can refuse has no output that shows an error badge: the check has none, and
    # the vote's only output is a State; the page changes only once the vote is stored.
    cast = gr.State("")
    private = {"api_visibility": "private"}
    events = [
        button.click(check, [last_id, comment], None, **private)
        .success(handler(choice), [last_id, comment], [cast], **private)
        .success(lambda line: ("", line), cast, [comment, standing], concurrency_limit=None, **private)
        for choice, button in buttons.items()
    ]
    return VoteRow(events, standing)


def standing_text(comparison_id: str, vote: str, previous: str | None = None) -> str:
    """The vote that stands on the comparison shown, as the line under the vote buttons.

    >>> standing_text("0123456789abcdef" * 2, "tie", "onnx")
    'Your vote on comparison `01234567`: **Tie** (it replaced your earlier vote, onnx is better).'
    """
    if not vote:
        return ""
    line = f"Your vote on comparison `{fmt.short_id(comparison_id)}`: **{VOTES[vote]}**"
    replaced = f" (it replaced your earlier vote, {VOTES[previous]})" if previous and previous != vote else ""
    return f"{line}{replaced}."
