"""Every mistake is one toast, and the outputs stay as they were: every action of every tab, in Chromium.

One page per size (1400×900 and 390×844) drives each action with bad input and checks
that a toast says what is wrong (in the schema's words where it is a value), that no
component shows Gradio's red Error badge, and that what the page showed is unchanged.
"""

from __future__ import annotations

import contextlib
import json
import re
import time

import pytest
from gradio_client import Client, handle_file
from gradio_client.utils import Status
from playwright.sync_api import expect

from benchmarks.public_space.users import batch_file
from tests.test_chat_ui import DESK, PHONE, error_badges, open_page, send, type_into
from tests.test_fair_queue import joined, visitor_client

SHOWN = [  # what the page shows; a refused action must leave every one as it was
    "#chat-transformers",
    "#chat-onnx",
    "#verdict",
    "#metrics",
    "#fidelity",
    "#diff",
    "#import-summary",
    "#chat-model_a",
    "#chat-model_b",
    "#arena-status",
    "#arena-reveal",
    "#batch-summary",
    "#vote-standing",
    "#export-file",
    "#replay-table",
    "#leaderboard-blind",
    "#leaderboard-named",
    "#history-comparisons",
    "#batch-table",
]


# Gradio's status line on an output whose event waits or runs ("queue: 1/1 | 0.5s"): its clock moves
STATUS = re.compile(r"^\s*(queue: \d+/\d+ \| |processing \| )?[\d.]+(/[\d.]+)?s\s*")


# A table's text is its data, copied with its own "Copy table data" button: what its virtual body draws
# depends on scrolling and drawing (a row can be drawn twice mid-draw, or not at all when out of view).
# The button is named "Copied to clipboard" for 2 s after a copy.
SNAPSHOT = """async (selectors) => {
    const COPY = 'button[aria-label="Copy table data"], button[aria-label="Copied to clipboard"]';
    const tableData = async (table) => {
        const headers = [...table.querySelectorAll("th")].map((th) => th.title).join("|");
        const rows = Number(table.querySelector("[role=grid]")?.getAttribute("aria-rowcount") ?? 1) - 1;
        if (rows <= 0) return headers;
        let copied = null;
        const writeText = navigator.clipboard.writeText;
        navigator.clipboard.writeText = async (text) => { copied = text; };
        try {
            table.querySelector(COPY).click();
            for (let wait = 0; wait < 100 && copied === null; wait++) {
                await new Promise((r) => setTimeout(r, 10));
            }
        } finally {
            navigator.clipboard.writeText = writeText;
        }
        return headers + "\\n" + copied;
    };
    const shown = {};
    for (const selector of selectors) {
        const element = document.querySelector(selector);
        const isTable = element?.querySelector(COPY);
        shown[selector] = !element ? "" : isTable ? await tableData(element) : element.innerText;
    }
    shown.prompt = document.querySelector("#prompt textarea")?.value ?? "";
    return shown;
}"""


def snapshot(page) -> dict[str, str]:
    """The text of each output (empty where it is not on the page yet, without Gradio's status line;
    a table's data) and the prompt box."""
    shown = page.evaluate(SNAPSHOT, SHOWN)
    # Compared without whitespace: a text drawn again can lay the same words out with other spacing.
    return {where: re.sub(r"\s+", "", STATUS.sub("", text)) for where, text in shown.items()}


def refused(page, action, message: str) -> None:
    """Do `action`; expect one toast with `message`, no Error badge, and the page as it was."""
    before = snapshot(page)
    action()
    expect(page.locator(".toast-body").filter(has_text=message).first).to_be_visible(timeout=15_000)
    page.wait_for_timeout(300)  # an output that was going to change would have by now
    toasts = page.locator(".toast-body")
    assert toasts.count() == 1, toasts.all_inner_texts()
    assert not re.search(r"^\(\d+\)$", toasts.inner_text(), re.M), toasts.inner_text()  # "(2)": two, grouped
    assert error_badges(page).count() == 0, f"Error badges after: {message}"
    assert snapshot(page) == before, f"the page changed after: {message}"
    close_toasts(page)


def close_toasts(page) -> None:
    page.evaluate("document.querySelectorAll('.toast-close').forEach((button) => button.click())")
    expect(page.locator(".toast-body")).to_have_count(0, timeout=10_000)


def click(page, selector: str):
    return lambda: page.locator(selector).click()


def setting(page, name: str, value: str) -> None:
    """Type `value` into a setting box (opening the accordion first) and leave the box."""
    if not page.locator("#setting-stop textarea").is_visible():
        page.get_by_text("Settings for both models").click()
    type_into(page, page.locator(f"#setting-{name} input"), value)


def chat_actions(page, tmp_path) -> None:
    """Chat tab: with nothing to act on, then with one comparison on the page."""
    for button in ("#retry", "#edit"):
        refused(page, click(page, button), "There is no prompt to take back yet")
    for side in ("transformers", "onnx"):
        refused(page, click(page, f"#regenerate-{side}"), "Regenerate needs a finished comparison")
    for choice in ("transformers", "onnx", "tie", "both_bad"):
        refused(page, click(page, f"#vote-{choice}"), "Nothing to vote on")
    page.get_by_text("Export, import and replay a conversation").click()
    expect(page.locator("#replay-table")).to_be_visible()  # rendered before the snapshot is taken
    refused(page, click(page, "#export"), "There is no conversation to export yet")
    refused(page, click(page, "#replay"), "Import a conversation first")
    send(page, "What is the capital of Spain?")
    expect(page.locator("#fidelity")).to_contain_text("Fidelity", timeout=30_000)
    expect(page.locator("#fidelity")).not_to_contain_text("scoring the answers", timeout=30_000)
    refused(page, click(page, "#send"), "Type a prompt first")
    page.locator("#prompt textarea").fill("x" * 40_000)
    refused(page, click(page, "#send"), "prompt must be text that is not blank, at most 32,768 characters")
    page.locator("#prompt textarea").fill("What is 7 plus 5?")
    for name, value, message in [
        ("max-tokens", "0", "max_tokens must be a whole number from 1 to 512, got 0."),
        ("max-tokens", "100000", "max_tokens must be a whole number from 1 to 512, got 100000."),
        ("temperature", "-1", "temperature must be a number from 0 to 2 (0: greedy), got -1"),
        ("top-p", "0", "top_p must be a number above 0 and at most 1, got 0"),
    ]:
        setting(page, name, value)
        refused(page, click(page, "#send"), message)
        setting(page, name, {"max-tokens": "64", "temperature": "0", "top-p": "1"}[name])
    bad = tmp_path / "bad.json"
    answer = {"text": "Madrid."}
    bad.write_text(
        json.dumps(
            {
                "format": "phi3-mlflow-compare/conversation",
                "version": 1,
                "settings": {"system_prompt": "", "max_tokens": 16, "temperature": 0, "top_p": 1, "stop": []},
                "models": [1, 2],  # the case
                "turns": [
                    {"prompt": "Capital of Spain?", "answers": {"transformers": answer, "onnx": answer}}
                ],
            }
        )
    )
    refused(
        page,
        lambda: page.locator("#import-file input[type=file]").set_input_files(str(bad)),
        "models must be an object",
    )
    expect(page.locator("#import-file")).not_to_contain_text("bad.json")  # the box is ready again


def blind_actions(page) -> None:
    page.locator("#blind-mode input").check()
    expect(page.locator("#chat-model_b")).to_contain_text("Model B", timeout=10_000)
    refused(page, click(page, "#arena-send"), "Type a prompt first")
    refused(page, click(page, "#arena-vote-a"), "Start a blind comparison first")
    page.locator("#arena-prompt textarea").fill("What is 7 plus 5?")
    page.locator("#arena-send").click()
    expect(page.locator("#arena-status")).to_contain_text("Vote to reveal", timeout=60_000)
    page.locator("#arena-vote-a").click()
    expect(page.locator("#arena-status")).to_contain_text("Revealed", timeout=30_000)
    close_toasts(page)
    refused(page, click(page, "#arena-vote-b"), "already been voted on")
    page.locator("#blind-mode input").uncheck()
    expect(page.locator("#arena")).to_be_hidden()  # before the next snapshot: the named panes are back
    expect(page.locator("#verdict")).to_be_visible()


def batch_actions(page, tmp_path) -> None:
    page.get_by_role("tab", name="Batch comparison").click()
    refused(page, click(page, "#batch-run"), "Upload a file of prompts or pick a built-in set")
    page.locator("#accept-accuracy input").fill("5")
    refused(
        page,
        click(page, "#batch-run"),
        "accept_accuracy must be a number from 0 to 1, or blank (not checked), got 5.",
    )
    page.locator("#accept-accuracy input").fill("0")
    no_prompts = tmp_path / "questions.csv"
    no_prompts.write_text("question\nWhat is 7 plus 5?\n")
    page.locator("#batch-file input[type=file]").set_input_files(str(no_prompts))
    refused(page, click(page, "#batch-run"), "needs a 'prompt' column")


def other_tabs(page) -> None:
    """History and the leaderboard take no input: refreshing them shows no error at all."""
    page.get_by_role("tab", name="History").click()
    page.locator("#history-refresh").click()
    expect(page.locator("#history-comparisons")).to_contain_text(
        "What is the capital of Spain?", timeout=30_000
    )
    page.get_by_role("tab", name="Chat").click()
    page.get_by_text("Leaderboard: Bradley").click()
    page.locator("#leaderboard-refresh").click()
    page.wait_for_timeout(500)
    assert error_badges(page).count() == 0


@pytest.mark.parametrize("viewport", [DESK, PHONE], ids=["1400x900", "390x844"])
def test_every_mistake_is_one_toast_and_changes_nothing(browser, server, viewport, tmp_path):
    page = open_page(browser, server, viewport)
    chat_actions(page, tmp_path)
    blind_actions(page)
    batch_actions(page, tmp_path)
    other_tabs(page)
    page.close()


# --- Refusals because of load: the visitor's share of the queue, and a full queue ---------------

HOLDER = "203.0.113.70"  # another visitor, whose long replay keeps the models busy while the test runs
ADDRESS_FULL = "Your address already has 8 requests waiting or running"
BATCH_FULL = "One batch at a time per visitor"
QUEUE_FULL = "The server is busy"


def long_replay(turns: int = 200) -> str:
    """A conversation file of `turns` short turns: replaying it holds the models for a while."""
    answer = {"text": "Madrid."}
    settings = {"system_prompt": "", "max_tokens": 64, "temperature": 0, "top_p": 1, "stop": []}
    return json.dumps(
        {
            "format": "phi3-mlflow-compare/conversation",
            "version": 1,
            "settings": settings,
            "turns": [
                {
                    "prompt": f"Question {n}: tell me about Spain.",
                    "answers": {"transformers": answer, "onnx": answer},
                }
                for n in range(turns)
            ],
        }
    )


@contextlib.contextmanager
def waiting(server: str, requests: dict[str, int]):
    """Requests from each address (`""`: the browser's own, loopback) waiting behind a long replay.

    The replay runs in the models' lane (one at a time), so the requests wait without using the CPU;
    all are cancelled on leaving. Client.submit joins from a thread of its own: this waits until
    every request has joined (`joined`) and the replay is running.
    """
    holder = visitor_client(server, HOLDER).submit(conversation=long_replay(), api_name="/replay")
    deadline = time.monotonic() + 60
    while holder.status().code not in (Status.PROCESSING, Status.ITERATING):  # a replay streams its turns
        assert time.monotonic() < deadline and not holder.done(), holder.status()
        time.sleep(0.05)
    jobs = []
    for address, count in requests.items():
        clients = [
            Client(server, verbose=False) if not address else visitor_client(server, address)
            for _ in range(3)
        ]
        jobs += [clients[n % 3].submit(prompt="Hi", max_tokens=4, api_name="/compare") for n in range(count)]
    joined(jobs)
    try:
        yield holder
    finally:
        for job in [*jobs, holder]:
            job.cancel()


def busy(page, holder, action, message: str) -> None:
    """`refused`, while the requests still wait: the replay that holds them must not have ended."""
    assert not holder.done(), "the replay ended before the test did: the requests no longer wait"
    refused(page, action, message)


def refused_for_load(page, holder) -> None:
    """Every action of every tab that would wait in the queue, refused with one toast."""
    page.locator("#prompt textarea").fill("What is 7 plus 5?")
    chat = [
        "#send",
        "#retry",
        "#regenerate-transformers",
        "#regenerate-onnx",
        "#vote-tie",
        "#export",
        "#replay",
    ]
    for button in chat:
        busy(page, holder, click(page, button), ADDRESS_FULL)
    busy(page, holder, lambda: page.locator("#prompt textarea").press("Enter"), ADDRESS_FULL)
    busy(page, holder, click(page, "#leaderboard-refresh"), ADDRESS_FULL)
    page.locator("#blind-mode input").check()  # the page's own steps: never refused
    expect(page.locator("#arena")).to_be_visible()
    page.locator("#arena-prompt textarea").fill("What is 7 plus 5?")
    for button in ("#arena-send", "#arena-vote-a"):
        busy(page, holder, click(page, button), ADDRESS_FULL)
    page.locator("#blind-mode input").uncheck()
    expect(page.locator("#arena")).to_be_hidden()
    expect(page.locator("#verdict")).to_be_visible()
    page.get_by_role("tab", name="Batch comparison").click()
    busy(page, holder, click(page, "#batch-run"), ADDRESS_FULL)
    page.get_by_role("tab", name="History").click()  # its own reading of the history is refused too
    expect(page.locator(".toast-body").filter(has_text=ADDRESS_FULL).first).to_be_visible(timeout=15_000)
    page.wait_for_timeout(500)
    assert error_badges(page).count() == 0
    close_toasts(page)
    busy(page, holder, click(page, "#history-refresh"), ADDRESS_FULL)
    busy(
        page,
        holder,
        lambda: page.locator("#history-comparisons").get_by_role("gridcell").first.click(),
        ADDRESS_FULL,
    )
    page.get_by_role("tab", name="Chat").click()


def test_a_visitor_over_their_share_or_a_full_queue_gets_one_toast_and_the_page_stays(
    browser, server, tmp_path
):
    """The load refusals (ui/fair_queue.py), every action of every tab: the address's eight places,
    one batch at a time, a full queue."""
    page = open_page(browser, server, DESK)
    send(page, "What is the capital of Spain?")  # something to retry, regenerate, vote on and export
    expect(page.locator("#fidelity")).not_to_contain_text("scoring the answers", timeout=30_000)
    page.get_by_text("Export, import and replay a conversation").click()
    expect(page.locator("#replay-table")).to_be_visible()
    page.get_by_text("Leaderboard: Bradley").click()
    expect(page.locator("#leaderboard-named")).to_be_visible()
    page.get_by_role("tab", name="History").click()
    expect(page.locator("#history-comparisons")).to_contain_text("capital of Spain", timeout=120_000)
    page.get_by_role("tab", name="Batch comparison").click()
    page.locator("#batch-file input[type=file]").set_input_files(str(batch_file(tmp_path, 2)))
    page.get_by_role("tab", name="Chat").click()
    with waiting(server, {"": 8}) as holder:
        refused_for_load(page, holder)
    with waiting(server, {"": 1}) as holder:  # a batch of the same address, waiting
        batch = Client(server, verbose=False).submit(
            file=handle_file(str(batch_file(tmp_path, 2))), api_name="/batch"
        )
        joined([batch])
        page.get_by_role("tab", name="Batch comparison").click()
        busy(page, holder, click(page, "#batch-run"), BATCH_FULL)
        # Let it end rather than cancel it: a batch goes on in the background after its client
        # leaves, and two batches' evaluations at once can collide in MLflow (see the report).
        with contextlib.suppress(Exception):
            batch.result(timeout=300)
        page.get_by_role("tab", name="Chat").click()
    others = {f"203.0.113.{80 + n}": 8 for n in range(4)}  # 32: the queue's size
    with waiting(server, others) as holder:
        busy(page, holder, click(page, "#send"), QUEUE_FULL)
        busy(page, holder, click(page, "#leaderboard-refresh"), QUEUE_FULL)
    page.close()


def test_on_a_phone_a_refusal_for_load_is_one_toast_too(browser, server):
    """At 390×844, the refusals are the same steps' (the test above has them all): one of each kind."""
    page = open_page(browser, server, PHONE)
    page.locator("#prompt textarea").fill("What is 7 plus 5?")
    page.get_by_text("Leaderboard: Bradley").click()
    expect(page.locator("#leaderboard-named")).to_be_visible()
    with waiting(server, {"": 8}) as holder:
        busy(page, holder, click(page, "#send"), ADDRESS_FULL)
        busy(page, holder, click(page, "#leaderboard-refresh"), ADDRESS_FULL)
    with waiting(server, {f"203.0.113.{90 + n}": 8 for n in range(4)}) as holder:
        busy(page, holder, click(page, "#send"), QUEUE_FULL)
    page.close()


STILL_RUNNING = "Your last comparison is still running"


def test_a_second_send_while_a_comparison_runs_is_one_toast_and_stop_still_stops_it(browser, server):
    """The page ignores a trigger of a step still running, so Send, Enter, Retry or Regenerate while
    the session's comparison waits or runs would be dropped without a word (and its check would
    re-arm the stop flag, so that Stop no longer reached the running one). Each is refused instead."""
    page = open_page(browser, server, DESK)
    send(page, "What is the capital of Spain?")  # something to retry and regenerate
    expect(page.locator("#fidelity")).not_to_contain_text("scoring the answers", timeout=30_000)
    with waiting(server, {}) as holder:  # the models are busy: this session's comparison waits
        page.locator("#prompt textarea").fill("What is 7 plus 5?")
        page.locator("#send").click()
        page.wait_for_function(  # waiting in the queue (Gradio's status on the pane) or running
            """() => /queue|comparing/.test(['#chat-onnx', '#verdict']
                .map((s) => document.querySelector(s).innerText).join(' '))""",
            timeout=15_000,
        )
        for action in (
            click(page, "#send"),
            lambda: page.locator("#prompt textarea").press("Enter"),
            click(page, "#retry"),
            click(page, "#regenerate-onnx"),
        ):
            busy(page, holder, action, STILL_RUNNING)
        page.locator("#stop").click()
    expect(page.locator("#verdict")).to_contain_text("Stopped", timeout=60_000)  # the waiting one, stopped
    expect(error_badges(page)).to_have_count(0)
    verdict = send(page, "What is 7 plus 5?")  # and the page goes on
    assert "completions" in verdict.lower(), verdict
    page.close()
