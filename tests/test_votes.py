"""Votes that count: a rate limit per voter, one vote per blind battle, and the voters beside the votes.

Real requests to the running app: several sessions at once, as the issue's attacker scripted them.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from gradio_client import Client

from compare.votes import vote_table
from tests.test_records import traces_of
from wrappers.config import Limits

pytestmark = pytest.mark.usefixtures("session_store")  # back to the shared store

LIMIT = Limits().votes_per_voter  # the test server runs with the default limit


def preferences(comparison_id: str) -> list[list[str]]:
    """The votes stored on each trace of a comparison."""
    return [[a.value for a in t.info.assessments if a.name == "preference"] for t in traces_of(comparison_id)]


def vote_until_refused(server: str, start: threading.Barrier) -> tuple[str, int, str]:
    """One session: a one-token comparison, then votes on it until one is refused."""
    client = Client(server, verbose=False)
    out = client.predict(prompt="Hi", max_tokens=1, fidelity=False, api_name="/compare")
    start.wait()
    for accepted in range(LIMIT + 5):
        try:
            client.predict(
                comparison_id=out["comparison_id"], choice=("left", "right")[accepted % 2], api_name="/vote"
            )
        except Exception as exc:
            return out["comparison_id"], accepted, str(exc)
    return out["comparison_id"], LIMIT + 5, ""


def test_three_sessions_voting_in_a_loop_are_each_held_to_the_limit(server):
    start = threading.Barrier(3)
    with ThreadPoolExecutor(3) as pool:
        runs = list(pool.map(lambda _: vote_until_refused(server, start), range(3)))
    for comparison_id, accepted, refusal in runs:
        assert accepted == LIMIT, refusal
        assert f"Too many votes: at most {LIMIT} in 10 minutes per voter" in refusal
        assert [len(votes) for votes in preferences(comparison_id)] == [
            LIMIT,
            LIMIT,
        ]  # the refused one: nothing
    table = vote_table().set_index("comparison_id").loc[[run[0] for run in runs]]
    assert table["voter"].nunique() == 3  # each vote carries its voter, for the leaderboard's cap


def test_the_leaderboard_shows_the_distinct_voters_beside_the_votes(client):
    out = client.predict(prompt="Hi", max_tokens=1, fidelity=False, api_name="/compare")
    client.predict(comparison_id=out["comparison_id"], choice="tie", api_name="/vote")
    board = client.predict(api_name="/leaderboard")
    for row in board["named"]:
        assert 1 <= row["voters"] <= row["votes"]
    assert "votes per voter and pair of models count" in board["method"]


def test_four_blind_votes_at_once_store_exactly_one(server):
    client = Client(server, verbose=False)
    last = client.predict(prompt="What is 7 plus 5?", max_tokens=8, api_name="/arena")
    start = threading.Barrier(4)

    def vote(choice: str):
        start.wait()
        try:
            return client.predict(battle_id=last["battle_id"], choice=choice, api_name="/arena_vote")
        except Exception as exc:
            return str(exc)

    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(vote, ("a", "b", "tie", "both_bad")))
    (reveal,) = [r for r in replies if isinstance(r, dict)]
    # The others are refused: by the ballot box, or (one session's fourth request) by the queue's share.
    refused = ("already been voted on", "requests waiting or running")
    assert all(any(reason in r for reason in refused) for r in replies if isinstance(r, str)), replies
    (comparison_id,) = {t.info.tags["comparison_id"] for t in _traces(reveal["trace_ids"])}
    assert [len(votes) for votes in preferences(comparison_id)] == [1, 1]
    row = vote_table().set_index("comparison_id").loc[comparison_id]
    assert row["outcome"] == reveal["choice"]


def _traces(trace_ids: list[str]) -> list:
    import mlflow

    return [mlflow.get_trace(trace_id) for trace_id in trace_ids]
