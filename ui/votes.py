"""The vote row under the verdict: named votes on the comparison shown."""

from __future__ import annotations

import gradio as gr

from compare.service import Comparer
from ui.api import asker_of, at_boundary, input_error

VOTES = {
    "transformers": "transformers is better",
    "onnx": "onnx is better",
    "tie": "Tie",
    "both_bad": "Both are bad",
}


def vote_row(comparer: Comparer, last_id: gr.State) -> list:
    """Buttons that vote on the comparison shown; a changed vote says so. Returns the vote events."""
    with gr.Row(elem_id="vote-row"):
        buttons = {
            choice: gr.Button(label, size="sm", elem_id=f"vote-{choice}", min_width=80)
            for choice, label in VOTES.items()
        }
        comment = gr.Textbox(placeholder="Optional comment on your vote", show_label=False, scale=3)

    @at_boundary
    def check(comparison_id: str, text: str) -> None:
        """Refuse a vote before anything is stored or changed on the page."""
        if not comparison_id:
            raise input_error("Nothing to vote on: compare the two models first, then vote.")
        comparer.check("vote", {"comparison_id": comparison_id, "choice": "tie", "comment": text or ""})

    def handler(choice: str):
        @at_boundary
        def vote_from_ui(comparison_id: str, text: str, request: gr.Request) -> None:
            _, previous = comparer.vote(comparison_id, choice, text or "", asker_of(request))
            if previous and previous != choice:
                gr.Info(f"Vote changed from “{VOTES[previous]}” to “{VOTES[choice]}”.")
            else:
                gr.Info(f"Vote stored in MLflow: {VOTES[choice]}")

        return vote_from_ui

    private, events = {"api_visibility": "private"}, []
    for choice, button in buttons.items():  # no step with outputs can fail: a refusal is one toast
        stored = button.click(check, [last_id, comment], None, **private).success(
            handler(choice), [last_id, comment], None, **private
        )
        stored.success(lambda: "", None, comment, **private)  # the comment went with the vote
        events.append(stored)
    return events
