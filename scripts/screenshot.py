"""The README's screenshot: the Chat tab at 1400×900 after one real comparison, from its tabs down.

Start the app first (`bash scripts/start.sh`), then:
    python scripts/screenshot.py [http://127.0.0.1:7860/] [docs/screenshot.png]
Debian's Chromium, driven by Playwright, as in the browser tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gradio_client import Client
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.test_browser import CHROMIUM, FLAGS  # noqa: E402

PROMPT = "What is the capital of Spain?"


def main(url: str = "http://127.0.0.1:7860/", out: str = str(ROOT / "docs" / "screenshot.png")) -> None:
    for _ in range(3):  # warm both models (another session, so the page shows one comparison)
        Client(url, verbose=False).predict(prompt=PROMPT, api_name="/compare")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url)
        expect(page.locator("#send")).to_be_enabled(timeout=180_000)
        page.locator("#prompt textarea").fill(PROMPT)
        page.locator("#send").click()
        expect(page.locator("#verdict")).to_contain_text("completions", timeout=120_000)
        expect(page.locator("#fidelity")).to_contain_text("nats/token", timeout=120_000)
        page.locator("#prompt textarea").blur()
        # From the tabs down: the panes, the prompt, the examples and settings under it, and the
        # verdict, fidelity and metrics under those, in one 1400×900 view (the title is above).
        page.locator(".tab-wrapper, [role=tablist]").first.evaluate(
            "e => window.scrollTo(0, e.getBoundingClientRect().top + window.scrollY - 8)"
        )
        page.screenshot(path=out)
        browser.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
