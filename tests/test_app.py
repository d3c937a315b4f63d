"""The app through its public gradio_client API, on a real server on loopback."""

from __future__ import annotations

import time

import pytest
from gradio_client import Client

from ui import formatting as fmt
from wrappers import Latency, Result, Usage

SIDE_KEYS = {"response", "raw", "usage", "latency", "model", "error"}


@pytest.fixture(scope="module")
def client(server):
    return Client(server, verbose=False)


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
    assert set(out) == {"transformers", "onnx", "verdict", "comparison_id", "tracing_notice"}
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
        ({"prompt": "   "}, "prompt must be a non-empty string"),
        ({"prompt": "Hi", "top_p": 0}, "top_p must be in"),
        ({"prompt": "Hi", "max_tokens": 0}, "max_tokens must be between"),
        ({"prompt": "Hi", "temperature": -1}, "temperature must be in"),
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
    bubble = fmt.assistant_message(Result(text="Par", error="model crashed"))
    assert bubble["metadata"]["title"] == fmt.ERROR_TITLE and "model crashed" in bubble["content"]


def test_turns_that_failed_are_left_out_of_the_next_request():
    history = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "⚠️ boom", "metadata": {"title": fmt.ERROR_TITLE}},
    ]
    assert fmt.conversation(history, "Be brief.", "Again") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Again"},
    ]


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
