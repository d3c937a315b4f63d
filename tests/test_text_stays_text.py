"""Whatever a visitor or a file supplies is shown as text, in Chromium: no element, no request out.

A local listener stands for "an outside address": a prompt and an imported conversation
file carry an image, a link, a script and markdown image syntax pointing at it, and the
page must show each as the characters typed, create no element from them, and never
call the listener.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

from tests.conftest import free_port
from tests.test_chat_ui import DESK, open_page, send

SIDES = ("transformers", "onnx")
TAGS = "img, a, script, iframe, svg, video, audio, object, embed"


@pytest.fixture(scope="module")
def listener():
    """A local HTTP server that records every request it gets."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            seen.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    port = free_port()
    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}", seen
    httpd.shutdown()


def payloads(base: str) -> list[str]:
    return [
        f'<img src="{base}/img" alt="pic">',
        f'<a href="{base}/link">click</a>',
        f"<script>fetch('{base}/script')</script>",
        f"![x]({base}/beacon)",
        f"[y]({base}/mdlink)",
    ]


def no_elements(page, selector: str, tags: str = TAGS) -> None:
    found = page.locator(selector).locator(tags)
    assert found.count() == 0, [found.nth(i).evaluate("e => e.outerHTML") for i in range(found.count())]


def test_a_prompt_with_html_and_markdown_is_shown_as_typed(browser, server, listener):
    base, seen = listener
    page = open_page(browser, server, DESK)
    prompt = " ".join(payloads(base))
    send(page, prompt)
    for side in SIDES:
        bubble = page.locator(f"#chat-{side} [data-testid='user']").last
        expect(bubble).to_contain_text(prompt)
        no_elements(page, f"#chat-{side} [data-testid='user'], #chat-{side} [data-testid='bot']")
    page.get_by_role("tab", name="History").click()  # the prompt is in the comparisons table, as text
    expect(page.locator("#history-comparisons")).to_contain_text(payloads(base)[0], timeout=30_000)
    no_elements(page, "#history-comparisons tbody")
    page.wait_for_timeout(500)
    assert seen == [], f"the page called out: {seen}"
    page.close()


def test_a_message_quoting_a_file_shows_it_as_text(browser, server, listener, tmp_path):
    """A refused batch file's toast names its columns, which the file chose."""
    base, seen = listener
    img = payloads(base)[0]
    prompts = tmp_path / "columns.csv"
    prompts.write_text(f'"{img.replace(chr(34), chr(34) * 2)}"\nWhat is 7 plus 5?\n')
    page = open_page(browser, server, DESK)
    page.get_by_role("tab", name="Batch comparison").click()
    page.locator("#batch-file input[type=file]").set_input_files(str(prompts))
    page.locator("#batch-run").click()
    toast = page.locator(".toast-body").filter(has_text="needs a 'prompt' column")
    expect(toast.first).to_contain_text(img, timeout=15_000)
    no_elements(page, ".toast-body", "img, a, script, iframe")  # the toast's own icons are svg
    page.wait_for_timeout(500)
    assert seen == [], f"the page called out: {seen}"
    page.close()


def test_an_imported_file_with_html_everywhere_is_shown_as_typed(browser, server, listener, tmp_path):
    base, seen = listener
    img, link, script, beacon, mdlink = payloads(base)
    answer = {"text": f"{beacon} {img}", "usage": None, "latency": None, "model": None, "error": script}
    name = f"x` {img} {link} `y"  # broke out of its code span before
    content = {
        "format": "phi3-mlflow-compare/conversation",
        "version": 1,
        "settings": {"system_prompt": link, "max_tokens": 16, "temperature": 0.0, "top_p": 1.0, "stop": []},
        "models": {side: {"name": name, "version": mdlink, "uri": None} for side in SIDES},
        "turns": [
            {"prompt": f"{img} {link} {beacon}", "answers": {"transformers": answer, "onnx": dict(answer)}}
        ],
    }
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(content))
    page = open_page(browser, server, DESK)
    page.get_by_text("Export, import and replay a conversation").click()
    page.locator("#import-file input[type=file]").set_input_files(str(path))
    summary = page.locator("#import-summary")
    expect(summary).to_contain_text("Imported 1 turns", timeout=30_000)
    expect(summary).to_contain_text(f"{img} {link}")
    no_elements(page, "#import-summary")
    for side in SIDES:
        chat = page.locator(f"#chat-{side}")
        expect(chat.locator("[data-testid='user']")).to_contain_text(f"{img} {link} {beacon}")
        expect(chat.locator("[data-testid='bot']")).to_contain_text(f"{beacon} {img}")
        expect(chat.locator("[data-testid='bot']")).to_contain_text(script)
        no_elements(page, f"#chat-{side} [data-testid='user'], #chat-{side} [data-testid='bot']")
    page.wait_for_timeout(500)
    assert seen == [], f"the page called out: {seen}"
    page.close()


def test_a_blind_prompt_with_html_is_shown_as_typed(browser, server, listener):
    base, seen = listener
    page = open_page(browser, server, DESK)
    page.locator("#blind-mode input").check()
    prompt = " ".join(payloads(base))
    page.locator("#arena-prompt textarea").fill(prompt)
    page.locator("#arena-send").click()
    expect(page.locator("#arena-status")).to_contain_text("Vote to reveal", timeout=60_000)
    for label in ("model_a", "model_b"):
        expect(page.locator(f"#chat-{label} [data-testid='user']")).to_contain_text(prompt)
        no_elements(page, f"#chat-{label} [data-testid='user'], #chat-{label} [data-testid='bot']")
    page.wait_for_timeout(500)
    assert seen == [], f"the page called out: {seen}"
    page.close()
