"""A client that goes away: its queued request is dropped, its stream stops, its batch ends.

Each test closes a real HTTP stream of the running app (Gradio's /call API) and then looks
at the effects: another client's answer, the traces and the batch's MLflow run.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import mlflow
import pytest
from gradio_client import Client

from compare.acceptance import Thresholds
from compare.records import owner_id
from tests.test_records import wait_for_traces
from wrappers.registry import EXPERIMENT, use_store

# The tiny model rambles on this prompt until max_tokens (its ONNX side, at least): a long stream.
RAMBLING = "t]0'!nH2TUZT0\\HaA6UBlObW1A"
WAIT_S = 60  # bound on every wait; each is normally well under a second or two


@pytest.fixture(autouse=True)
def session_store(config):
    use_store(config.store_uri, config.artifact_root)


@pytest.fixture(scope="module")
def client(server):
    return Client(server, verbose=False)


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
    with call(server, "compare", [RAMBLING, "", 512, 0.0, 1.0, "", True]) as running:
        assert next(running)[0] == "generating"  # holds the models' one slot
        with call(server, "compare", ["What is the capital of Spain?", "", 8, 0.0, 1.0, "", False], session):
            pass  # queued behind it, then gone
        later = client.submit(prompt="Hello", max_tokens=4, fidelity=False, api_name="/compare")
        events = [event for event, _ in running]
        assert events[-1] == "complete"  # 512 tokens and their scoring: seconds after the other call left
    wait_for_traces(later.result(timeout=WAIT_S)["comparison_id"])  # it ran after the dropped one's turn
    gone = mlflow.search_traces(filter_string=f"tags.owner = '{owner_id(None, session)}'", return_type="list")
    assert gone == []


def test_a_stream_whose_client_goes_away_stops_and_frees_the_models(server, client):
    whole = client.predict(prompt=RAMBLING, max_tokens=512, fidelity=False, api_name="/compare")
    assert whole["onnx"]["usage"]["completion_tokens"] == 512  # the premise: a long answer
    with call(server, "compare", [RAMBLING, "", 512, 0.0, 1.0, "", False]) as stream:
        for _, (update,) in stream:
            if (update["onnx"]["usage"]["completion_tokens"] or 0) >= 3:
                break  # and go away
    answered_promptly(client)
    traces = {t.info.tags["side"]: t for t in wait_for_traces(update["comparison_id"])}
    assert all(t.info.tags["abandoned"] == "true" for t in traces.values())
    cut = traces["onnx"].data.spans[0]
    assert cut.attributes["error"].startswith("Abandoned: the client went away after")
    assert cut.outputs["usage"]["completion_tokens"] < 512  # it stopped generating


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
