"""A request that cannot finish within the time limit here is refused up front, at every entry point.

The app runs in this process on the tiny models, with its request time limit set through
its `Limits` from the speeds the models measured on their warm-up: "tight" is 40% of what
4,096 tokens of the faster side alone are expected to take, so every request below at
4,096 max tokens is refused; "roomy" is 40% of 4,096 tokens of the slower side alone, so
a one-token comparison fits (a second or so here) and the slower side regenerated at
4,096 tokens does not. The margins hold on a busy machine.
"""

from __future__ import annotations

import contextlib
import json

import pytest
from gradio_client import Client
from playwright.sync_api import expect

from compare.conversation import FORMAT, VERSION
from compare.owners import Asker
from compare.service import Comparer
from tests.conftest import free_port
from tests.test_browser import browser_page
from tests.test_chat_ui import error_badges, settings
from tests.test_chat_ui import send as send_and_wait
from ui.panels import run_batch
from wrappers.limits import Limits
from wrappers.options import MAX_NEW_TOKENS_LIMIT
from wrappers.startup import measure_pace

QUESTION = "What is the capital of Spain?"
MOST = MAX_NEW_TOKENS_LIMIT
REFUSED = r"would take about .+ here .+; the time limit is "


def expected_s(backends, sides, max_tokens: int) -> float:
    messages = [{"role": "user", "content": QUESTION}]
    return sum(
        backends[side].pace.speed().seconds(backends[side].prompt_tokens(messages), max_tokens)
        for side in sides
    )


@pytest.fixture(scope="module")
def measured(backends):
    for backend in backends.values():
        measure_pace(backend)
    return backends


@contextlib.contextmanager
def app_with_limit(backends, limit_s: float):
    """The app in this process, its requests limited to `limit_s`; yields its URL."""
    from app import build_app
    from ui.chat import CSS

    demo = build_app(backends, limits=Limits(request_timeout_s=limit_s, max_new_tokens=MOST))
    port = free_port()
    demo.queue().launch(server_port=port, prevent_thread_lock=True, quiet=True, css=CSS)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture(scope="module")
def tight(measured):
    with app_with_limit(measured, 0.4 * expected_s(measured, ["onnx"], MOST)) as url:
        yield url


@pytest.fixture(scope="module")
def roomy(measured):
    with app_with_limit(measured, 0.4 * expected_s(measured, ["transformers"], MOST)) as url:
        yield url


def refused_before_any_update(job) -> str:
    """The error a streamed call ended with, after checking it streamed nothing."""
    with pytest.raises(Exception, match=REFUSED) as caught:
        job.result()
    assert job.outputs() == []  # refused before any model ran: not one update
    return str(caught.value)


@pytest.mark.parametrize(
    ("api_name", "arguments"),
    [
        ("/compare", {"prompt": QUESTION}),
        ("/compare_messages", {"messages": [{"role": "user", "content": QUESTION}]}),
        ("/chat_transformers", {"prompt": QUESTION}),
        ("/chat_onnx", {"prompt": QUESTION}),
        ("/arena", {"prompt": QUESTION}),
    ],
)
def test_every_streaming_endpoint_refuses_up_front_with_the_expected_time(tight, api_name, arguments):
    job = Client(tight, verbose=False).submit(**arguments, max_tokens=MOST, api_name=api_name)
    message = refused_before_any_update(job)
    assert f"with up to {MOST:,} new tokens" in message
    assert "new tokens or fewer" in message  # what fits
    if api_name.startswith("/chat_"):
        assert "share the CPU" not in message  # one side: its own time only


def test_a_one_token_comparison_fits_and_is_answered(roomy):
    out = Client(roomy, verbose=False).predict(prompt=QUESTION, max_tokens=1, api_name="/compare")
    assert out["onnx"]["error"] is None and out["transformers"]["error"] is None


def test_a_replayed_turn_that_cannot_finish_in_time_is_a_row_error_not_a_lost_replay(tight):
    answers = {side: {"text": "Madrid."} for side in ("transformers", "onnx")}
    content = {
        "format": FORMAT,
        "version": VERSION,
        "settings": {"system_prompt": "", "max_tokens": MOST, "temperature": 0.0, "top_p": 1.0, "stop": []},
        "turns": [{"prompt": QUESTION, "answers": answers}],
    }
    out = Client(tight, verbose=False).predict(conversation=json.dumps(content), api_name="/replay")
    assert [row["same"] for row in out["turns"]] == ["no: error", "no: error"]
    assert all("would take about" in row["replayed"] for row in out["turns"])


def test_each_batch_row_that_cannot_finish_in_time_is_that_rows_error(backends, tmp_path):
    comparer = Comparer(backends, Limits(request_timeout_s=1e-4), None, fidelity=False)
    prompts = tmp_path / "two.csv"
    prompts.write_text(f"prompt\n{QUESTION}\nHello\n")
    result = run_batch(comparer, prompts, "two.csv", Asker.of(None, "s"), tmp_path)
    table = result["table"]
    assert len(table) == 2 and result["summary"]["failed_rows"] == 2
    for side in ("transformers", "onnx"):
        assert table[f"{side}_output"].str.contains("ERROR: This prompt of .+ would take about").all()


@contextlib.contextmanager
def chat_page(url: str):
    with browser_page(url, 900) as page:
        expect(page.locator("#send")).to_have_text("Send", timeout=60_000)
        yield page


def one_toast(page, text: str) -> None:
    expect(page.locator(".toast-body").filter(has_text=text)).to_have_count(1, timeout=20_000)
    assert error_badges(page).count() == 0  # refused before any output was touched


def test_the_chat_tab_refuses_with_one_toast_and_leaves_the_panes_as_they_were(tight):
    with chat_page(tight) as page:
        settings(page, max_tokens=MOST)
        page.locator("#prompt textarea").fill(QUESTION)
        page.locator("#send").click()
        one_toast(page, "would take about")
        expect(page.locator("#prompt textarea")).to_have_value(QUESTION)  # nothing lost
        expect(page.locator("#chat-transformers [data-testid='user']")).to_have_count(0)


def test_blind_mode_refuses_with_one_toast_before_the_battle_starts(tight):
    with chat_page(tight) as page:
        settings(page, max_tokens=MOST)
        page.locator("#blind-mode input").check()
        page.locator("#arena-prompt textarea").fill(QUESTION)
        page.locator("#arena-send").click()
        expect(page.locator(".toast-body").filter(has_text="would take about")).to_have_count(1)
        expect(page.locator("#arena-prompt textarea")).to_have_value(QUESTION)  # nothing lost
        expect(page.locator("#arena-status")).not_to_contain_text("answering")
        expect(page.locator("#chat-model_a [data-testid='user']")).to_have_count(0)


def test_regenerating_the_slower_side_is_refused_on_its_own_time(roomy):
    with chat_page(roomy) as page:
        settings(page, max_tokens=1)
        send_and_wait(page, QUESTION)  # one token fits
        settings(page, max_tokens=MOST)
        page.locator("#regenerate-transformers").click()
        one_toast(page, "(transformers ")  # its own time only: no "share the CPU"
        expect(page.locator(".toast-body").filter(has_text="share the CPU")).to_have_count(0)
        expect(page.locator("#chat-transformers [data-testid='user']")).to_have_count(1)
