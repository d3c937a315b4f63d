"""The Chat tab in a real browser (Debian's Chromium) at 1400×900 and on a 390×844 phone.

Each test opens its own page (its own session), so none depends on another's conversation.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import ARTIFACTS, free_port

DESK, PHONE = {"width": 1400, "height": 900}, {"width": 390, "height": 844}
DONE = re.compile(r"[Cc]ompletions|Not compared|Stopped")
SIDES = ("transformers", "onnx")


def open_page(browser, url: str, viewport: dict):
    page = browser.new_page(viewport=viewport)
    page.goto(url)
    expect(page.locator("#send")).to_have_text("Send", timeout=60_000)
    expect(page.locator("#send")).to_be_enabled()
    return page


@pytest.fixture
def desk(browser, server):
    page = open_page(browser, server, DESK)
    yield page
    page.close()


@pytest.fixture
def phone(browser, server):
    page = open_page(browser, server, PHONE)
    yield page
    page.close()


def send(page, prompt: str, button: str = "#send") -> str:
    """Type `prompt` (unless None), click, and wait for this comparison's verdict."""
    verdict = page.locator("#verdict")
    before = re.search(r"Comparison (\w{8})", verdict.inner_text())
    if prompt is not None:
        page.locator("#prompt textarea").fill(prompt)
    page.locator(button).click()
    if before:  # each comparison has a new id
        expect(verdict).not_to_contain_text(before.group(1), timeout=30_000)
    expect(verdict).to_contain_text(DONE, timeout=90_000)
    return verdict.inner_text()


def settings(page, temperature: float | None = None, max_tokens: int | None = None, stop: str | None = None):
    """Type into the setting boxes (opening the accordion first); each box is checked to hold the value."""
    if not page.locator("#setting-stop textarea").is_visible():
        page.get_by_text("Settings for both models").click()
    boxes = {"temperature input": temperature, "max-tokens input": max_tokens, "stop textarea": stop}
    for box, value in boxes.items():
        if value is not None:
            type_into(page, page.locator(f"#setting-{box}"), str(value))


def type_into(page, field, value: str) -> None:
    """Fill a setting box, and leave it. Under load a box has read back its earlier value right
    after a fill (a 0 read back as 128, in a few runs; the cause was not found, and the value the
    app then used is checked by the callers): type again until the box holds the value a moment."""
    expect(field).to_be_visible()
    for _ in range(3):
        field.fill(value)
        page.wait_for_timeout(200)
        if field.input_value() == value:
            break
    expect(field).to_have_value(value)
    field.press("Tab")


def error_badges(page):
    """Gradio's red "Error" status on an output that an event failed to update."""
    return page.locator("[data-testid='status-tracker']").filter(has_text=re.compile(r"^\s*Error\s*$"))


def last_answer(page, side: str):
    return page.locator(f"#chat-{side} [data-testid='bot']").last


def inside_viewport(page, locator) -> bool:
    box, view = locator.bounding_box(), page.viewport_size
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= view["height"]


def metric(page, row: str) -> list[str]:
    """The cells of one row of the metrics table, transformers first."""
    cells = page.locator("#metrics tr").filter(has_text=row).first.locator("td").all_inner_texts()
    return [c.replace("✓", "").strip() for c in cells[1:]]


def test_prompt_and_both_last_answers_are_on_one_screen_at_1400x900(desk):
    send(desk, "What is the capital of Spain?")
    send(desk, "Hello! Who are you?")
    for side in SIDES:
        expect(last_answer(desk, side)).to_contain_text("I")
        assert inside_viewport(desk, last_answer(desk, side)), side
    assert inside_viewport(desk, desk.locator("#prompt textarea"))
    assert inside_viewport(desk, desk.locator("#send"))
    ARTIFACTS.mkdir(exist_ok=True)
    desk.screenshot(path=str(ARTIFACTS / "chat-1400x900.png"))


def test_on_a_phone_the_panes_stack_and_the_prompt_is_within_reach(phone):
    send(phone, "What is the capital of Spain?")
    top = {side: phone.locator(f"#chat-{side}").bounding_box()["y"] for side in SIDES}
    assert top["onnx"] > top["transformers"] + 100  # stacked, one above the other
    prompt = phone.locator("#prompt textarea").bounding_box()
    assert prompt["y"] + phone.evaluate("window.scrollY") < 1.3 * PHONE["height"]  # not three screens down
    phone.screenshot(path=str(ARTIFACTS / "chat-390x844.png"))
    phone.screenshot(path=str(ARTIFACTS / "chat-390x844-full.png"), full_page=True)


def test_panes_are_named_by_side_and_have_no_clear_of_their_own(desk):
    send(desk, "What is 7 plus 5?")
    for side in SIDES:
        pane = desk.locator(f"#chat-{side}")
        for button in pane.locator("button[aria-label='Clear']").all():
            expect(button).to_be_hidden()
        title = desk.locator(".pane-title").filter(has_text=re.compile(rf"^\s*{side} ·"))
        expect(title.first).to_be_visible()
        expect(desk.locator(f"#vote-{side}")).to_contain_text(f"{side} is better")


def test_the_metrics_table_shows_the_current_turn(desk):
    # That the figures stream is checked at the API (test_app's partial results): the retrained tiny
    # model's answers end within a frame or two of the page, too quickly to watch the table change.
    send(desk, "Hello! Who are you?")
    first_prompt = int(metric(desk, "Prompt tokens")[0])
    send(desk, "What is the capital of Spain?")
    assert int(metric(desk, "Prompt tokens")[0]) > first_prompt  # this turn's, with the history before it
    for row in ("Time to first token", "Decode speed", "Total time", "Prompt tokens", "Completion tokens"):
        assert len(metric(desk, row)) == 2, row
    header = desk.locator("#metrics th").all_inner_texts()
    assert [h.strip() for h in header[1:]] == list(SIDES)


def test_stop_mid_stream_says_stopped_and_leaves_the_page_usable(desk):
    """Bug: Stop left the verdict at "comparing…", painted Error badges, and kept the partial
    turn on one side only, so the next turn sent different prompts."""
    settings(desk, temperature=2.0, max_tokens=512)
    for _ in range(3):  # a sampled answer may end before Stop arrives; then the next one is stopped
        desk.locator("#clear").click()
        expect(desk.locator("#verdict")).to_have_text("")
        desk.locator("#prompt textarea").fill("Hello! Who are you?")
        desk.locator("#send").click()
        expect(last_answer(desk, "onnx")).not_to_have_text("", timeout=30_000)
        desk.locator("#stop").click()
        expect(desk.locator("#verdict")).to_contain_text(DONE, timeout=30_000)
        if "Stopped" in desk.locator("#verdict").inner_text():
            break
    expect(desk.locator("#verdict")).to_contain_text("Stopped")
    expect(error_badges(desk)).to_have_count(0)
    for side in SIDES:
        expect(desk.locator(f"#chat-{side} [data-testid='user']")).to_have_count(1)
        expect(last_answer(desk, side)).to_contain_text("Stopped")
    settings(desk, temperature=0.0, max_tokens=64)
    verdict = send(desk, "What is 7 plus 5?")
    assert "completions" in verdict.lower() and "Stopped" not in verdict
    transformers, onnx = metric(desk, "Prompt tokens")
    assert transformers == onnx, "both models were sent the same conversation"
    for side in SIDES:
        expect(desk.locator(f"#chat-{side}")).to_contain_text("12")


def test_clear_forgets_the_comparison_and_a_changed_vote_says_so(desk):
    send(desk, "What is 7 plus 5?")
    desk.locator("#vote-onnx").click()
    expect(desk.locator(".toast-body").filter(has_text="Vote stored")).to_have_count(1, timeout=30_000)
    desk.locator("#vote-tie").click()
    expect(desk.locator(".toast-body").filter(has_text="Vote changed from")).to_have_count(1, timeout=30_000)
    desk.locator("#clear").click()
    for side in SIDES:
        expect(desk.locator(f"#chat-{side} [data-testid='bot']")).to_have_count(0)
    desk.locator("#vote-transformers").click()
    expect(desk.locator(".toast-body").filter(has_text="Nothing to vote on")).to_have_count(1, timeout=30_000)


def test_an_error_is_text_in_the_pane_not_a_collapsed_box(desk):
    send(desk, "capital " * 3000)
    for side in SIDES:
        expect(desk.locator(f"#chat-{side}").get_by_text(re.compile("the limit is 2048"))).to_be_visible()


@pytest.mark.parametrize(
    ("prompt", "stop", "message"),
    [("", "", "Type a prompt first"), ("Hi", "\n".join(f"s{i}" for i in range(17)), "stop")],
)
def test_a_validation_error_is_one_toast_and_no_error_badges(desk, prompt, stop, message):
    settings(desk, stop=stop)
    desk.locator("#prompt textarea").fill(prompt)
    desk.locator("#send").click()
    expect(desk.locator(".toast-body").filter(has_text=message)).to_have_count(1, timeout=10_000)
    assert error_badges(desk).count() == 0  # the check failed before any output was touched
    expect(desk.locator("#verdict")).not_to_contain_text("comparing")


def test_the_difference_view_highlights_the_first_divergent_token(desk):
    """Two settings that differ: greedy on both, then the onnx side regenerated with a stop sequence."""
    send(desk, "What is the capital of Spain?")
    expect(desk.locator("#diff")).to_contain_text("identical")
    settings(desk, stop="Madrid")
    verdict = send(desk, None, "#regenerate-onnx")
    assert "diverge at token 6" in verdict and "onnx regenerated" in verdict
    marks = desk.locator("#diff mark.diff-first")
    expect(marks).to_have_count(2)
    assert "Madrid" in marks.nth(0).inner_text() and "Madrid" not in marks.nth(1).inner_text()
    expect(desk.locator("#diff .diff-words del")).to_contain_text("Madrid")
    expect(desk.locator("#diff .diff-token").first).to_be_visible()  # the tokens around it
    expect(last_answer(desk, "transformers")).to_contain_text("Madrid")  # the other side is kept
    settings(desk, stop="")
    follow_up = send(desk, "What is 7 plus 5?")
    assert "sent different conversations" in follow_up
    desk.screenshot(path=str(ARTIFACTS / "chat-difference.png"), full_page=True)


def test_edit_last_prompt_takes_it_back_for_editing_and_resending(desk):
    send(desk, "What is 7 plus 5?")
    desk.locator("#edit").click()
    expect(desk.locator("#prompt textarea")).to_have_value("What is 7 plus 5?")
    for side in SIDES:
        expect(desk.locator(f"#chat-{side} [data-testid='user']")).to_have_count(0)
    send(desk, "What is the capital of Japan?")
    for side in SIDES:
        expect(desk.locator(f"#chat-{side} [data-testid='user']")).to_have_count(1)
        expect(desk.locator(f"#chat-{side}")).not_to_contain_text("7 plus 5")


@pytest.fixture
def starting_app(backends):
    """The app while its models are still loading: a Startup that has not finished."""
    from app import build_app
    from ui.chat import CSS
    from wrappers.startup import Startup

    startup = Startup(list(SIDES), echo=False)
    demo = build_app(backends, startup)
    port = free_port()
    demo.queue().launch(server_port=port, prevent_thread_lock=True, quiet=True, css=CSS)
    yield f"http://127.0.0.1:{port}/", startup
    demo.close()


def test_sending_during_start_up_says_the_models_are_still_loading(browser, starting_app):
    url, startup = starting_app
    startup.set_state("onnx", "ready: models:/tiny-phi3-onnx-int4/1")
    page = browser.new_page(viewport=DESK)
    page.goto(url)
    expect(page.locator("#send")).to_be_disabled(timeout=30_000)
    page.locator("#prompt textarea").fill("What is the capital of Spain?")
    page.locator("#prompt textarea").press("Enter")
    toast = page.locator(".toast-body").filter(has_text="still loading (1 of 2 ready)")
    expect(toast).to_have_count(1, timeout=10_000)
    expect(page.locator("#verdict")).not_to_contain_text("comparing")
    startup.set_state("transformers", "ready: models:/tiny-phi3-transformers/1")
    expect(page.locator("#send")).to_be_enabled(timeout=10_000)
    expect(page.locator("#send")).to_have_text("Send")
    page.close()
