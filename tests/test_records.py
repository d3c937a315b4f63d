"""Every comparison on the record: traces, votes and batch runs, read back from MLflow."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import mlflow
import pytest
from gradio_client import Client, handle_file

from compare.history import recent_comparisons
from compare.leaderboard import split_by_mode
from compare.owners import Asker
from compare.recorder import Recorder
from compare.service import Comparer
from compare.traces import RecordError, Request, search, write_payload, write_trace
from compare.votes import log_vote, vote_table
from tests.conftest import patient_limits, raw_call
from ui.history import history_of
from wrappers import GenerationOptions
from wrappers.config import ROOT
from wrappers.registry import EXPERIMENT, use_store
from wrappers.results import ModelRef, Result

pytestmark = pytest.mark.usefixtures("session_store")  # back to the shared store

SIDES = ("transformers", "onnx")


def traces_of(comparison_id: str) -> list:
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    return mlflow.search_traces(
        experiment_ids=[experiment.experiment_id],
        filter_string=f"tags.comparison_id = '{comparison_id}'",
        return_type="list",
    )


def wait_for_traces(comparison_id: str, count: int = 2, timeout: float = 30.0) -> list:
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


@pytest.mark.parametrize("choice", ["onnx", "right"])  # right: the documented alias of onnx
def test_a_vote_is_stored_as_feedback_on_both_traces_and_tallied(client, choice):
    out = client.predict(prompt="What is 7 plus 5?", max_tokens=16, api_name="/compare")
    reply = client.predict(
        comparison_id=out["comparison_id"], choice=choice, comment="faster", api_name="/vote"
    )
    assert len(reply["trace_ids"]) == 2
    assert (reply["choice"], reply["previous_choice"]) == ("onnx", None)
    for trace in wait_for_traces(out["comparison_id"]):
        (vote,) = [a for a in trace.info.assessments if a.name == "preference"]
        assert (vote.value, vote.rationale, vote.source.source_type) == ("onnx", "faster", "HUMAN")
    row = vote_table().set_index("comparison_id").loc[out["comparison_id"]]
    # A named vote: the transformers side is Model A, and onnx won.
    assert (row["model_a"], row["model_b"]) == ("tiny-phi3-transformers/1", "tiny-phi3-onnx-int4/1")
    assert (row["outcome"], row["blind"]) == ("b", False)


def test_a_changed_vote_says_which_vote_it_replaced(client):
    out = client.predict(prompt="What is 7 plus 5?", max_tokens=16, api_name="/compare")
    first = client.predict(comparison_id=out["comparison_id"], choice="left", api_name="/vote")
    again = client.predict(comparison_id=out["comparison_id"], choice="tie", api_name="/vote")
    assert (first["choice"], first["previous_choice"]) == ("transformers", None)
    assert (again["choice"], again["previous_choice"]) == ("tie", "transformers")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"comparison_id": "nope", "choice": "left"}, "comparison_id must be an id"),
        ({"comparison_id": "0" * 32, "choice": "best"}, "choice must be one of"),
        ({"comparison_id": "0" * 32, "choice": "tie"}, "No comparison of yours has that id"),
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


def test_a_tracking_store_that_is_down_leaves_chatting_working_with_a_notice(
    backends, config, monkeypatch, tmp_path
):
    recorder = Recorder(tmp_path / "spool")
    comparer = Comparer(backends, patient_limits(), recorder)
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


def test_only_the_session_that_made_a_comparison_may_vote_on_it(client, server):
    out = client.predict(prompt="What is the capital of Peru?", max_tokens=16, api_name="/compare")
    stranger = Client(server, verbose=False)  # another visitor: a session of its own
    with pytest.raises(Exception, match="No comparison of yours has that id"):
        stranger.predict(comparison_id=out["comparison_id"], choice="left", api_name="/vote")
    reply = client.predict(comparison_id=out["comparison_id"], choice="tie", api_name="/vote")
    assert len(reply["trace_ids"]) == 2
    for trace in wait_for_traces(out["comparison_id"]):
        assert [a.value for a in trace.info.assessments if a.name == "preference"] == ["tie"]


def test_the_vote_table_holds_every_vote_with_both_models_and_the_latest_choice(client):
    first = client.predict(prompt="Hello", max_tokens=4, api_name="/compare")
    later = [client.predict(prompt="Hi", max_tokens=1, api_name="/compare") for _ in range(3)]
    client.predict(comparison_id=first["comparison_id"], choice="left", api_name="/vote")
    client.predict(comparison_id=first["comparison_id"], choice="right", api_name="/vote")  # changed mind
    client.predict(comparison_id=later[1]["comparison_id"], choice="both_bad", api_name="/vote")
    votes = vote_table().set_index("comparison_id")
    assert votes.loc[first["comparison_id"], "outcome"] == "b"
    assert votes.loc[later[1]["comparison_id"], "outcome"] == "both_bad"
    assert later[0]["comparison_id"] not in votes.index
    row = votes.loc[first["comparison_id"]]
    assert (row["model_a"], row["model_b"], row["blind"]) == (
        "tiny-phi3-transformers/1",
        "tiny-phi3-onnx-int4/1",
        False,
    )


SESSION = "f" * 12  # raw calls name their session, so the vote below comes from the same one


@pytest.mark.parametrize(
    ("api_name", "data"),
    [
        ("compare", r'["lone \ud800 surrogate", "", 8, 0.0, 1.0, "", false]'),
        ("compare", r'["Hello", "be \udfff brief", 8, 0.0, 1.0, "", false]'),
        ("compare", r'["Hello", "", 8, 0.0, 1.0, "x\ud83d", false]'),
        (
            "compare_messages",
            r'[[{"role": "user", "content": "Hi \ud800"}, {"role": "assistant", '
            r'"content": "\udc00"}, {"role": "user", "content": "Hello"}], 8, 0.0, 1.0, "", false]',
        ),
    ],
)
def test_lone_surrogates_are_recorded_as_a_sanitised_copy_and_can_be_voted_on(server, api_name, data):
    event, out = raw_call(server, api_name, f'{{"data": {data}, "session_hash": "{SESSION}"}}')
    assert event == "complete", out
    (out,) = out
    assert out["tracing_notice"] is None
    for trace in wait_for_traces(out["comparison_id"]):
        stored = json.dumps([trace.data.spans[0].inputs, trace.info.tags], ensure_ascii=False)
        assert "\ufffd" in stored
    vote = f'{{"data": ["{out["comparison_id"]}", "tie", "\\ud800"], "session_hash": "{SESSION}"}}'
    event, reply = raw_call(server, "vote", vote)
    assert event == "complete" and len(reply[0]["trace_ids"]) == 2, reply


def test_a_trace_mlflow_refuses_is_an_error_not_silence(tmp_path):
    payload = {
        "name": "t",
        "inputs": {"messages": [{"role": "user", "content": "unsanitised \ud800"}]},
        "attributes": {},
        "tags": {"comparison_id": "2" * 32, "side": "onnx", "owner": ""},
        "outputs": {"text": ""},
        "error": None,
        "start_ns": 1,
        "end_ns": 2,
    }
    with pytest.raises(RecordError, match="surrogates not allowed"):
        write_payload(payload)


CRASH = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from compare.recorder import Recorder
    from compare.service import Comparer
    from wrappers import AppConfig, GenerationOptions, build_backends
    from wrappers.config import Limits

    config = AppConfig(data_dir=Path(sys.argv[1]))
    recorder = Recorder(config.spool_dir, max_wait_s=3600)
    comparer = Comparer(build_backends(config, progress=lambda m: None), Limits(), recorder)
    conversation = [{"role": "user", "content": "What is the capital of Spain?"}]
    with recorder.generating():  # as if other users kept the models busy: no trace is written yet
        for comparison_id in sys.argv[2:]:
            *_, last = comparer.compare(dict.fromkeys(("transformers", "onnx"), conversation),
                                        GenerationOptions(max_tokens=8), comparison_id)
            print("answered", comparison_id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
""")


def test_answers_killed_before_their_traces_are_written_are_replayed_at_the_next_start(config, backends):
    ids = [os.urandom(16).hex() for _ in range(3)]
    child = subprocess.run(
        [sys.executable, "-c", CRASH, str(config.data_dir), *ids], cwd=ROOT, capture_output=True, text=True
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    assert child.stdout.count("answered") == 3
    assert all(not traces_of(cid) for cid in ids)  # nothing reached MLflow before the kill
    restarted = Recorder(config.spool_dir)  # what the next start builds
    restarted.flush(timeout=120)
    for cid in ids:
        traces = wait_for_traces(cid)
        assert sorted(t.info.tags["side"] for t in traces) == ["onnx", "transformers"]
        assert all("Madrid" in t.data.spans[0].outputs["text"] for t in traces)
    assert restarted.spool.count() == 0


def test_history_shows_each_visitor_their_own_comparisons_and_admins_everything(backends, tmp_path):
    recorder = Recorder(tmp_path / "spool")
    comparer = Comparer(backends, patient_limits(), recorder)
    askers = {
        "alice in one tab": Asker.of("alice", "s1"),
        "alice in another browser": Asker.of("alice", "s2"),
        "bob": Asker.of("bob", "s3"),
        "anonymous visitor": Asker.of(None, "s4"),
    }
    ids = {}
    for name, asker in askers.items():
        ids[name] = os.urandom(16).hex()
        conversation = [{"role": "user", "content": f"Hello from {name}"}]
        for _ in comparer.compare(
            dict.fromkeys(SIDES, conversation), GenerationOptions(max_tokens=2), ids[name], asker
        ):
            pass
    recorder.flush()
    seen = {name: set(history_of(asker.owner)[0]["comparison_id"]) for name, asker in askers.items()}
    alice = {ids["alice in one tab"], ids["alice in another browser"]}
    assert (
        seen["alice in one tab"] & set(ids.values())
        == alice
        == seen["alice in another browser"] & set(ids.values())
    )
    assert seen["bob"] & set(ids.values()) == {ids["bob"]}
    assert seen["anonymous visitor"] & set(ids.values()) == {ids["anonymous visitor"]}
    everyone = set(recent_comparisons(None, limit=500)["comparison_id"])
    assert set(ids.values()) <= everyone


def test_history_lists_a_comparison_answered_while_the_models_are_still_busy(backends, tmp_path):
    recorder = Recorder(tmp_path / "spool", max_wait_s=3600)
    comparer = Comparer(backends, patient_limits(), recorder)
    asker, comparison_id = Asker.of(None, "busy"), os.urandom(16).hex()
    conversation = [{"role": "user", "content": "Hello while others chat"}]
    with recorder.generating():  # another visitor's generation: the background writer waits for it
        for _ in comparer.compare(
            dict.fromkeys(SIDES, conversation), GenerationOptions(max_tokens=2), comparison_id, asker
        ):
            pass
        assert comparison_id not in set(history_of(asker.owner)[0].get("comparison_id", []))
        comparer.write_records()  # what the History tab does before it reads
        assert comparison_id in set(history_of(asker.owner)[0]["comparison_id"])
    assert recorder.spool.count() == 0


@pytest.fixture
def fresh_store(tmp_path, config):
    """A store of this test's own; the session's is back for the next test."""
    use_store(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts")
    yield
    use_store(config.store_uri, config.artifact_root)


def test_votes_on_the_oldest_comparisons_count_however_many_came_after(fresh_store):
    """The leaderboard once tallied only the newest 1000 comparisons: 700 cheap ones hid a vote."""
    now = int(time.time() * 1000)
    voted = [_comparison(f"{i:032x}", now - 3_600_000 + i) for i in range(2)]  # an hour before the rest
    _add_comparisons(_comparison("f" * 32, now - 1), 1001, after_ms=now)
    for traces, choice in zip(voted, ("left", "tie"), strict=True):
        log_vote(traces, choice)
    votes = vote_table().set_index("comparison_id")
    assert votes.loc[f"{0:032x}", "outcome"] == "a" and votes.loc[f"{1:032x}", "outcome"] == "tie"
    newest = search("tags.side = 'transformers'", max_results=1000, order_by=["timestamp_ms DESC"])
    assert f"{0:032x}" not in {t.info.tags["comparison_id"] for t in newest}  # the old window missed it
    board = split_by_mode(vote_table(), resamples=10)["named"].set_index("model")
    assert board["votes"].sum() == 4 and board.loc["tiny-phi3-transformers/1", "wins"] == 1  # both votes


def _comparison(comparison_id: str, at_ms: int) -> list[str]:
    """One comparison, written by the app's own trace writer; its trace ids."""
    pair = {"transformers": "tiny-phi3-transformers/1", "onnx": "tiny-phi3-onnx-int4/1"}
    ids = []
    for side, ref in pair.items():
        name, version = ref.split("/")
        result = Result(text="Madrid", model=ModelRef(name, version), done=True)
        messages = [{"role": "user", "content": "What is the capital of Spain?"}]
        request = Request(
            comparison_id, side, messages, GenerationOptions(), result, at_ms * 10**6, pair, "o"
        )
        ids.append(write_trace(request))
    return ids


def _add_comparisons(template: list[str], count: int, after_ms: int) -> None:
    """`count` newer comparisons: copies of the `template` comparison's traces under new ids.

    Copied row by row (trace, tags, metadata, spans) in one transaction of MLflow's own store:
    its per-trace API takes 30 to 300 ms a trace on a busy 2-core machine; this, a few seconds.
    """
    from mlflow.store.tracking.dbmodels.models import SqlSpan, SqlTraceInfo, SqlTraceMetadata, SqlTraceTag
    from mlflow.tracking._tracking_service.utils import _get_store

    with _get_store().ManagedSessionMaker(read_only=False) as session:
        rows = {old: [session.query(SqlTraceInfo).filter_by(request_id=old).one()] for old in template}
        for old, kind in itertools.product(template, (SqlTraceTag, SqlTraceMetadata, SqlSpan)):
            rows[old] += session.query(kind).filter_by(
                **{"trace_id" if kind is SqlSpan else "request_id": old}
            )
        for i in range(count):
            comparison_id = uuid.uuid4().hex
            for old, new in ((old, f"tr-{uuid.uuid4().hex}") for old in template):
                for row in rows[old]:
                    changes = {"timestamp_ms": after_ms + i} if isinstance(row, SqlTraceInfo) else {}
                    if getattr(row, "key", None) == "comparison_id":
                        changes = {"value": comparison_id}
                    session.add(_copy(row, old, new, **changes))


def _copy(row, old_id: str, new_id: str, **changes):
    """A new ORM row with `row`'s columns, the trace id replaced everywhere (also inside JSON)."""
    from sqlalchemy import inspect

    attributes = [a for a in inspect(row).mapper.column_attrs if a.columns[0].computed is None]
    columns = {a.key: getattr(row, a.key) for a in attributes}
    columns = {k: v.replace(old_id, new_id) if isinstance(v, str) else v for k, v in columns.items()}
    return type(row)(**(columns | changes))
