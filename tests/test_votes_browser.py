"""Stop, votes and blind mode in a real browser, at 1400×900 and 390×844.

What Stop means on the page (the verdict, History's label, a refused vote), blind mode's
Stop, reopen and panes, the vote that stands, and four blind vote buttons clicked at once.
"""

from __future__ import annotations

import re
import time
import uuid

import mlflow
import pytest
from playwright.sync_api import expect

from compare.endings import LABELS, REFUSALS, Ending
from tests.conftest import ARTIFACTS
from tests.test_chat_ui import DESK, PHONE, error_badges, open_page, send, settings  # noqa: F401
from tests.test_endings import LONG_PROMPT
from wrappers.registry import EXPERIMENT

pytestmark = pytest.mark.usefixtures("session_store")  # back to the shared store

SIZES = {"desk": DESK, "phone": PHONE}
LABELS_AB = ("model_a", "model_b")


@pytest.fixture(params=list(SIZES))
def page(request, browser, server):  # noqa: F811
    page = open_page(browser, server, SIZES[request.param])
    page.size = request.param
    yield page
    page.close()


@pytest.fixture
def desk(browser, server):  # noqa: F811
    page = open_page(browser, server, DESK)
    yield page
    page.close()


def toast(page, text: str):
    return page.locator(".toast-body").filter(has_text=text)


def history_row(page, text: str):
    """The History tab's first visible cell holding `text`, refreshed until the trace is written."""
    page.get_by_role("tab", name="History").click()
    rows = page.locator("#history-comparisons")
    deadline = time.monotonic() + 60  # traces are written in the background, between generations
    while text not in rows.inner_text() and time.monotonic() < deadline:
        page.locator("#history-refresh").click()
        page.wait_for_timeout(1000)
    return rows.get_by_text(text).locator("visible=true").first


def dismiss_toasts(page) -> None:
    for close in page.locator(".toast-close").all():
        close.click()
    expect(page.locator(".toast-body")).to_have_count(0)


def stop_mid_stream(
    page, prompt_box: str, send_button: str, stop_button: str, status: str, panes: str
) -> None:
    """Send a long answer and press Stop while it streams (retried if it ended first).

    Stop goes as soon as either of the `panes` shows its answer starting: which side steps first
    depends on the two sides' measured speeds (compare/comparison.py)."""
    answers = page.locator(panes).locator("[data-testid='bot']")
    for _ in range(3):
        count = answers.count()
        page.locator(f"{prompt_box} textarea").fill(LONG_PROMPT)
        page.locator(send_button).click()
        expect(answers).not_to_have_count(count, timeout=60_000)
        page.locator(stop_button).click()
        expect(page.locator(status)).to_contain_text(
            re.compile("Stopped|Vote to reveal|ompletions"), timeout=60_000
        )
        if "Stopped" in page.locator(status).inner_text():
            return
    raise AssertionError("three answers ended before Stop reached them")


def test_after_stop_the_page_history_and_the_vote_all_say_it_cannot_be_voted_on(desk):
    settings(desk, temperature=0, max_tokens=512)
    stop_mid_stream(desk, "#prompt", "#send", "#stop", "#verdict", "#chat-transformers, #chat-onnx")
    verdict = desk.locator("#verdict").inner_text()
    assert "kept on the record as stopped" in verdict and "only comparisons that finished" in verdict
    desk.locator("#vote-onnx").click()
    expect(toast(desk, REFUSALS[Ending.STOPPED])).to_have_count(1, timeout=30_000)
    expect(desk.locator("#vote-standing")).to_have_text("")

    history_row(desk, LABELS[Ending.STOPPED]).click()
    expect(desk.locator("#verdict")).to_contain_text("reopened from History", timeout=30_000)
    expect(desk.locator("#verdict")).to_contain_text("stopped")
    dismiss_toasts(desk)
    desk.locator("#vote-tie").click()
    expect(toast(desk, REFUSALS[Ending.STOPPED])).to_have_count(1, timeout=30_000)
    expect(error_badges(desk)).to_have_count(0)


def test_the_vote_that_stands_is_shown_under_the_buttons_and_cleared_with_the_comparison(page):
    send(page, "What is 7 plus 5?")
    standing = page.locator("#vote-standing")
    page.locator("#vote-onnx").click()
    expect(standing).to_contain_text("onnx is better", timeout=30_000)
    page.locator("#vote-tie").click()
    expect(standing).to_contain_text("Tie", timeout=30_000)
    expect(standing).to_contain_text("replaced your earlier vote, onnx is better")
    assert standing.is_visible()
    page.screenshot(path=str(ARTIFACTS / f"vote-standing-{page.size}.png"))
    send(page, "What is the capital of Spain?")
    expect(standing).to_have_text("")


def blind_on(page) -> None:
    page.locator("#blind-mode input").check()
    expect(page.locator("#arena")).to_be_visible()


def battle(page, prompt: str = "What is the capital of Spain?") -> None:
    page.locator("#arena-prompt textarea").fill(prompt)
    page.locator("#arena-send").click()
    expect(page.locator("#arena-status")).to_contain_text("Vote to reveal", timeout=60_000)


def test_blind_panes_have_no_clear_and_their_labels_stay_clear_of_the_messages_after_the_reveal(page):
    blind_on(page)
    battle(page)
    for pane in (*(f"#chat-{label}" for label in LABELS_AB), "#chat-transformers", "#chat-onnx"):
        for button in page.locator(f"{pane} button[aria-label='Clear']").all():
            expect(button).to_be_hidden()
    page.locator("#arena-vote-a").click()
    expect(page.locator("#arena-reveal")).to_contain_text("Model A was", timeout=30_000)
    for label in LABELS_AB:
        pane = page.locator(f"#chat-{label}")
        expect(pane).to_contain_text(": ")  # named after the reveal
        name = pane.locator("[data-testid='block-label']").first.bounding_box()
        first = pane.locator("[data-testid='user']").first.bounding_box()
        assert name["y"] + name["height"] <= first["y"] + 1, (label, name, first)
    page.locator("#arena").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"blind-reveal-{page.size}.png"))


def test_blind_mode_stop_means_what_the_chat_tabs_stop_means(desk):
    settings(desk, temperature=0, max_tokens=512)
    blind_on(desk)
    stop_mid_stream(
        desk, "#arena-prompt", "#arena-send", "#arena-stop", "#arena-status", "#chat-model_a, #chat-model_b"
    )
    expect(desk.locator("#arena-status")).to_contain_text("only comparisons that finished")
    desk.locator("#arena-vote-a").click()
    expect(toast(desk, REFUSALS[Ending.STOPPED])).to_have_count(1, timeout=30_000)
    expect(error_badges(desk)).to_have_count(0)


def test_clear_mid_stream_leaves_the_page_empty(desk):
    """Clear stops the running comparison and empties the panes; the comparison's last updates,
    which come after Clear's (it ends at its next step), must not put it back on the page."""
    settings(desk, temperature=0, max_tokens=512)
    answers = desk.locator("#chat-transformers, #chat-onnx").locator("[data-testid='bot']")
    for _ in range(2):  # twice: the first and a later turn
        desk.locator("#prompt textarea").fill(LONG_PROMPT)
        desk.locator("#send").click()
        expect(answers).not_to_have_count(0, timeout=60_000)
        desk.locator("#clear").click()
        desk.wait_for_timeout(2_000)  # the comparison has ended at its next step by now
        expect(answers).to_have_count(0)
        expect(desk.locator("#verdict")).to_have_text("")
        expect(error_badges(desk)).to_have_count(0)


def test_reopening_from_history_while_blind_shows_the_reopened_comparison(desk):
    send(desk, "What is 7 plus 5?")
    blind_on(desk)
    history_row(desk, "What is 7 plus 5?").click()
    expect(desk.locator("#verdict")).to_contain_text("reopened from History", timeout=30_000)
    for side in ("transformers", "onnx"):
        expect(desk.locator(f"#chat-{side}")).to_be_visible()
        expect(desk.locator(f"#chat-{side}")).to_contain_text("12")
    expect(desk.locator("#arena")).to_be_hidden()
    expect(desk.locator("#blind-mode input")).not_to_be_checked()


def test_four_blind_vote_buttons_clicked_at_once_store_one_vote(desk):
    blind_on(desk)
    nonce = uuid.uuid4().hex[:8]
    battle(desk, f"What is 7 plus 5? {nonce}")
    desk.evaluate(
        "() => ['a', 'b', 'tie', 'both_bad'].forEach(c => document.querySelector('#arena-vote-' + c).click())"
    )
    expect(toast(desk, "Vote stored")).to_have_count(1, timeout=30_000)
    expect(toast(desk, "already been voted on").first).to_be_visible(timeout=30_000)
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    traces = [
        t
        for t in mlflow.search_traces(
            locations=[experiment.experiment_id], filter_string="tags.arena = 'true'", return_type="list"
        )
        if nonce in str(t.data.spans[0].inputs)
    ]
    assert len(traces) == 2
    for trace in traces:
        assert len([a for a in trace.info.assessments if a.name == "preference"]) == 1
