"""Blind mode and conversation files in a real browser: names hidden until the vote; export, import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import ARTIFACTS
from tests.test_browser import browser_page

NAMES = ("transformers", "onnx", "tiny-phi3")


@pytest.fixture(scope="module")
def page(server):
    with browser_page(server, 900) as page:
        expect(page.locator("#startup-status")).to_contain_text("ready", timeout=60_000)
        yield page


def test_blind_mode_hides_the_names_until_the_vote_then_reveals_them(page):
    page.locator("#blind-mode input").check()
    arena = page.locator("#arena")
    expect(arena).to_be_visible()
    expect(page.locator("#chat-transformers")).to_be_hidden()
    page.locator("#arena-prompt textarea").fill("What is the capital of Spain?")
    page.locator("#arena-send").click()
    expect(page.locator("#arena-status")).to_contain_text("Vote to reveal", timeout=60_000)
    for label in ("model_a", "model_b"):
        expect(page.locator(f"#chat-{label}")).to_contain_text("Madrid")
    shown = arena.inner_text().lower() + arena.inner_html().lower()
    assert not [name for name in NAMES if name in shown], "a name shows before the vote"
    expect(arena).to_contain_text("Model A")

    page.locator("#arena-vote-a").click()
    reveal = page.locator("#arena-reveal")
    expect(reveal).to_contain_text("Model A was", timeout=30_000)
    for ref in ("tiny-phi3-transformers/1", "tiny-phi3-onnx-int4/1"):
        expect(reveal).to_contain_text(ref)
    expect(reveal).to_contain_text("tokens/s")
    expect(page.locator("#chat-model_a")).to_contain_text("Model A: ")
    page.get_by_text("Leaderboard: Bradley–Terry").click()  # the vote is on the board at once
    expect(page.locator("#leaderboard-blind")).to_contain_text("tiny-phi3-onnx-int4/1", timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app-blind.png"), full_page=True)


def test_a_new_prompt_after_the_vote_starts_a_new_hidden_battle(page):
    page.locator("#arena-prompt textarea").fill("What is 7 plus 5?")
    page.locator("#arena-send").click()
    expect(page.locator("#arena-status")).to_contain_text("Vote to reveal", timeout=60_000)
    expect(page.locator("#arena-reveal")).to_have_text("")
    expect(page.locator("#chat-model_a")).not_to_contain_text("Madrid")
    shown = page.locator("#arena").inner_text().lower()
    assert not [name for name in NAMES if name in shown]


def test_switching_blind_mode_off_brings_back_the_named_panes(page):
    page.locator("#blind-mode input").uncheck()
    expect(page.locator("#chat-transformers")).to_be_visible()
    expect(page.locator("#arena")).to_be_hidden()


def test_a_conversation_is_exported_imported_into_both_panes_and_replayed(page, tmp_path):
    page.locator("#prompt textarea").fill("What is the capital of Spain?")
    page.locator("#send").click()
    expect(page.locator("#chat-onnx")).to_contain_text("Madrid", timeout=60_000)
    expect(page.locator("#verdict")).to_contain_text("ompletions", timeout=60_000)
    page.get_by_text("Export, import and replay a conversation").click()
    page.locator("#export").click()
    link = page.locator("#export-file a").first
    expect(link).to_be_visible(timeout=30_000)
    with page.expect_download() as download:
        link.click()
    exported = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert exported["turns"][-1]["prompt"] == "What is the capital of Spain?"
    assert exported["turns"][-1]["answers"]["onnx"]["latency"]["total_s"] > 0

    exported["turns"][-1]["answers"]["onnx"]["text"] = "Paris, as imported."  # to see the file arrive
    upload = tmp_path / "conversation.json"
    upload.write_text(json.dumps(exported), encoding="utf-8")
    page.locator("#import-file input[type=file]").set_input_files(str(upload))
    turns = len(exported["turns"])
    expect(page.locator("#import-summary")).to_contain_text(f"Imported {turns} turns", timeout=30_000)
    expect(page.locator("#chat-onnx")).to_contain_text("Paris, as imported.")
    expect(page.locator("#chat-transformers")).to_contain_text("Madrid")
    page.locator("#replay").click()
    expect(page.locator("#import-summary")).to_contain_text(
        "1 of 2 answers are the ones recorded", timeout=60_000
    )
    expect(page.locator("#replay-table")).to_contain_text("no: from word 1")


def test_a_bad_conversation_file_is_refused_with_the_reason(page, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something else"}', encoding="utf-8")
    page.locator("#import-file input[type=file]").set_input_files(str(bad))
    expect(page.get_by_text("not a conversation exported by this app").first).to_be_visible(timeout=30_000)
