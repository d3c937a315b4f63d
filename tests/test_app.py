"""The app through its public gradio_client API, on a real server on loopback."""

from __future__ import annotations

import re
import time

import pytest

from tests.conftest import ARTIFACTS, worker_name
from ui import formatting as fmt
from wrappers import Latency, Result, Usage

SIDE_KEYS = {"response", "raw", "usage", "latency", "model", "error"}
NAMED_RETURNS = {
    "/arena": {"battle_id", "model_a", "model_b", "done"},
    "/arena_vote": {"battle_id", "choice", "winner", "model_a", "model_b", "verdict", "trace_ids"},
    "/leaderboard": {"blind", "named", "method"},
    "/replay": {"turns", "summary"},
}
STEP = re.compile(r"\[\s*[\d.]+s\] ")  # a start-up progress line: "[   6.4s] onnx: ready: ..."


def test_api_lists_exactly_the_public_endpoints(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert names == {
        "/compare",
        "/compare_messages",
        "/chat_transformers",
        "/chat_onnx",
        "/vote",
        "/batch",
        "/arena",
        "/arena_vote",
        "/leaderboard",
        "/replay",
    }


def test_compare_answers_the_seed_question_in_both_packagings(client):
    out = client.predict(prompt="What is the capital of Spain?", max_tokens=64, api_name="/compare")
    assert set(out) == {
        "transformers",
        "onnx",
        "verdict",
        "comparison_id",
        "tracing_notice",
        "ended",
        "votable",
    }
    for side in ("transformers", "onnx"):
        assert set(out[side]) == SIDE_KEYS and out[side]["error"] is None
        response = out[side]["response"]
        assert {"id", "object", "created", "model", "choices", "usage"} <= set(response)
        assert "Madrid" in response["choices"][0]["message"]["content"]
        assert set(out[side]["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
        assert set(out[side]["latency"]) == {"total_s", "ttft_s", "tokens_per_s"}
        assert out[side]["model"]["uri"].startswith("models:/")
    assert isinstance(out["onnx"]["raw"], str)
    assert out["transformers"]["raw"][0]["object"] == "chat.completion"
    assert {"identical", "diverged_at_token", "speed_ratio", "summary"} <= set(out["verdict"])


def test_compare_streams_partial_results_before_the_final_one(client):
    job = client.submit(prompt="What is the capital of Spain?", max_tokens=32, api_name="/compare")
    updates = list(job)
    assert len(updates) > 4
    assert updates[0]["verdict"] is None and updates[-1]["verdict"] is not None
    texts = [u["transformers"]["response"] for u in updates]
    assert texts[0] is None and texts[-1] is not None


def test_the_faster_side_finishes_first_in_the_stream(client):
    """Processor sharing: on the tiny model ONNX's own compute is a fraction of transformers', so
    its last token streams while transformers is still early in its answer."""
    job = client.submit(prompt="Tell me about Spain.", max_tokens=16, fidelity=False, api_name="/compare")
    updates = list(job)
    final = updates[-1]
    own = {side: final[side]["latency"]["total_s"] for side in ("onnx", "transformers")}
    assert own["onnx"] * 3 < own["transformers"]  # the premise: ONNX needs much less compute
    done = {
        side: next(i for i, u in enumerate(updates) if u[side]["response"] is not None)
        for side in ("onnx", "transformers")
    }
    assert done["onnx"] < done["transformers"]
    streamed = updates[done["onnx"]]["transformers"]["usage"]["completion_tokens"] or 0
    assert streamed < final["transformers"]["usage"]["completion_tokens"] / 2


def test_system_prompt_reaches_both_models(client):
    out = client.predict(
        prompt="Tell me a joke about atom", system_prompt="You are a stand-up comedian.", api_name="/compare"
    )
    for side in ("transformers", "onnx"):
        assert "atom" in out[side]["response"]["choices"][0]["message"]["content"].lower()


def test_compare_messages_carries_a_multi_turn_conversation(client):
    messages = [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hello! I am a tiny Phi-3 demo model."},
        {"role": "user", "content": "What is 7 plus 5?"},
    ]
    out = client.predict(messages=messages, max_tokens=32, api_name="/compare_messages")
    for side in ("transformers", "onnx"):
        assert "12" in out[side]["response"]["choices"][0]["message"]["content"]
        assert out[side]["usage"]["prompt_tokens"] > 20  # the whole conversation was sent


@pytest.mark.parametrize("side", ["transformers", "onnx"])
def test_single_model_endpoints_return_one_side(client, side):
    out = client.predict(prompt="What is the capital of Spain?", max_tokens=32, api_name=f"/chat_{side}")
    assert set(out) == SIDE_KEYS
    assert "Madrid" in out["response"]["choices"][0]["message"]["content"]
    assert out["model"]["name"].startswith("tiny-phi3")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": "   "}, "prompt must be text that is not blank"),
        ({"prompt": "Hi", "top_p": 0}, "top_p must be a number above 0 and at most 1"),
        ({"prompt": "Hi", "max_tokens": 0}, "max_tokens must be a whole number from 1 to"),
        ({"prompt": "Hi", "temperature": -1}, "temperature must be a number from 0 to 2"),
    ],
)
def test_bad_input_is_an_api_error_with_the_reason(client, kwargs, message):
    with pytest.raises(Exception, match=message):
        client.predict(**kwargs, api_name="/compare")


def test_stop_sequences_apply_to_both_models(client):
    out = client.predict(prompt="What is the capital of Spain?", stop="Madrid", api_name="/compare")
    for side in ("transformers", "onnx"):
        content = out[side]["response"]["choices"][0]["message"]["content"]
        assert "Madrid" not in content and content


def test_usage_and_latency_format_for_the_panes():
    assert fmt.usage_markdown(Usage()) == "**Tokens**: prompt – · completion – · total –"
    assert "decode 12.0 tokens/s" in fmt.latency_markdown(Latency(1.0, 0.1, 12.0))
    assert fmt.answer_text(Result(text="Par", error="model crashed")) == "Par\n\n⚠️ model crashed"


def test_the_metrics_table_has_a_column_per_side_and_marks_the_better_figure():
    slow = Result(usage=Usage(16, 20, 36), latency=Latency(2.0, 0.5, 12.7))
    fast = Result(usage=Usage(16, 20, 36), latency=Latency(0.05, 0.01, 3456.0))
    table = fmt.metrics_markdown({"transformers": slow, "onnx": fast})
    lines = table.splitlines()
    assert lines[0] == "| | transformers | onnx |"
    assert "| Time to first token | 500 ms | **10 ms** ✓ |" in lines
    assert "| Decode speed (tokens/s) | 12.7 | **3,456** ✓ |" in lines
    assert "| Total time | 2.00 s | **50 ms** ✓ |" in lines
    assert "| Completion tokens | 20 | 20 |" in lines
    short = Result(usage=Usage(16, 3, 19), latency=Latency(0.05, 0.01, 3456.0))
    row = fmt.metrics_markdown({"transformers": slow, "onnx": short}).split("Decode")[1].split("\n")[0]
    assert "✓" not in row and "3,456" not in row  # two tokens after the first: no figure to show
    assert row == " speed (tokens/s) | 12.7 | too short |"


def test_turns_that_failed_or_were_stopped_are_left_out_of_the_next_request():
    from compare.turns import ERROR, STOPPED, Answer, Turn, messages_for

    turns = [
        Turn("Hi", {"a": Answer("Hello!")}),
        Turn("Boom", {"a": Answer("", "boom")}, ERROR),
        Turn("Long", {"a": Answer("Once upon")}, STOPPED),
    ]
    assert messages_for(turns, "a", "Be brief.", "Again") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Again"},
    ]
    shown = fmt.chat_messages(turns, "a")
    assert len(shown) == 6 and "⚠️ boom" in shown[3]["content"] and "Stopped" in shown[5]["content"]
    assert all("metadata" not in m for m in shown)  # errors are text, not a collapsed box


def test_api_describes_what_each_endpoint_returns(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    compare = endpoints["/compare"]["returns"][0]["type"]
    assert set(compare["properties"]) == {
        "transformers",
        "onnx",
        "verdict",
        "comparison_id",
        "tracing_notice",
        "ended",
        "votable",
    }
    side = compare["properties"]["onnx"]
    assert set(side["properties"]) == SIDE_KEYS
    assert set(side["properties"]["latency"]["properties"]) == {"total_s", "ttft_s", "tokens_per_s"}
    verdict = next(o for o in compare["properties"]["verdict"]["oneOf"] if o["type"] == "object")
    fidelity = next(o for o in verdict["properties"]["fidelity"]["oneOf"] if o["type"] == "object")
    assert {"mean_kl", "top1_agreement", "per_token"} <= set(fidelity["properties"])
    assert endpoints["/chat_onnx"]["returns"][0]["type"]["properties"].keys() == SIDE_KEYS
    assert "previous_choice" in endpoints["/vote"]["returns"][0]["type"]["properties"]
    returned = {name: endpoints[name]["returns"][0]["type"]["properties"] for name in NAMED_RETURNS}
    for name, keys in NAMED_RETURNS.items():
        assert keys <= set(returned[name]), name
    assert set(returned["/arena"]["model_a"]["properties"]) == {"text", "error", "done"}  # no names
    assert {"side", *SIDE_KEYS} <= set(returned["/arena_vote"]["model_a"]["properties"])
    assert "rating" in returned["/leaderboard"]["blind"]["items"]["properties"]
    printed = client.view_api(print_info=False, return_format="str")
    assert "transformers" in printed.split("/compare_messages")[0].split("Returns")[-1]


def test_the_shipped_client_example_runs_against_the_app(server):
    import subprocess
    import sys

    from wrappers.config import ROOT

    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "client.py"), server],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "Madrid" in out.stdout and "verdict" in out.stdout


def test_a_cancelled_stream_leaves_both_models_free_for_the_next_request(client):
    job = client.submit(prompt="Tell me about Spain.", max_tokens=256, api_name="/compare")
    while not job.outputs() and not job.done():
        time.sleep(0.01)
    job.cancel()
    out = client.predict(prompt="What is the capital of Spain?", max_tokens=64, api_name="/compare")
    for side in ("transformers", "onnx"):
        assert out[side]["error"] is None
        assert "Madrid" in out[side]["response"]["choices"][0]["message"]["content"]


NOISE = (
    "gradio.exceptions.Error",  # the end of a traceback printed for an input error raised on purpose
    "already exists",
    "Created version",
    "generation-related arguments",
    "seem to have been set",
    "Ignoring clean_up_tokenization_spaces",
    "Loading weights",
    "Add type hints",
    "FutureWarning",
    "Creating initial MLflow database tables",
)


def test_the_app_log_has_one_line_per_step_and_no_library_noise(client):
    """The server's own log (started by conftest as `python app.py`) after answers and refusals."""
    client.predict(prompt="What is 7 plus 5?", max_tokens=8, api_name="/compare")
    client.predict(prompt="Hi", max_tokens=8, temperature=0.7, stop="Madrid", api_name="/compare")
    refused = [
        {"prompt": "", "api_name": "/compare"},
        {"prompt": "Hi", "max_tokens": 10**6, "api_name": "/chat_onnx"},
        {"comparison_id": "x", "choice": "tie", "api_name": "/vote"},
        {"battle_id": "x", "choice": "a", "api_name": "/arena_vote"},
        {"conversation": "{", "api_name": "/replay"},
    ]
    for call in refused:
        with pytest.raises(Exception, match="."):  # each reason is tested elsewhere
            client.predict(**call)
    log = (ARTIFACTS / f"{worker_name('server')}.log").read_text(errors="replace")
    assert [noise for noise in NOISE if noise in log] == []
    steps = [line.split("]", 1)[1] for line in log.splitlines() if STEP.match(line)]
    assert steps and len(steps) == len(set(steps)), steps  # each start-up step said once


def test_the_batch_and_history_tables_have_units_rounded_figures_and_short_ids():
    import pandas as pd

    from ui import tables

    batch = pd.DataFrame(
        [
            {
                "prompt": "Capital of Spain?",
                "expected": None,
                "transformers_output": "Madrid.",
                "onnx_output": "Madrid.",
                "agree": True,
                "transformers_latency_s": 0.198520603,
                "onnx_tokens_per_s": 1519.94,
                "mean_kl": 1.369123e-06,
                "top1_agreement": 1.0,
            }
        ]
    )
    shown = tables.batch_results(batch).value
    assert shown["headers"] == [
        "Prompt",
        "Expected",
        "transformers answer",
        "onnx answer",
        "Same answer",
        "transformers total (ms)",
        "onnx decode (tok/s)",
        "Mean KL (nats/token)",
        "Top-1 agreement (%)",
    ]
    assert shown["data"][0] == [
        "Capital of Spain?",
        "",
        "Madrid.",
        "Madrid.",
        "✓",
        198.5,
        1519.9,
        "1.37e-06",
        100.0,
    ]
    history = pd.DataFrame(
        [{"time": pd.Timestamp(1_764_200_000_000, unit="ms"), "comparison_id": "0123456789abcdef" * 2}]
    )
    assert tables.comparisons(history).value["data"][0] == ["2025-11-26 23:33:20", "01234567"]
