"""A real browser (Debian's Chromium, driven by Playwright) uses the app like a person."""

from __future__ import annotations

import contextlib
import re
import shutil

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import ARTIFACTS

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@contextlib.contextmanager
def browser_page(url: str, height: int):
    """Debian's Chromium on `url`, 1400 wide: Playwright's own browser download cannot work offline."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": height})
        page.goto(url)
        yield page
        browser.close()


@pytest.fixture(scope="module")
def page(server):
    with browser_page(server, 1100) as page:
        expect(page.locator("#send")).to_have_text("Send", timeout=60_000)
        yield page


FINISHED = re.compile(r"[Cc]ompletions|error|Stopped")


def send(page, prompt: str) -> None:
    page.locator("#prompt textarea").fill(prompt)
    click_and_wait(page, "#send")


def click_and_wait(page, button: str) -> None:
    """Click, then wait for this comparison's verdict (each one has a new id)."""
    verdict = page.locator("#verdict")
    before = re.search(r"Comparison (\w{8})", verdict.inner_text())
    page.locator(button).click()
    if before:
        expect(verdict).not_to_contain_text(before.group(1), timeout=30_000)
    expect(verdict).to_contain_text(FINISHED, timeout=60_000)


def test_both_panes_answer_the_seed_question(page):
    expect(page.locator("#startup-status")).to_contain_text("ready", timeout=60_000)
    send(page, "What is the capital of Spain?")
    for side in ("transformers", "onnx"):
        expect(page.locator(f"#chat-{side}")).to_contain_text("Madrid", timeout=60_000)
    for row in ("Time to first token", "Decode speed", "Total time", "Prompt tokens", "Completion tokens"):
        expect(page.locator("#metrics")).to_contain_text(row)
    expect(page.locator("#verdict")).to_contain_text("token", timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app-spain.png"), full_page=True)


def test_each_pane_keeps_its_history_across_turns(page):
    send(page, "What is 7 plus 5?")
    for side in ("transformers", "onnx"):
        chat = page.locator(f"#chat-{side}")
        expect(chat).to_contain_text("12", timeout=60_000)
        expect(chat).to_contain_text("Madrid")


def test_model_cards_show_uri_version_signature_and_weights(page):
    for accordion in page.get_by_text("response, raw output, model card").all():
        accordion.click()
    for side, weights in (("transformers", "float32"), ("onnx", "int4")):  # the tiny checkpoint is float32
        card = page.locator(f"#card-{side}")
        expect(card).to_contain_text("models:/tiny-phi3", timeout=30_000, use_inner_text=False)
        expect(card).to_contain_text("inputs", use_inner_text=False)
        expect(card).to_contain_text(f"Weights: {weights}", use_inner_text=False)


def test_retry_replaces_the_last_answer_instead_of_adding_one(page):
    click_and_wait(page, "#retry")
    chat = page.locator("#chat-onnx")
    expect(chat).to_contain_text("12", timeout=60_000)
    expect(chat.get_by_text("What is 7 plus 5?")).to_have_count(1)


def test_an_error_shows_in_the_panes_and_keeps_the_conversation(page):
    send(page, "capital " * 3000)
    for side in ("transformers", "onnx"):
        chat = page.locator(f"#chat-{side}")
        expect(chat).to_contain_text("the limit is 2048")
        expect(chat).to_contain_text("Madrid")


def test_clear_empties_both_chats(page):
    page.locator("#clear").click()
    for side in ("transformers", "onnx"):
        expect(page.locator(f"#chat-{side}")).not_to_contain_text("Madrid", timeout=10_000)


def test_a_batch_upload_shows_the_table_and_the_latency_plot(page, tmp_path):
    prompts = tmp_path / "prompts.csv"
    prompts.write_text("prompt,expected\nWhat is the capital of Spain?,Madrid\nWhat is 7 plus 5?,12\n")
    page.get_by_role("tab", name="Batch comparison").click()
    page.locator("#batch-file input[type=file]").set_input_files(str(prompts))
    page.locator("#batch-run").click()
    expect(page.locator("#batch-summary")).to_contain_text("agreement", timeout=90_000)
    table = page.locator("#batch-table")
    expect(table).to_contain_text("Madrid")
    for header in ("transformers answer", "onnx total (ms)", "transformers decode (tok/s)", "Same answer"):
        expect(table).to_contain_text(header)
    expect(table).not_to_contain_text("_latency_s")
    expect(page.locator("#batch-plot img").first).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "app-batch.png"), full_page=True)


def test_history_loads_on_open_with_answers_short_ids_and_model_names(page):
    page.get_by_role("tab", name="History").click()  # no Refresh: opening the tab loads it
    comparisons = page.locator("#history-comparisons")
    expect(comparisons).to_contain_text("tiny-phi3-transformers/1", timeout=30_000)
    expect(comparisons).to_contain_text("onnx answer")
    expect(comparisons).to_contain_text("The capital of Spain is Madrid.")
    assert not re.search(r"\b[0-9a-f]{32}\b", comparisons.inner_text()), "ids are shown in 8 characters"
    expect(page.locator("#history-batches")).to_contain_text("prompts.csv")
    expect(page.locator("#history-batches")).to_contain_text("onnx median (ms)")
    page.screenshot(path=str(ARTIFACTS / "app-history.png"), full_page=True)


def test_a_history_row_reopens_in_the_chat_tab(page):
    page.locator("#history-comparisons").get_by_text("What is 7 plus 5?").first.click()
    expect(page.locator("#verdict")).to_contain_text("reopened from History", timeout=30_000)
    for side in ("transformers", "onnx"):
        chat = page.locator(f"#chat-{side}")
        expect(chat).to_contain_text("12")
        expect(chat).to_contain_text("What is the capital of Spain?")  # the turns before it, too
    page.locator("#vote-tie").click()  # it can be voted on
    expect(page.locator(".toast-body").filter(has_text="Vote stored")).to_have_count(1, timeout=30_000)
    send(page, "What is the capital of Spain?")  # and continued
    expect(page.locator("#chat-onnx [data-testid='user']")).to_have_count(3)
