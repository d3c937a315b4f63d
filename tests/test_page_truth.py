"""What the page says, where it says it (issue 24, points 2, 6, 7 and 8), at 1400×900 and 390×844.

Browser tests share test_chat_ui's Chromium and pages; the API test shares the session's client.
"""

from __future__ import annotations

import re
import unicodedata

import httpx
import pytest
from playwright.sync_api import expect

from tests import test_chat_ui as chat_ui
from tests.conftest import ARTIFACTS
from tests.test_chat_ui import (
    DESK,
    PHONE,
    SIDES,
    inside_viewport,
    last_answer,
    metric,
    open_page,
    send,
    settings,
)
from ui.difference import difference_html
from wrappers import Latency, Result, Usage

desk, phone = chat_ui.desk, chat_ui.phone  # the Chat tests' fixtures
PROMPTS = [
    "What is the capital of Spain?",
    "Hello! Who are you?",
    "What is seven times eight?",
    "Tell me a joke about atom",
    "tell me japan's capital city please",
]


def test_the_first_load_stays_at_the_top_and_focuses_the_prompt_on_a_wide_screen(phone, desk):
    """Bug: the prompt's autofocus scrolled a phone's first load 495 to 1,093 px down."""
    for page in (phone, desk):
        page.wait_for_timeout(500)  # after the load event's script
        assert page.evaluate("window.scrollY") == 0
        expect(page.locator("#header")).to_be_visible()
    assert desk.evaluate("document.activeElement === document.querySelector('#prompt textarea')")


def one_line(page, selector: str) -> list[int]:
    """How many lines each element's text is rendered on."""
    return page.locator(selector).evaluate_all(
        """els => els.map(e => {
             const r = document.createRange(); r.selectNodeContents(e);
             return new Set([...r.getClientRects()].map(q => Math.round(q.top))).size; })"""
    )


@pytest.mark.parametrize("viewport", [DESK, PHONE], ids=["1400x900", "390x844"])
def test_the_metrics_headers_are_whole_words_within_the_page(browser, server, viewport):
    """Bug: on a phone the header read "transforme" over "rs"."""
    page = open_page(browser, server, viewport)
    send(page, "What is the capital of Spain?")
    headers = page.locator("#metrics th")
    assert [h.strip() for h in headers.all_inner_texts()[1:]] == list(SIDES)
    assert one_line(page, "#metrics th")[1:] == [1, 1]  # the first header is empty
    assert all(words_on_one_line(page, "#metrics td"))
    table = page.locator("#metrics table").bounding_box()
    assert table["x"] + table["width"] <= viewport["width"]
    page.close()


def words_on_one_line(page, selector: str) -> list[bool]:
    """Whether each element's every word is rendered on one line (no "transforme" over "rs")."""
    return page.locator(selector).evaluate_all(
        """els => els.map(e => {
             const walker = document.createTreeWalker(e, NodeFilter.SHOW_TEXT);
             for (let node; (node = walker.nextNode()); )
               for (const m of node.textContent.matchAll(/\\S+/g)) {
                 const r = document.createRange();
                 r.setStart(node, m.index); r.setEnd(node, m.index + m[0].length);
                 if (new Set([...r.getClientRects()].map(q => Math.round(q.top))).size > 1) return false;
               }
             return true; })"""
    )


def open_history_row(page):
    """The History tab's first comparison row, once the recorder has written it."""
    page.get_by_role("tab", name="History").click()
    rows = page.locator("#history-comparisons [role=row]").filter(has_not=page.locator("[role=columnheader]"))
    for _ in range(20):  # traces are written a moment after the answer
        if rows.count():
            break
        page.wait_for_timeout(500)
        page.locator("#history-refresh").click()
    expect(rows.first).to_be_visible(timeout=10_000)
    return rows.first


def test_history_rows_fit_a_phone_with_both_answers(phone):
    """Bug: History's answers were off-screen to the right."""
    send(phone, "What is the capital of Spain?")
    row = open_history_row(phone)
    cells = [c for c in row.locator("[role=gridcell]").all() if c.is_visible()]
    assert [c.inner_text() for c in cells[1:3]] == ["The capital of Spain is Madrid."] * 2
    for cell in cells:
        box = cell.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], cell.inner_text()
    headers = phone.locator("#history-comparisons th:visible")
    assert headers.all_inner_texts()[1].split() == ["transformers", "answer"]
    assert words_on_one_line(phone, "#history-comparisons th:visible") == [True] * 3
    phone.screenshot(path=str(ARTIFACTS / "history-390x844.png"))


def test_opening_the_settings_leaves_the_answers_on_screen(desk):
    """Bug: the number boxes stacked six high in a narrow column, below a 1400×900 screen, and
    Tab from the box typed in (as `settings` presses) scrolled the answers off it to reach top_p."""
    for prompt in PROMPTS:
        send(desk, prompt)
    settings(desk, temperature=0.0)
    for side in SIDES:
        assert inside_viewport(desk, last_answer(desk, side)), side
    for box in ("#prompt textarea", "#setting-max-tokens", "#setting-temperature", "#setting-top-p"):
        assert inside_viewport(desk, desk.locator(box)), box


def test_settings_and_examples_sit_under_the_prompt_and_a_reopened_comparison_shows_its_figures(desk):
    """After five turns the answers, the prompt, the examples and the settings are on one screen at
    1400×900; reopened from History, the last comparison shows its metrics and verdict again."""
    for prompt in PROMPTS:
        verdict = send(desk, prompt)
    for side in SIDES:
        assert inside_viewport(desk, last_answer(desk, side)), side
    prompt_box = desk.locator("#prompt textarea").bounding_box()
    for below in ("#examples", "#settings"):
        box = desk.locator(below).bounding_box()
        assert prompt_box["y"] < box["y"] < DESK["height"] - 30, below  # under the prompt, on screen
    desk.locator("#examples").get_by_text("Hello! Who are you?").click()
    expect(desk.locator("#prompt textarea")).to_have_value("Hello! Who are you?")
    desk.screenshot(path=str(ARTIFACTS / "chat-under-prompt-1400x900.png"))
    figures = {row: metric(desk, row) for row in ("Prompt tokens", "Completion tokens")}
    summary = verdict.split(":", 1)[1].strip()
    desk.locator("#clear").click()
    expect(desk.locator("#metrics")).not_to_contain_text(figures["Prompt tokens"][0])
    open_history_row(desk).locator("[role=gridcell]").first.click()
    expect(desk.locator("#verdict")).to_contain_text("reopened from History", timeout=30_000)
    expect(desk.locator("#verdict")).to_contain_text(
        summary.split(".")[0]
    )  # e.g. "Identical completions (9 tokens)"
    assert {row: metric(desk, row) for row in figures} == figures
    expect(desk.locator("#fidelity")).to_contain_text("not recorded")


def test_the_page_says_what_each_side_used_and_why(desk):
    """Issue 24, point 2, as a user reads it: too short to time, other settings, other histories."""
    settings(desk, max_tokens=4)
    verdict = send(desk, "What is the capital of Spain?")
    assert "Too short to compare decoding speeds" in verdict and "faster" not in verdict
    assert metric(desk, "Decode speed") == ["too short", "too short"]  # no figure beside the sentence

    settings(desk, max_tokens=64, temperature=1.5)
    send(desk, None, "#regenerate-onnx")
    expect(desk.locator("#fidelity")).to_contain_text("nats/token", timeout=60_000)
    note = desk.locator("#fidelity").inner_text()
    assert "transformers greedy" in note and "onnx sampled at temperature 1.5" in note
    assert "different settings" in desk.locator("#verdict").inner_text()

    settings(desk, temperature=0.0, stop="Madrid")  # the onnx answer now stops short of the other
    send(desk, None, "#regenerate-onnx")
    expect(last_answer(desk, "onnx")).not_to_contain_text("Madrid")
    settings(desk, stop="")
    verdict = send(desk, "What is 7 plus 5?")
    assert "sent different conversations" in verdict
    expect(desk.locator("#fidelity")).to_contain_text("nats/token", timeout=60_000)
    line = desk.locator("#fidelity").inner_text()
    assert "different histories" in line and "chat templates" not in line


def test_no_button_label_needs_an_emoji_font(server):
    """Every button of every tab (hidden ones too) is labelled in characters every font has."""
    config = httpx.get(f"{server}config", timeout=30).json()
    labels = [c["props"].get("value") for c in config["components"] if c.get("type") == "button"]
    assert len(labels) > 15
    for label in filter(None, labels):
        odd = [ch for ch in label if ord(ch) > 0x24F and not 0x2000 <= ord(ch) <= 0x206F]
        assert not odd, f"{label!r}: {[unicodedata.name(ch, hex(ord(ch))) for ch in odd]}"


def test_every_api_parameter_has_a_real_description(client):
    """Bug: the API page said 'The input value that is provided in the "1st" Api component.'"""
    api = client.view_api(return_format="dict", print_info=False)
    parameters = [(name, p) for name, info in api["named_endpoints"].items() for p in info["parameters"]]
    assert len(parameters) > 30
    for name, p in parameters:
        description = p["python_type"].get("description") or ""
        assert len(description) > 15 and "provided in" not in description, (name, p["parameter_name"])
        assert p["label"] == p["parameter_name"], (name, p["label"])  # not "1st", "2nd"


def test_the_word_diff_shows_only_when_it_helps():
    def answer(text: str) -> Result:
        pieces = tuple(re.findall(r"\s*\S+", text))
        return Result(text=text, pieces=pieces, usage=Usage(5, len(pieces), 5), latency=Latency(), done=True)

    close = difference_html(answer("The capital is Madrid."), answer("The capital is Paris."), SIDES)
    assert "diff-words" in close and "differ entirely" not in close
    apart = difference_html(answer("Madrid, of course."), answer("I am a tiny model."), SIDES)
    assert "differ entirely" in apart and "diff-words" not in apart
    assert "Madrid, of course." in apart and "I am a tiny model." in apart  # side by side


def test_a_batch_evaluation_draws_no_progress_bar():
    from mlflow.genai.evaluation import harness

    from wrappers.quiet import quiet_evaluation

    quiet_evaluation()
    assert harness.tqdm(total=3).disable
