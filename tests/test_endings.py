"""Every way a comparison ends, walked through the record, History, the vote and the leaderboard.

finished, stopped (Stop), abandoned (an API client cancels, or goes away), timed out, failed:
each is recorded and tagged `ended`; only a finished one is listed as open to a vote, takes a
vote, and counts in the leaderboard, even if an older version stored a vote on the others.
The page's side (the verdict after Stop, History's rows, blind mode) is in `test_votes_browser.py`.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from dataclasses import dataclass, replace

import pytest
from gradio_client import Client

from compare.endings import LABELS, REFUSALS, Ending
from compare.owners import Asker
from compare.recorder import Recorder
from compare.service import Comparer, new_comparison_id
from compare.votes import log_vote, vote_table
from tests.test_abandoned import call
from tests.test_records import traces_of, wait_for_traces
from ui.api import SIDES
from ui.history import history_of
from wrappers import GenerationOptions
from wrappers.limits import Limits
from wrappers.pace import Pace
from wrappers.registry import use_store

TOO_LONG = "capital " * 3000  # fits the character check, not the 2048-token limit: both sides fail
QUESTION = [{"role": "user", "content": "Hello! Who are you?"}]
# A prompt the tiny model answers greedily by repeating it to any max_tokens (512 on both sides,
# measured): still running when its client leaves. Sampled answers end within about 0.2 s.
LONG_PROMPT = "Paris " * 300
LONG_SETTINGS = {"max_tokens": 512, "temperature": 0.0}
LONG = ["", 512, 0.0, 1.0, "", False]  # /compare's settings after the prompt, as a raw call sends them


def run_to_end(comparer: Comparer, asker: Asker, ending: Ending) -> str:
    """One comparison of `asker` that ends as `ending`, in process; its id."""
    comparison_id = new_comparison_id()
    conversation = [{"role": "user", "content": TOO_LONG}] if ending is Ending.FAILED else QUESTION
    stop = threading.Event()
    updates = comparer.compare(
        dict.fromkeys(SIDES, conversation), GenerationOptions(max_tokens=64), comparison_id, asker, stop=stop
    )
    for step, _ in enumerate(updates):
        if step == 2 and ending is Ending.STOPPED:
            stop.set()  # what the Stop button does: the comparison ends at its next step
        if step == 2 and ending is Ending.ABANDONED:
            updates.close()  # what Gradio does when a client cancels or goes away
            break
    return comparison_id


@dataclass(frozen=True)
class Ended:
    """One comparison per ending, all by `asker`."""

    asker: Asker
    comparer: Comparer  # its limits are the defaults
    ids: dict[Ending, str]

    def __getitem__(self, ending: Ending) -> str:
        return self.ids[ending]


@pytest.fixture(scope="module")
def ended(backends, config, tmp_path_factory) -> Ended:
    """One comparison per ending, by one visitor, recorded in the session's store."""
    use_store(config.store_uri, config.artifact_root)
    recorder = Recorder(tmp_path_factory.mktemp("endings-spool"))
    # No speed known: the up-front time estimate lets the request through, and the limit itself stops it.
    unmeasured = {side: replace(backend, pace=Pace()) for side, backend in backends.items()}
    comparers = {
        ending: Comparer(
            unmeasured if ending is Ending.TIMED_OUT else backends,
            replace(Limits(), request_timeout_s=0.0) if ending is Ending.TIMED_OUT else Limits(),
            recorder,
        )
        for ending in Ending
    }
    asker = Asker.of(None, f"endings-{uuid.uuid4().hex}")
    ids = {ending: run_to_end(comparers[ending], asker, ending) for ending in Ending}
    recorder.flush()
    for comparison_id in ids.values():
        wait_for_traces(comparison_id)
    return Ended(asker, comparers[Ending.FINISHED], ids)


@pytest.mark.parametrize("ending", list(Ending))
def test_each_ending_is_recorded_and_tagged_with_how_it_ended(ended, ending):
    traces = traces_of(ended[ending])
    assert sorted(t.info.tags["side"] for t in traces) == sorted(SIDES)
    assert {t.info.tags["ended"] for t in traces} == {ending.value}


@pytest.mark.parametrize("ending", [e for e in Ending if e is not Ending.FINISHED])
def test_a_vote_on_a_comparison_that_did_not_finish_is_refused_and_stores_nothing(ended, ending):
    comparer, asker = ended.comparer, ended.asker
    with pytest.raises(Exception, match=re.escape(REFUSALS[ending])) as refused:
        comparer.votes.vote(ended[ending], "onnx", "", asker)
    assert "only comparisons that finished can be voted on" in str(refused.value)
    for trace in traces_of(ended[ending]):
        assert not [a for a in trace.info.assessments if a.name == "preference"]


def test_a_vote_on_a_finished_comparison_is_stored(ended):
    trace_ids, previous = ended.comparer.votes.vote(ended[Ending.FINISHED], "tie", "", ended.asker)
    assert len(trace_ids) == 2 and previous is None


@pytest.mark.parametrize("ending", list(Ending))
def test_history_lists_every_ending_labelled_and_only_a_finished_one_as_open_to_a_vote(ended, ending):
    rows = history_of(ended.asker.owner)[0].set_index("comparison_id")
    assert rows.loc[ended[ending], "ended"] == LABELS[ending]
    assert ("no vote" in LABELS[ending]) is (ending is not Ending.FINISHED)


def test_votes_an_older_version_stored_on_unfinished_comparisons_do_not_count(ended):
    """Older versions accepted these votes: the store may hold them; the leaderboard skips them."""
    for ending in Ending:
        if ending is not Ending.FINISHED:
            log_vote([t.info.trace_id for t in traces_of(ended[ending])], "onnx")  # as an old version did
    counted = set(vote_table()["comparison_id"])
    assert ended[Ending.FINISHED] in counted
    assert not {ended[e] for e in Ending if e is not Ending.FINISHED} & counted


def test_the_legacy_abandoned_tag_reads_as_abandoned(ended):
    from compare.endings import recorded_ending

    legacy = traces_of(ended[Ending.ABANDONED])[0].info
    tags = {k: v for k, v in legacy.tags.items() if k != "ended"} | {"abandoned": "true"}
    assert recorded_ending(tags, legacy.state) is Ending.ABANDONED


# Through the running app: what /compare's last update says, and /vote's refusal.


@pytest.fixture
def visitor(server):
    return Client(server, verbose=False)  # a session of its own


def test_the_last_update_of_a_finished_compare_says_it_finished_and_takes_a_vote(visitor):
    out = visitor.predict(prompt="What is 7 plus 5?", max_tokens=8, fidelity=False, api_name="/compare")
    assert (out["ended"], out["votable"]) == ("finished", True)
    assert visitor.predict(comparison_id=out["comparison_id"], choice="tie", api_name="/vote")["trace_ids"]


def test_the_last_update_of_a_failed_compare_says_so_and_its_vote_is_refused(visitor):
    out = visitor.predict(prompt=TOO_LONG, max_tokens=8, fidelity=False, api_name="/compare")
    assert (out["ended"], out["votable"]) == ("failed", False)
    assert "cannot be voted on" in out["verdict"]["summary"]
    wait_for_traces(out["comparison_id"])
    with pytest.raises(Exception, match=re.escape(REFUSALS[Ending.FAILED])):
        visitor.predict(comparison_id=out["comparison_id"], choice="onnx", api_name="/vote")


def first_update_then_cancel(client: Client, api_name: str) -> dict:
    """Start a long answer, cancel it (`Job.cancel()`) at its first update; that update."""
    job = client.submit(prompt=LONG_PROMPT, **LONG_SETTINGS, api_name=api_name)
    deadline = time.monotonic() + 60
    while not job.outputs() and time.monotonic() < deadline:
        time.sleep(0.01)
    job.cancel()
    return job.outputs()[0]


def test_a_compare_the_api_client_cancels_is_recorded_as_abandoned_and_refuses_a_vote(visitor):
    for _ in range(3):  # a comparison that ended before the cancel arrived did finish: try again
        first = first_update_then_cancel(visitor, "/compare")
        assert first["ended"] is None  # still streaming
        traces = wait_for_traces(first["comparison_id"])
        if {t.info.tags["ended"] for t in traces} == {"abandoned"}:
            break
    assert {t.info.tags["ended"] for t in traces} == {"abandoned"}
    with pytest.raises(Exception, match=re.escape(REFUSALS[Ending.ABANDONED])):
        visitor.predict(comparison_id=first["comparison_id"], choice="onnx", api_name="/vote")


def test_a_compare_whose_client_goes_away_is_recorded_as_abandoned_and_refuses_a_vote(visitor, server):
    with call(server, "compare", [LONG_PROMPT, *LONG], visitor.session_hash) as stream:
        event, (first,) = next(stream)  # the first tokens, then the connection closes
    traces = wait_for_traces(first["comparison_id"])
    assert {t.info.tags["ended"] for t in traces} == {"abandoned"}
    vote = visitor.submit(comparison_id=first["comparison_id"], choice="onnx", api_name="/vote")
    with pytest.raises(Exception, match=re.escape(REFUSALS[Ending.ABANDONED])):
        vote.result(timeout=60)


# Blind mode: the same rule for /arena and /arena_vote.


def test_a_blind_battle_the_client_cancels_refuses_its_vote(visitor):
    reason = ""
    for _ in range(3):  # a battle that ended before the cancel arrived did finish, and takes the vote
        battle_id = first_update_then_cancel(visitor, "/arena")["battle_id"]
        deadline, reason = time.monotonic() + 60, "Send a prompt first"
        while reason.startswith("Send a prompt first") and time.monotonic() < deadline:
            time.sleep(0.1)  # until Gradio has closed the stream (at its next step)
            try:
                visitor.predict(battle_id=battle_id, choice="a", api_name="/arena_vote")
                reason = "accepted: it finished first"
            except Exception as exc:
                reason = str(exc)
        if REFUSALS[Ending.ABANDONED] in reason:
            break
    assert REFUSALS[Ending.ABANDONED] in reason


def test_a_blind_battle_whose_sides_failed_refuses_its_vote(visitor):
    last = visitor.predict(prompt=TOO_LONG, max_tokens=8, api_name="/arena")
    assert last["model_a"]["error"] and last["done"]
    with pytest.raises(Exception, match=re.escape(REFUSALS[Ending.FAILED])):
        visitor.predict(battle_id=last["battle_id"], choice="a", api_name="/arena_vote")
