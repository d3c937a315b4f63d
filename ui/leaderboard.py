"""The leaderboard: Bradley–Terry ratings of every registered model version, blind and named apart.

The statistics are `compare.leaderboard`'s; this module reads the votes, formats
the tables and serves `/leaderboard`.
"""

from __future__ import annotations

import math
from typing import TypedDict

import gradio as gr
import pandas as pd

from compare.leaderboard import split_by_mode
from compare.votes import vote_table

HEADERS = {
    "group": "Group",
    "model": "Model version",
    "rating": "Rating",
    "interval": "95% interval",
    "votes": "Votes",
    "wins": "Wins",
    "losses": "Losses",
    "ties": "Ties",
    "both_bad": "Both bad",
}
METHOD = (
    "Bradley–Terry ratings on the Elo scale (each group's mean is 1000; 400 points apart means "
    "10 to 1 odds), fitted by maximum likelihood. Ties and both-bad votes count half a win to "
    "each side; each pair that met also counts one virtual tie, so a clean sweep stays finite. "
    "95% percentile bootstrap intervals over votes (1000 resamples). Blind votes (arena) and "
    "named votes are rated apart. Models in different groups never met, directly or through "
    "others: compare ratings only within a group. The latest vote per comparison counts."
)


class Rating(TypedDict):
    group: int  # models that met, directly or through others; compare ratings within a group
    model: str  # registered name/version
    rating: float  # Elo scale, each group's mean 1000
    lower: float | None  # 95% bootstrap interval; null with one vote
    upper: float | None
    votes: int
    wins: int
    losses: int
    ties: int
    both_bad: int


class Board(TypedDict):
    blind: list[Rating]
    named: list[Rating]
    method: str


def current_board() -> dict[str, pd.DataFrame]:
    """{"blind": ratings, "named": ratings} from every vote on record."""
    return split_by_mode(vote_table())


def leaderboard_api() -> Board:
    """Bradley–Terry ratings with 95% bootstrap intervals per model version; blind and named votes apart."""
    try:
        board = current_board()
    except Exception as exc:
        raise gr.Error(f"The votes could not be read from MLflow: {exc}") from exc
    return {mode: _records(table) for mode, table in board.items()} | {"method": METHOD}


def leaderboard_panel(demo: gr.Blocks):
    """The leaderboard accordion; returns `refresh_after(event)`, which refreshes it after a vote."""
    with gr.Accordion("Leaderboard: Bradley–Terry ratings per model version", open=False):
        gr.Markdown(METHOD)
        blind = gr.Dataframe(label="Blind votes (arena)", interactive=False, elem_id="leaderboard-blind")
        named = gr.Dataframe(label="Named votes", interactive=False, elem_id="leaderboard-named")
        refresh = gr.Button("Refresh", size="sm", elem_id="leaderboard-refresh")
    outputs = [blind, named]
    refresh.click(shown_board, None, outputs, api_visibility="private")
    demo.load(shown_board, None, outputs, api_visibility="private")

    def refresh_after(event) -> None:
        event.then(shown_board, None, outputs, api_visibility="private")

    return refresh_after


def shown_board() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tables as the page shows them; a store that is down leaves a warning, not an error."""
    try:
        board = current_board()
    except Exception as exc:  # the chat works without the store
        gr.Warning(f"The leaderboard could not be read from MLflow: {exc}")
        return _empty(), _empty()
    return display_table(board["blind"]), display_table(board["named"])


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """Ratings rounded to whole points, the interval as one column, human headers."""
    if table.empty:
        return _empty()
    shown = table.assign(
        rating=table["rating"].round().astype(int),
        interval=[_interval(lo, hi) for lo, hi in zip(table["lower"], table["upper"], strict=True)],
    )
    return shown[list(HEADERS)].rename(columns=HEADERS)


def _interval(lower: float, upper: float) -> str:
    """'982–1018', or a dash when there is no interval.

    >>> _interval(981.6, 1018.4), _interval(float("nan"), float("nan"))
    ('982–1018', '–')
    """
    if math.isnan(lower) or math.isnan(upper):
        return "–"
    return f"{round(lower)}–{round(upper)}"


def _records(table: pd.DataFrame) -> list[dict]:
    rounded = table.round({"rating": 1, "lower": 1, "upper": 1})
    return rounded.astype(object).where(rounded.notna(), None).to_dict("records")


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=list(HEADERS.values()))
