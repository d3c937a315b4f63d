"""The vote row under the verdict, and the votes-per-model tally."""

from __future__ import annotations

import gradio as gr

from compare.records import leaderboard
from ui.api import Comparer, input_error

VOTES = {
    "transformers": "transformers is better",
    "onnx": "onnx is better",
    "tie": "Tie",
    "both_bad": "Both are bad",
}


def vote_row(demo: gr.Blocks, comparer: Comparer, last_id: gr.State) -> None:
    """Buttons that vote on the comparison shown; a changed vote says so."""
    with gr.Row(elem_id="vote-row"):
        buttons = {
            choice: gr.Button(label, size="sm", elem_id=f"vote-{choice}", min_width=80)
            for choice, label in VOTES.items()
        }
        comment = gr.Textbox(placeholder="Optional comment on your vote", show_label=False, scale=3)
    with gr.Accordion("Leaderboard: votes per model version", open=False):
        board = gr.Dataframe(interactive=False, elem_id="leaderboard")

    def handler(choice: str):
        def vote_from_ui(comparison_id: str, text: str):
            if not comparison_id:
                raise input_error("Nothing to vote on: compare the two models first, then vote.")
            _, previous = comparer.vote(comparison_id, choice, text)
            if previous and previous != choice:
                gr.Info(f"Vote changed from “{VOTES[previous]}” to “{VOTES[choice]}”.")
            else:
                gr.Info(f"Vote stored in MLflow: {VOTES[choice]}")
            return leaderboard(), ""

        return vote_from_ui

    for choice, button in buttons.items():
        button.click(handler(choice), [last_id, comment], [board, comment], api_visibility="private")
    demo.load(_safe_leaderboard, None, board, api_visibility="private")


def _safe_leaderboard():
    try:
        return leaderboard()
    except Exception:  # the store may be down; the chat still works
        return None
