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

    def handler(choice: str):
        @at_boundary
        def vote_from_ui(comparison_id: str, text: str, request: gr.Request):
            if not comparison_id:
                raise input_error("Nothing to vote on: compare the two models first, then vote.")
            _, previous = comparer.vote(comparison_id, choice, text, asker_of(request))
            if previous and previous != choice:
                gr.Info(f"Vote changed from “{VOTES[previous]}” to “{VOTES[choice]}”.")
            else:
                gr.Info(f"Vote stored in MLflow: {VOTES[choice]}")
            return ""

        return vote_from_ui

    return [
        button.click(handler(choice), [last_id, comment], [comment], api_visibility="private")
        for choice, button in buttons.items()
    ]
