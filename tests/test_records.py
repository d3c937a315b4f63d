"""Every comparison on the record: traces, votes and batch runs, read back from MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from gradio_client import Client, handle_file

from compare.records import Recorder, vote_table
from ui.api import Comparer
from wrappers import GenerationOptions
from wrappers.config import ROOT, Limits
from wrappers.registry import EXPERIMENT, use_store

SIDES = ("transformers", "onnx")


@pytest.fixture(scope="module")
def client(server):
    return Client(server, verbose=False)


@pytest.fixture(autouse=True)
def session_store(config):
    use_store(config.store_uri, config.artifact_root)


def traces_of(comparison_id: str) -> list:
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    return mlflow.search_traces(
        experiment_ids=[experiment.experiment_id],
        filter_string=f"tags.comparison_id = '{comparison_id}'",
        return_type="list",
    )


def wait_for_traces(comparison_id: str, count: int = 2, timeout: float = 30.0) -> list:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = traces_of(comparison_id)
        if len(found) >= count:
            return found
        time.sleep(0.2)
    raise AssertionError(
        f"expected {count} traces for {comparison_id}, found {len(traces_of(comparison_id))}"
    )


def test_each_comparison_is_a_linked_pair_of_traces_with_the_request_and_the_answer(client):
    out = client.predict(prompt="What is the capital of Spain?", max_tokens=32, api_name="/compare")
    traces = wait_for_traces(out["comparison_id"])
    assert sorted(t.info.tags["side"] for t in traces) == ["onnx", "transformers"]
    for trace in traces:
        side = trace.info.tags["side"]
        (span,) = trace.data.spans
        assert span.inputs["messages"] == [{"role": "user", "content": "What is the capital of Spain?"}]
        assert span.inputs["settings"]["max_tokens"] == 32 and span.inputs["settings"]["temperature"] == 0.0
        assert "Madrid" in span.outputs["text"]
        assert span.outputs["usage"] == out[side]["usage"]
        assert span.attributes["ttft_s"] == out[side]["latency"]["ttft_s"]
        assert span.attributes["total_s"] == out[side]["latency"]["total_s"]
        model = out[side]["model"]
        assert trace.info.tags["model"] == f"{model['name']}/{model['version']}"
        assert trace.info.tags["model.transformers"] == "tiny-phi3-transformers/1"


def test_a_vote_is_stored_as_feedback_on_both_traces_and_tallied(client):
    out = client.predict(prompt="What is 7 plus 5?", max_tokens=16, api_name="/compare")
    reply = client.predict(
        comparison_id=out["comparison_id"], choice="right", comment="faster", api_name="/vote"
    )
    assert len(reply["trace_ids"]) == 2
    for trace in wait_for_traces(out["comparison_id"]):
        (vote,) = [a for a in trace.info.assessments if a.name == "preference"]
        assert (vote.value, vote.rationale, vote.source.source_type) == ("right", "faster", "HUMAN")
    row = vote_table().set_index("comparison_id").loc[out["comparison_id"]]
    # A named vote: the transformers side is Model A, and "right" (onnx) won.
    assert (row["model_a"], row["model_b"]) == ("tiny-phi3-transformers/1", "tiny-phi3-onnx-int4/1")
    assert (row["outcome"], row["blind"]) == ("b", False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"comparison_id": "nope", "choice": "left"}, "comparison_id must be an id"),
        ({"comparison_id": "0" * 32, "choice": "best"}, "choice must be one of"),
        ({"comparison_id": "0" * 32, "choice": "tie"}, "No recorded comparison has that id"),
    ],
)
def test_bad_votes_are_refused_with_the_reason(client, kwargs, message):
    with pytest.raises(Exception, match=message):
        client.predict(**kwargs, api_name="/vote")


def test_a_batch_is_answered_and_logged_as_one_run(client, tmp_path):
    prompts = tmp_path / "prompts.csv"
    prompts.write_text(
        "prompt,expected\nWhat is the capital of Spain?,Madrid\nWhat is the capital of Peru?,Lima\nHello,\n"
    )
    out = client.predict(file=handle_file(str(prompts)), api_name="/batch")
    assert [r["prompt"] for r in out["records"]] == [
        "What is the capital of Spain?",
        "What is the capital of Peru?",
        "Hello",
    ]
    assert all(r["agree"] for r in out["records"])
    assert out["summary"]["transformers_accuracy"] == out["summary"]["onnx_accuracy"] == 1.0
    run = mlflow.get_run(out["run_id"])
    assert run.data.tags["kind"] == "batch"
    assert run.data.metrics["agreement_rate"] == 1.0 and run.data.metrics["prompts"] == 3
    assert run.data.params["model.onnx"] == "tiny-phi3-onnx-int4/1"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(out["run_id"])}
    assert {"batch_results.json", "latency.png", "batch_results.csv"} <= artifacts
    logged = mlflow.artifacts.download_artifacts(run_id=out["run_id"], artifact_path="batch_results.json")
    table = json.loads(Path(logged).read_text())
    assert len(table["data"]) == 3


def test_a_file_without_a_prompt_column_is_refused(client, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("question\nWhat?\n")
    with pytest.raises(Exception, match="needs a 'prompt' column"):
        client.predict(file=handle_file(str(bad)), api_name="/batch")


def test_a_tracking_store_that_is_down_leaves_chatting_working_with_a_notice(backends, config, monkeypatch):
    recorder = Recorder()
    comparer = Comparer(backends, Limits(), recorder)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    mlflow.set_tracking_uri("http://127.0.0.1:9")  # nothing listens there
    try:
        conversations = {
            side: [{"role": "user", "content": "What is the capital of Spain?"}] for side in SIDES
        }
        *_, last = comparer.compare(conversations, GenerationOptions(), "1" * 32)
        recorder.flush()
    finally:
        use_store(config.store_uri, config.artifact_root)
    assert all("Madrid" in last[side].text and last[side].error is None for side in SIDES)
    assert "Tracing is unavailable" in comparer.notice


def test_the_built_in_batch_set_exists_and_reads():
    from compare.batch import read_prompts

    prompts = read_prompts(ROOT / "examples" / "batch_prompts.csv")
    assert len(prompts) >= 10 and prompts["expected"].notna().sum() >= 10
