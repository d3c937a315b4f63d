"""Replaying an imported conversation against the current models: its rows, its summary and
table in the Chat tab's accordion (`ui/conversation_io.py`), and /replay for a script.

The file is checked whole by `compare.conversation` before the first turn is sent; a turn that
cannot run here (too long, or too slow) is a row that says why, and the replay goes on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypedDict

import pandas as pd

from compare.budget import refused
from compare.conversation import ConversationError, options_of, read_conversation, replay
from compare.errors import RequestError
from compare.service import Comparer, new_comparison_id
from ui.api import MODEL_EVENTS, SIDES, at_boundary, input_error
from ui.api_docs import add_endpoint

HEADERS = {
    "turn": "Turn",
    "prompt": "Prompt",
    "side": "Side",
    "recorded": "Recorded answer",
    "replayed": "Replayed answer",
    "same": "Same?",
    "recorded_tokens_per_s": "Recorded tok/s",
    "replayed_tokens_per_s": "Replayed tok/s",
    "model": "Replayed by",
}


class ReplayedTurn(TypedDict):
    turn: int
    prompt: str
    side: str
    recorded: str
    replayed: str
    same: str  # "yes", or from which word it differs, or "no: error"
    recorded_tokens_per_s: float | None
    replayed_tokens_per_s: float | None
    model: str  # the registered name/version that replayed it


class Replay(TypedDict):
    turns: list[ReplayedTurn]
    summary: str


def replay_rows(comparer: Comparer, content: dict):
    """Replay a conversation that `read_conversation` checked; yield the rows so far after each turn."""
    options = options_of(content)

    def compare(conversations):
        try:
            *_, last = comparer.compare(conversations, options, new_comparison_id())
        except RequestError as exc:  # this turn cannot run here (too long, or too slow): its rows say why
            return refused(comparer.backends, str(exc))
        return last

    rows = []
    for row in replay(content, compare):
        rows.append(row)
        if len(rows) % len(SIDES) == 0:
            yield rows


def replay_summary(rows: list[dict]) -> str:
    same = sum(row["same"] == "yes" for row in rows)
    return (
        f"**Replayed** {len(rows) // len(SIDES)} turns: {same} of {len(rows)} answers are the ones recorded."
    )


def register_replay_api(comparer: Comparer) -> None:
    def replay_conversation(conversation: str) -> Iterator[Replay]:
        """Replay an exported conversation (its JSON text) against the current models, turn by turn:
        an update after each turn, the last holding every turn.

        Args:
            conversation: The text of a conversation file exported from the Chat tab (JSON, at most 2 MB).
        """
        asked = comparer.check("replay", {"conversation": conversation})
        try:  # the whole file is checked before the first turn is sent
            content = read_conversation(asked.conversation.encode("utf-8", "replace"), comparer.limits)
        except ConversationError as exc:
            raise input_error(str(exc)) from exc
        # A stream, an update a turn: a client that cancels or leaves stops the replay at the next
        # turn (Gradio stops iterating), where a plain call ran every turn to the end, unseen.
        for rows in replay_rows(comparer, content):
            yield {"turns": rows, "summary": replay_summary(rows)}

    add_endpoint(
        at_boundary(replay_conversation),
        Replay,
        api_name="replay",
        concurrency_id=MODEL_EVENTS,
        concurrency_limit=comparer.limits.concurrency,
    )


def replay_table(rows: list[dict]) -> pd.DataFrame:
    """The rows as the accordion's table shows them: its headers, speeds to one decimal."""
    table = pd.DataFrame(rows, columns=list(HEADERS)).round(
        {"recorded_tokens_per_s": 1, "replayed_tokens_per_s": 1}
    )
    return table.rename(columns=HEADERS)
