"""Fidelity in the running app: `verdict.fidelity` through the API, the line and the strip in a browser."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import ARTIFACTS
from tests.test_browser import browser_page, send
from ui.fidelity_view import fidelity_markdown, fidelity_strip_html
from wrappers import load_config

FIDELITY_KEYS = {"reference", "tokens", "mean_kl", "max_kl", "top1_agreement", "per_token", "scoring_s"}


def test_compare_returns_the_fidelity_after_the_final_panes(client):
    job = client.submit(prompt="Hello! Who are you?", max_tokens=48, api_name="/compare")
    updates = list(job)
    final, before = updates[-1], updates[-2]
    assert before["verdict"]["fidelity"] is None and before["verdict"]["fidelity_reason"] == "Scoring…"
    assert before["transformers"] == final["transformers"] and before["onnx"] == final["onnx"]
    fidelity = final["verdict"]["fidelity"]
    assert set(fidelity) >= FIDELITY_KEYS and final["verdict"]["fidelity_reason"] is None
    assert fidelity["reference"] == "transformers" and fidelity["tokens"] == len(fidelity["per_token"]) > 1
    assert {"token", "kl", "p_reference", "p_other"} <= set(fidelity["per_token"][0])
    assert 0 <= fidelity["mean_kl"] <= fidelity["max_kl"] < 1 and 0.5 < fidelity["top1_agreement"] <= 1
    assert "".join(t["token"] for t in fidelity["per_token"]).startswith("I am a tiny Phi-3")
    # charged to neither side: the panes' latencies were final before scoring began
    assert fidelity["scoring_s"] > 0


def test_the_switch_turns_scoring_off_per_request(client):
    out = client.predict(prompt="What is 7 plus 5?", max_tokens=16, fidelity=False, api_name="/compare")
    assert out["verdict"]["fidelity"] is None
    assert out["verdict"]["fidelity_reason"] == "Fidelity scoring is switched off."
    messages = [{"role": "user", "content": "What is 7 plus 5?"}]
    out = client.predict(messages=messages, max_tokens=16, api_name="/compare_messages")
    assert out["verdict"]["fidelity"]["tokens"] > 0


def test_a_non_boolean_switch_is_refused(client):
    with pytest.raises(Exception, match="fidelity must be true or false"):
        client.predict(prompt="Hi", max_tokens=4, fidelity="maybe", api_name="/compare")


def test_the_switch_in_the_configuration():
    assert load_config([], {}).fidelity is True
    assert load_config(["--no-fidelity"], {}).fidelity is False
    assert load_config([], {"PHI3_FIDELITY": "0"}).fidelity is False
    assert load_config([], {"PHI3_FIDELITY": "on"}).fidelity is True


def test_the_line_and_the_strip_format_a_fidelity():
    fidelity = {
        "reference": "transformers",
        "other": "onnx",
        "tokens": 2,
        "mean_kl": 0.25,
        "max_kl": 0.5,
        "top1_agreement": 0.5,
        "scoring_s": 0.012,
        "note": None,
        "per_token": [
            {"token": "<b>", "kl": 0.0, "p_reference": 1.0, "p_other": 1.0, "agree": True},
            {"token": " x", "kl": 0.5, "p_reference": 0.6, "p_other": 0.2, "agree": False},
        ],
    }
    line = fidelity_markdown(fidelity, None)
    assert "mean KL 0.25 nats/token" in line and "top-1 agreement 50%" in line
    assert "worst token ' x' (KL 0.5)" in line and "0.012 s, charged to neither side" in line
    strip = fidelity_strip_html(fidelity)
    assert "&lt;b&gt;" in strip and "<b>" not in strip.split("</div>")[0]  # token text is escaped
    assert strip.count('class="fidelity-token"') == 2 and "underline wavy" in strip


@pytest.fixture(scope="module")
def page(server):
    with browser_page(server, 1100) as page:
        yield page


def test_the_chat_shows_the_fidelity_line_and_a_token_strip(page):
    expect(page.locator("#startup-status")).to_contain_text("ready", timeout=60_000)
    send(page, "Hello! Who are you?")
    expect(page.locator("#fidelity")).to_contain_text("nats/token", timeout=60_000)
    expect(page.locator("#fidelity")).to_contain_text("top-1 agreement")
    tokens = page.locator("#fidelity-strip .fidelity-token")
    expect(tokens.first).to_be_visible()
    assert tokens.count() > 5
    assert "KL" in tokens.first.get_attribute("title")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app-fidelity.png"), full_page=True)


def test_unticking_the_switch_skips_scoring(page):
    page.get_by_text("Settings for both models").click()
    page.locator("#fidelity-switch input").uncheck()
    send(page, "What is 7 plus 5?")
    expect(page.locator("#fidelity")).to_contain_text("switched off", timeout=30_000)
    expect(page.locator("#fidelity-strip .fidelity-token")).to_have_count(0)


def test_the_batch_tab_ends_with_the_verdict_against_its_thresholds(page, tmp_path):
    prompts = tmp_path / "prompts.csv"
    prompts.write_text("prompt,expected\nWhat is the capital of Spain?,Madrid\nWhat is 7 plus 5?,12\n")
    page.get_by_role("tab", name="Batch comparison").click()
    page.locator("#batch-file input[type=file]").set_input_files(str(prompts))
    page.locator("#accept-kl input").fill("1e-12")
    page.locator("#batch-run").click()
    summary = page.locator("#batch-summary")
    expect(summary).to_contain_text("REJECT the ONNX packaging", timeout=180_000)
    expect(summary).to_contain_text("mean KL")
    expect(page.locator("#batch-table")).to_contain_text("Top-1 agreement (%)")
    page.screenshot(path=str(ARTIFACTS / "app-batch-verdict.png"), full_page=True)
