"""Actions clicked while the Chat tab scores fidelity, in a real browser (see `ui/chat_scoring.py`).

The tiny model scores in about 0.1 s, too short for a click from Python: each action is clicked
from the page itself, in the very frame the comparison's verdict appears with its fidelity not
yet scored. A page-side log of every fidelity strip shown checks that no scoring ever lands on a
newer turn than its own. Shares test_chat_ui's helpers; its own Chromium for the module.
"""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests import test_chat_ui as chat_ui
from tests.test_chat_ui import DONE, SIDES, last_answer, send, settings

desk = chat_ui.desk  # the Chat tests' fixture

# Acts on `selector` (or presses Enter in the prompt) in the very frame the comparison after
# `before` shows its verdict, its fidelity not yet scored; returns the fidelity line at that moment.
CLICK_WHILE_SCORING = """([selector, before]) => {
    const text = (id) => document.querySelector(id)?.innerText || '';
    const verdict = text('#verdict'), fidelity = text('#fidelity');
    if (!/Comparison \\w{8}.*(ompletions|Not compared|Stopped)/s.test(verdict)) return false;
    if (before && verdict.includes(before)) return false;  // a scored line: the window was missed
    if (selector === 'enter') {
        const box = document.querySelector('#prompt textarea');
        box.dispatchEvent(new KeyboardEvent('keypress', {key: 'Enter', code: 'Enter', bubbles: true}));
    } else {
        document.querySelector(selector).click();
    }
    return fidelity || '(empty)';
}"""
# Logs, each time the fidelity strip changes, the comparison shown and whether the strip's tokens
# are its transformers answer (the reference side's, which the strip colours).
LOG_STRIPS = """() => {
    const squeeze = (s) => s.replace(/[\\s\\u00a0↵]/g, '');
    window.stripLog = [];
    new MutationObserver(() => {
        const tokens = [...document.querySelectorAll(
            '#fidelity-strip .fidelity-token:not(.fidelity-hidden)')].map((t) => t.innerText).join('');
        if (!tokens) return;
        const answers = document.querySelectorAll('#chat-transformers [data-testid="bot"]');
        const answer = answers.length ? answers[answers.length - 1].innerText : '';
        const shown = (document.querySelector('#verdict')?.innerText.match(/Comparison (\\w{8})/) || [])[1];
        window.stripLog.push({shown, own: squeeze(tokens) === squeeze(answer)});
    }).observe(document.querySelector('#fidelity-strip'),
               {childList: true, subtree: true, characterData: true});
}"""


def _shown_id(page) -> str:
    return re.search(r"Comparison (\w{8})", page.locator("#verdict").inner_text()).group(1)


def _act_while_scoring(page, selector: str, before: str = "") -> tuple[str, bool]:
    """Act on `selector` as the comparison after `before` shows its verdict; returns its id, and
    whether it was still scoring then (on a busy machine the tiny model's window can be missed)."""
    args = [selector, before]
    line = page.wait_for_function(CLICK_WHILE_SCORING, arg=args, polling="raf", timeout=60_000).json_value()
    scoring = _shown_id(page)
    verdict = page.locator("#verdict")
    expect(verdict).not_to_contain_text(scoring, timeout=30_000)  # dropped, it stays: the bug
    return scoring, "nats/token" not in line  # "scoring…" (or, before the fix, not yet)


def _strip_text(page) -> str:
    tokens = page.locator("#fidelity-strip .fidelity-token:not(.fidelity-hidden)").all_inner_texts()
    return re.sub(r"\s", "", "".join(tokens).replace("↵", "").replace("\xa0", ""))


def test_every_action_that_generates_starts_while_the_last_comparison_is_scored(desk):
    """Bug: fidelity was scored at the end of the generating event, which stayed pending, and
    Gradio ignores a pending event's triggers: Send clicked between the verdict and the fidelity
    line did nothing. Each action is taken twice, the second while the first is scored (its own
    event then pending, the case that was dropped). Every scoring lands on its own comparison
    (the one after it waits in the models' queue), never on the newer one; the last gets its own."""
    settings(desk, temperature=0.0, max_tokens=16)
    desk.evaluate(LOG_STRIPS)
    desk.locator("#prompt textarea").fill("What is 7 plus 5?")
    desk.locator("#send").click()
    before, during = "", []
    for selector, prompt in [
        ("#send", "Hello! Who are you?"),
        ("enter", "What is 2 plus 2?"),
        ("enter", "Hi"),
        ("#retry", None),
        ("#retry", None),
        ("#regenerate-transformers", None),
        ("#regenerate-transformers", None),
        ("#regenerate-onnx", None),
        ("#regenerate-onnx", None),
        ("#send", "What is the capital of Spain?"),
    ]:
        if prompt is not None:  # typed while the comparison before runs: only its start clears the box
            expect(desk.locator("#prompt textarea")).to_have_value("", timeout=30_000)
            desk.locator("#prompt textarea").fill(prompt)
        before, scoring = _act_while_scoring(desk, selector, before)
        during.append((before, scoring))
    assert sum(s for _, s in during) >= 5, f"too few actions landed while scoring to test anything: {during}"
    verdict = desk.locator("#verdict")
    expect(verdict).to_contain_text(DONE, timeout=60_000)
    assert "regenerated" not in verdict.inner_text()
    expect(desk.locator("#fidelity")).to_contain_text("nats/token", timeout=60_000)
    answer = re.sub(r"\s", "", last_answer(desk, "transformers").inner_text())
    assert _strip_text(desk) == answer, "the fidelity strip is the last comparison's answer"
    expect(desk.locator(f"#chat-{SIDES[0]} [data-testid='user']")).to_have_count(5)
    expect(desk.locator(f"#chat-{SIDES[0]}")).to_contain_text("What is the capital of Spain?")
    log = desk.evaluate("window.stripLog")
    assert log and all(entry["own"] for entry in log), log  # never a strip on a newer turn's answer
    landed = {entry["shown"] for entry in log}
    interrupted = [shown for shown, scoring in during if scoring]
    assert len(landed.intersection(interrupted)) >= len(interrupted) // 2, (landed, interrupted)


def test_clear_edit_and_stop_while_scoring_leave_no_stale_fidelity(desk):
    """Clear and Edit during the scoring drop its result; Stop abandons it and says so. Whatever
    the scoring returns later is not written over the page."""
    send(desk, "What is 7 plus 5?")
    for button in ("#clear", "#edit"):
        shown = _shown_id(desk)  # the click comes while Retry's comparison scores
        desk.locator("#retry").click()
        desk.wait_for_function(CLICK_WHILE_SCORING, arg=[button, shown], polling="raf", timeout=60_000)
        expect(desk.locator("#verdict")).to_have_text("")
        desk.wait_for_timeout(1_500)  # the tiny model scores in ~0.1 s: a stale line would be here by now
        expect(desk.locator("#fidelity")).to_have_text("")
        expect(desk.locator("#fidelity-strip .fidelity-token")).to_have_count(0)
        send(desk, "What is 7 plus 5?")  # after Edit, the prompt is in the box: sent again
    fidelity = desk.locator("#fidelity")
    for _ in range(3):  # on a busy machine the scoring may end before Stop reaches the server
        shown = _shown_id(desk)
        desk.locator("#retry").click()
        desk.wait_for_function(CLICK_WHILE_SCORING, arg=["#stop", shown], polling="raf", timeout=60_000)
        expect(fidelity).to_contain_text(re.compile("Stop was clicked|nats/token"), timeout=30_000)
        if "Stop was clicked" in fidelity.inner_text():
            break
    expect(fidelity).to_contain_text("not scored: Stop was clicked")
    desk.wait_for_timeout(1_500)
    expect(fidelity).to_contain_text("not scored: Stop was clicked")
    expect(desk.locator("#fidelity-strip .fidelity-token")).to_have_count(0)
    send(desk, "What is the capital of Spain?")  # the page goes on as usual
    expect(fidelity).to_contain_text("nats/token", timeout=60_000)
