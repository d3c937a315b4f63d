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
        yield page


FINISHED = re.compile(r"[Cc]ompletions|error")


def send(page, prompt: str) -> None:
    page.locator("#prompt textarea").fill(prompt)
    click_and_wait(page, "#send")


def click_and_wait(page, button: str) -> None:
    """Click, then wait for this comparison's verdict (each one has a new id)."""
    verdict = page.locator("#verdict")
    before = verdict.inner_text()
    page.locator(button).click()
    expect(verdict).not_to_have_text(before, timeout=30_000)
    expect(verdict).to_contain_text(FINISHED, timeout=60_000)


def test_both_panes_answer_the_seed_question(page):
    expect(page.locator("#startup-status")).to_contain_text("ready", timeout=60_000)
    send(page, "What is the capital of Spain?")
    for side in ("transformers", "onnx"):
        expect(page.locator(f"#chat-{side}")).to_contain_text("Madrid", timeout=60_000)
        expect(page.locator(f"#usage-{side}")).to_contain_text("completion")
        expect(page.locator(f"#latency-{side}")).to_contain_text("tokens/s")
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
    for accordion in page.get_by_text("Model card").all():
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
    expect(page.locator("#batch-table")).to_contain_text("Madrid")
    expect(page.locator("#batch-plot img").first).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "app-batch.png"), full_page=True)


def test_history_lists_past_comparisons_and_batches(page):
    page.get_by_role("tab", name="History").click()
    page.locator("#history-refresh").click()
    expect(page.locator("#history-comparisons")).to_contain_text("tiny-phi3-transformers/1", timeout=30_000)
    expect(page.locator("#history-batches")).to_contain_text("prompts.csv")
