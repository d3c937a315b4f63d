"""Blind mode: /arena hides which model is which until /arena_vote, and the leaderboard rates the votes."""

from __future__ import annotations

import json
import time

import mlflow
import pytest
from gradio_client import Client

from compare.arena import Arena, anonymous, lockstep
from compare.owners import owner_id
from compare.votes import vote_table
from wrappers import Result
from wrappers.registry import EXPERIMENT

pytestmark = pytest.mark.usefixtures("session_store")  # back to the shared store

SIDES = ("transformers", "onnx")
REFS = {"transformers": "tiny-phi3-transformers/1", "onnx": "tiny-phi3-onnx-int4/1"}
# Anything that would name a model or measure it, in any update before the vote.
GIVEAWAYS = ("tiny-phi3", "transformers", "onnx", "latency", "usage", "tokens", "raw", "chatcmpl", "models:/")


@pytest.fixture
def client(server):
    return Client(server, verbose=False)  # a fresh session per test


def battle(client: Client, prompt: str = "What is the capital of Spain?", **settings) -> list[dict]:
    """Every update of one /arena stream."""
    job = client.submit(prompt=prompt, max_tokens=16, api_name="/arena", **settings)
    updates = list(job)
    return updates or [job.result()]


def test_a_battle_streams_model_a_and_model_b_without_names_or_figures(client):
    updates = battle(client)
    assert len(updates) >= 2  # it streams
    for update in updates:
        assert set(update) == {"battle_id", "model_a", "model_b", "done"}
        assert set(update["model_a"]) == {"text", "error", "done"}
        text = json.dumps(update).lower()
        assert not [word for word in GIVEAWAYS if word in text], text
    last = updates[-1]
    assert last["done"] and "Madrid" in last["model_a"]["text"] and "Madrid" in last["model_b"]["text"]
    assert len({u["battle_id"] for u in updates}) == 1


def test_the_vote_reveals_the_names_the_figures_and_is_stored_as_blind(client):
    last = battle(client, "What is 7 plus 5?")[-1]
    reveal = client.predict(
        battle_id=last["battle_id"], choice="a", comment="blind pick", api_name="/arena_vote"
    )
    sides = {reveal["model_a"]["side"], reveal["model_b"]["side"]}
    assert sides == set(SIDES)
    for label in ("model_a", "model_b"):
        shown = reveal[label]
        assert f"{shown['model']['name']}/{shown['model']['version']}" == REFS[shown["side"]]
        assert shown["usage"]["completion_tokens"] > 0 and shown["latency"]["total_s"] > 0
        assert shown["response"]["choices"][0]["message"]["content"] == last[label]["text"]
    assert reveal["winner"] == reveal["model_a"]["side"]
    assert "completions" in reveal["verdict"]["summary"].lower()
    votes = vote_table().set_index("comparison_id")
    stored = [row for _, row in votes.iterrows() if row["blind"] and row["model_a"] == REFS[reveal["winner"]]]
    assert stored, "the blind vote, with the model shown as A, is in the vote table"


def test_the_order_is_random_across_battles(client):
    shown_first = set()
    for _ in range(12):  # both orders appear unless a fair coin lands the same way 12 times (p = 1/2048)
        last = battle(client, "Hello! Who are you?")[-1]
        reveal = client.predict(battle_id=last["battle_id"], choice="tie", api_name="/arena_vote")
        shown_first.add(reveal["model_a"]["side"])
    assert shown_first == set(SIDES)


def test_only_the_session_that_started_a_battle_may_vote_and_only_once(client, server):
    last = battle(client)[-1]
    stranger = Client(server, verbose=False)
    with pytest.raises(Exception, match="No open blind comparison of yours"):
        stranger.predict(battle_id=last["battle_id"], choice="b", api_name="/arena_vote")
    client.predict(battle_id=last["battle_id"], choice="b", api_name="/arena_vote")
    with pytest.raises(Exception, match="already been voted on"):
        client.predict(battle_id=last["battle_id"], choice="a", api_name="/arena_vote")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"battle_id": "nope", "choice": "a"}, "battle_id must be an id returned by /arena"),
        ({"battle_id": "0" * 32, "choice": "left"}, "choice must be one of a, b, tie, both_bad"),
        ({"battle_id": "0" * 32, "choice": "a"}, "No open blind comparison of yours"),
    ],
)
def test_bad_blind_votes_are_refused_with_the_reason(client, kwargs, message):
    with pytest.raises(Exception, match=message):
        client.predict(**kwargs, api_name="/arena_vote")


def test_bad_arena_input_is_refused_before_a_battle_starts(client):
    with pytest.raises(Exception, match="prompt must be a non-empty string"):
        client.predict(prompt="  ", api_name="/arena")
    with pytest.raises(Exception, match="temperature"):
        client.predict(prompt="Hi", temperature=-1, api_name="/arena")


def test_an_error_is_shown_alike_on_both_sides(client):
    last = battle(client, "capital " * 3000)[-1]
    assert last["model_a"]["error"] == last["model_b"]["error"]
    assert "the limit is 2048" in last["model_a"]["error"]


def test_the_leaderboard_endpoint_rates_blind_and_named_votes_apart(client):
    for choice in ("both_bad", "a"):  # two votes of each kind at least, so that they have an interval
        last = battle(client)[-1]
        client.predict(battle_id=last["battle_id"], choice=choice, api_name="/arena_vote")
    for choice in ("left", "tie"):
        named = client.predict(prompt="What is the capital of Spain?", max_tokens=8, api_name="/compare")
        client.predict(comparison_id=named["comparison_id"], choice=choice, api_name="/vote")
    board = client.predict(api_name="/leaderboard")
    assert "Bradley–Terry" in board["method"]
    for mode in ("blind", "named"):
        rows = {row["model"]: row for row in board[mode]}
        assert set(REFS.values()) <= set(rows)
        for row in rows.values():
            assert row["lower"] <= row["rating"] <= row["upper"] and row["votes"] >= 1
    assert sum(row["both_bad"] for row in board["blind"]) >= 2  # one both-bad vote, counted for each model


def test_a_blind_comparison_cannot_be_voted_on_by_name(client):
    # A blind comparison's id never leaves the server; even so, /vote must refuse it.
    battle(client)
    voted = set(vote_table()["comparison_id"])
    deadline = time.monotonic() + 30
    while (
        not (open_ids := [i for i in _arena_comparisons(client) if i not in voted])
        and time.monotonic() < deadline
    ):
        time.sleep(0.2)  # traces are written in the background
    assert open_ids, "the battle is traced, tagged as blind"
    with pytest.raises(Exception, match="That comparison was blind"):
        client.predict(comparison_id=open_ids[0], choice="left", api_name="/vote")
    assert open_ids[0] not in set(vote_table()["comparison_id"])


def _arena_comparisons(client: Client) -> list[str]:
    """This client's blind comparisons (another's would be refused as not its own first)."""
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    owner = owner_id(None, client.session_hash)
    traces = mlflow.search_traces(
        experiment_ids=[experiment.experiment_id],
        filter_string=f"tags.arena = 'true' and tags.owner = '{owner}'",
        return_type="list",
        include_spans=False,
    )
    return [t.info.tags["comparison_id"] for t in traces]


def test_lockstep_lets_an_update_through_only_once_every_running_side_has_moved():
    a1, b1 = Result(text="A", pieces=("A",)), Result(text="B", pieces=("B",))
    a2 = Result(text="A A", pieces=("A", " A"))
    a_done = Result(text="A A", pieces=("A", " A"), done=True)
    b_done = Result(text="B", pieces=("B",), done=True)
    steps = [
        {"transformers": a1, "onnx": Result()},
        {"transformers": a1, "onnx": b1},
        {"transformers": a2, "onnx": b1},
        {"transformers": a2, "onnx": b_done},
        {"transformers": a_done, "onnx": b_done},
    ]
    through = list(lockstep(iter(steps)))
    assert through == [steps[1], steps[3], steps[4]]


def test_the_anonymous_view_holds_back_a_growing_word_and_hides_an_error_unique_to_one_side():
    battle_ = Arena(SIDES).start("me")
    latest = {
        "transformers": Result(text="The capital of Spa"),
        "onnx": Result(text="", error="OrtException: onnxruntime failed", done=True),
    }
    view = anonymous(battle_, latest)
    texts = {view[label]["text"] for label in ("model_a", "model_b")}
    assert texts == {"The capital of ", ""}
    errors = [view[label]["error"] for label in ("model_a", "model_b") if view[label]["error"]]
    assert errors and "onnx" not in errors[0].lower()
