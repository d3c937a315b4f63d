"""A client that goes away: its queued request is dropped, its stream stops, its batch ends.

Each test closes a real HTTP stream of the running app (Gradio's /call API) and then looks
at the effects: another client's answer, the traces and the batch's MLflow run.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import mlflow
import pytest
from gradio_client import Client

from compare.acceptance import Thresholds
from compare.owners import owner_id
from compare.recorder import Recorder
from compare.service import Comparer, new_comparison_id
from tests.conftest import patient_limits
from tests.test_records import wait_for_traces
from ui.api import SIDES
from wrappers import GenerationOptions
from wrappers.registry import EXPERIMENT

pytestmark = pytest.mark.usefixtures("session_store")  # back to the shared store

LONG_PROMPT = "What is the capital of Spain? " * 150  # about 1,200 tokens: its call takes a while
WAIT_S = 60  # bound on every wait; each is normally well under a second or two


@contextmanager
def call(url: str, api_name: str, data: list, session_hash: str | None = None):
    """Start a call through Gradio's /call API; yield its open event stream as (event, data) pairs.

    Leaving the block closes the connection, which is how a client that goes away looks.
    """
    body = {"data": data} | ({"session_hash": session_hash} if session_hash else {})
    posted = httpx.post(f"{url}gradio_api/call/{api_name}", json=body, timeout=WAIT_S)
    posted.raise_for_status()
    stream_url = f"{url}gradio_api/call/{api_name}/{posted.json()['event_id']}"
    with httpx.stream("GET", stream_url, timeout=WAIT_S) as response:
        yield _events(response)


def _events(response):
    event = None
    for line in response.iter_lines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            yield event, json.loads(line.split(":", 1)[1])


def answered_promptly(client: Client) -> None:
    """Another client's comparison is answered (a slot still held would leave it waiting)."""
    job = client.submit(prompt="What is 7 plus 5?", max_tokens=16, fidelity=False, api_name="/compare")
    out = job.result(timeout=WAIT_S)
    assert "12" in out["onnx"]["response"]["choices"][0]["message"]["content"]


def test_a_queued_request_whose_client_goes_away_is_dropped(server, client):
    """Gradio's own queue does this (`Queue.clean_events` on the stream's disconnect)."""
    session = f"gone-{time.time_ns()}"
    with call(server, "compare", [LONG_PROMPT, "", 64, 0.0, 1.0, "", True]) as running:
        assert next(running)[0] == "generating"  # holds the models' one slot
        with call(server, "compare", ["What is the capital of Spain?", "", 8, 0.0, 1.0, "", False], session):
            pass  # queued behind it, then gone
        later = client.submit(prompt="Hello", max_tokens=4, fidelity=False, api_name="/compare")
        events = [event for event, _ in running]
        assert events[-1] == "complete"  # a long prompt twice and its scoring: long after the other left
    wait_for_traces(later.result(timeout=WAIT_S)["comparison_id"])  # it ran after the dropped one's turn
    gone = mlflow.search_traces(filter_string=f"tags.owner = '{owner_id(None, session)}'", return_type="list")
    assert gone == []


def test_a_stream_whose_client_goes_away_leaves_the_models_free(server, client):
    """Gradio closes the stream's generator at its next update; the next client is answered."""
    with call(server, "compare", ["What is the capital of Spain?", "", 64, 0.0, 1.0, "", False]) as stream:
        assert next(stream)[0] == "generating"
    answered_promptly(client)


def test_a_closed_stream_stops_within_a_step_frees_the_slot_and_is_recorded_as_abandoned(backends, tmp_path):
    """What closing does (Gradio's close, on a client's disconnect), step by step, in process."""
    comparer = Comparer(backends, patient_limits(), Recorder(tmp_path / "spool"))
    threads = threading.active_count()
    conversation = [{"role": "user", "content": "What is the capital of Spain?"}]
    comparison_id = new_comparison_id()
    updates = comparer.compare({side: conversation for side in SIDES}, GenerationOptions(), comparison_id)
    *_, seen = (next(updates) for _ in range(3))  # three steps, of either side (the shorter first)
    updates.close()
    assert threading.active_count() == threads  # the transformers generation thread has ended
    taken = threading.Thread(target=lambda: comparer.slot.take("chat").__enter__())
    taken.start()
    taken.join(timeout=WAIT_S)
    assert not taken.is_alive()  # the slot was free at once
    comparer.recorder.flush()
    traces = {t.info.tags["side"]: t for t in wait_for_traces(comparison_id)}
    for side, trace in traces.items():
        assert trace.info.tags["ended"] == "abandoned"
        span = trace.data.spans[0]
        tokens = seen[side].usage.completion_tokens or 0  # a side that had not started: cut at 0
        assert (
            span.attributes["error"] == f"Abandoned: the client cancelled or went away after {tokens} tokens."
        )
        assert span.outputs["usage"]["completion_tokens"] == tokens
    assert sum(seen[side].usage.completion_tokens or 0 for side in SIDES) == 3  # a token a step, none after


def test_a_comparison_stopped_before_one_side_started_records_that_side_at_0_tokens(backends, tmp_path):
    """Stop after the first step: one side has its first token, the other has not begun (the side
    with the shorter first step goes first). Both are recorded, a pair as every comparison is."""
    comparer = Comparer(backends, patient_limits(), Recorder(tmp_path / "spool"))
    conversation = [{"role": "user", "content": "What is the capital of Spain?"}]
    comparison_id, stop = new_comparison_id(), threading.Event()
    updates = comparer.compare(
        {side: conversation for side in SIDES}, GenerationOptions(), comparison_id, stop=stop
    )
    first = next(updates)
    stop.set()
    assert [len(first[side].pieces) for side in SIDES].count(0) == 1  # one side has not begun
    for _ in updates:
        pass
    comparer.recorder.flush()
    traces = {t.info.tags["side"]: t for t in wait_for_traces(comparison_id)}
    for side in SIDES:
        span = traces[side].data.spans[0]
        tokens = len(first[side].pieces)
        assert traces[side].info.tags["ended"] == "stopped"
        assert span.attributes["error"] == f"Stopped by the user after {tokens} tokens."
        assert span.outputs["usage"]["completion_tokens"] == tokens
        assert traces[side].info.tags["model"].startswith("tiny-phi3")


def test_a_batch_whose_client_goes_away_stops_between_rows_and_keeps_its_rows(server, client, tmp_path):
    prompts = tmp_path / f"abandoned-{time.time_ns()}.csv"
    prompts.write_text("prompt\n" + "What is the capital of Spain?\n" * 30)
    with prompts.open("rb") as f:
        (path,) = httpx.post(f"{server}gradio_api/upload", files={"files": f}, timeout=WAIT_S).json()
    file = {"path": path, "orig_name": prompts.name, "meta": {"_type": "gradio.FileData"}}
    defaults = Thresholds()
    with call(server, "batch", [file, defaults.max_kl, defaults.min_agreement, None]) as stream:
        for event, (update,) in stream:
            assert event == "generating", update  # one update per answered row
            if update["answered"] >= 2:
                break  # and go away
    answered_promptly(client)
    run = wait_for_batch_run(prompts.name)
    assert run.info.status == "KILLED"
    answered = int(run.data.metrics["prompts"])
    assert 2 <= answered < 30  # it stopped between rows, keeping every row answered
    assert run.data.tags["abandoned"] == f"the client went away after {answered} of 30 prompts"
    assert run.data.metrics["unanswered_prompts"] == 30 - answered
    logged = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="batch_results.json")
    table = json.loads(Path(logged).read_text())
    assert len(table["data"]) == answered  # whole rows only: each answered by both models
    output = table["columns"].index("onnx_output")
    assert all("Madrid" in row[output] for row in table["data"])


def wait_for_batch_run(source: str):
    """The batch run of `source`, once it has ended."""
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        runs = mlflow.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.kind = 'batch' and tags.source = '{source}'",
            output_format="list",
        )
        if runs and runs[0].info.status != "RUNNING":
            return runs[0]
        time.sleep(0.2)
    raise AssertionError(f"no ended batch run for {source} within {WAIT_S} s")
