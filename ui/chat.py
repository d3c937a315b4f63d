"""The Chat tab: both answers and the prompt on one screen, the figures and the difference below.

Top to bottom: the blind-mode switch, the two panes side by side (stacked on
a phone), the prompt with Send and Stop, the examples; the settings (for both
modes, one click under the prompt); then the turn's actions, the verdict with
one metrics table beside it, the fidelity line and token strip under the
verdict, the vote, the difference view, each side's details; then, for both
modes, the leaderboard and conversation files. Blind mode (`ui/arena.py`)
swaps the panes, prompt and figures for Model A and Model B.

The turns live in one `gr.State` (see `compare/turns.py`), and both panes
are drawn from it, so they always hold the same turns. Here the tab is laid
out; `chat_settings.py` holds the settings and examples, `chat_status.py` the
start-up line and model cards, `chat_wiring.py` which handler each button runs
(`chat_events.py`, and `chat_scoring.py` for fidelity).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import gradio as gr

from compare.arena import Arena
from compare.service import Comparer
from ui import formatting as fmt
from ui.api import SIDES
from ui.arena_panel import arena_panel, blind_switch, wire_arena_panel
from ui.chat_events import Shown, StopSignals, reopener
from ui.chat_scoring import Scorings
from ui.chat_settings import settings_boxes, under_prompt
from ui.chat_status import status_poll
from ui.chat_wiring import Buttons, Wiring, wire_comparisons
from ui.conversation_io import conversation_panel
from ui.leaderboard import leaderboard_panel
from ui.votes import VoteRow, vote_row

# Focus the prompt on a wide screen, without scrolling: Gradio's autofocus scrolled a phone's first
# load 500 to 1,100 px down, past the title, the tabs and the first pane.
FOCUS_PROMPT = """() => {
  if (window.matchMedia("(min-width: 641px)").matches)
    document.querySelector("#prompt textarea")?.focus({preventScroll: true});
}"""
CSS = """
#chat-transformers, #chat-onnx { height: min(330px, 42vh) !important; }
#chat-transformers .top-panel, #chat-onnx .top-panel,
#chat-model_a .top-panel, #chat-model_b .top-panel { display: none !important; }  /* a pane's own trash */
#chat-model_a label[data-testid='block-label'], #chat-model_b label[data-testid='block-label'] {
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; max-width: calc(100% - 16px);
}  /* one line, above the messages: "Model A: onnx" must not wrap onto the first message */
@media (max-width: 640px) { #chat-transformers, #chat-onnx { height: 26vh !important; } }
.pane-title p { margin: 0 !important; }
#verdict, #metrics { font-size: 0.95em; }
#metrics th, #metrics td { padding: 3px 10px !important; }
#metrics th { white-space: nowrap; }  /* a side's name on one line, never "transforme" over "rs" */
@media (max-width: 640px) { #metrics th, #metrics td { padding: 2px 5px !important; } }
#blind-mode { padding-top: 4px !important; padding-bottom: 4px !important; }
.diff-view table { border-collapse: collapse; }
.diff-view th { text-align: left; padding-right: 0.8em; white-space: nowrap; }
.diff-token { border-right: 1px dotted #bbb; padding: 0 1px; }
.diff-skip { color: #888; }
.diff-side td { vertical-align: top; width: 50%; padding: 4px 8px; border: 1px solid #ddd; }
mark.diff-first { background: #ffd54f; font-weight: bold; padding: 0 2px; }
.diff-words del { background: #ffcdd2; } .diff-words ins { background: #c8e6c9; text-decoration: none; }
"""


@dataclass
class ChatTab:
    """The Chat tab, for other tabs: `reopen(turns, system_prompt, comparison_id, results, ending, vote)`
    gives the updates of `outputs` that show a past comparison, with its metrics and verdict as its
    traces recorded them, ready to continue (or vote on, if it finished). `forget_scoring(session)`
    keeps the fidelity of the comparison shown before off the page (see `ui/chat_scoring.py`)."""

    prompt: gr.Textbox
    verdict: gr.Markdown
    last_id: gr.State
    turns: gr.State
    outputs: list
    reopen: Callable[..., dict]
    forget_scoring: Callable[[str], None]
    panes: dict[str, dict] = field(default_factory=dict)


def chat_tab(demo: gr.Blocks, comparer: Comparer, arena: Arena, status: gr.Markdown) -> ChatTab:
    """Arrange the Chat tab and wire its events."""
    switch = blind_switch()
    boxes = settings_boxes(comparer)  # laid out under the prompt, shared by both modes
    with gr.Column() as named:
        with gr.Row(equal_height=True, elem_id="panes"):
            panes = {side: _pane(side, comparer.backends[side].title) for side in SIDES}
        prompt, send, stop = _prompt_row(comparer)
    blind = arena_panel(switch, named)
    examples = under_prompt(prompt, boxes)
    with gr.Column() as below:  # the turn's actions and figures: named mode only
        shown, buttons, votes = _named_mode(comparer, panes, prompt, send, stop)
    hide = {
        "fn": lambda on: [gr.Column(visible=not on)] * 2,
        "api_visibility": "private",
        "concurrency_limit": None,  # the page's own steps start at once: they hold no place in the queue
    }
    switch.change(inputs=switch, outputs=[below, examples], **hide)
    refresh_board = leaderboard_panel(demo)
    for event in votes.events:
        refresh_board(event)
    settings = [boxes[name] for name in ("system", "max_tokens", "temperature", "top_p", "stop")]
    stops = StopSignals()  # one for the page: the Chat tab's Stop and blind mode's
    wire_arena_panel(blind, comparer, arena, settings, stops, refresh_board)
    scorings = Scorings()  # an imported or reopened conversation takes the page: no late fidelity on it
    conversation_panel(comparer, shown.turns, settings, shown.all(), shown.loaded, scorings.forget)
    demo.load(None, js=FOCUS_PROMPT)
    system = settings[0]
    reopen = reopener(shown, system)

    def reopen_named(*args) -> dict:
        """A reopened comparison shows in the named panes: blind mode is switched off, not left on top."""
        named_mode = {part: gr.Column(visible=True) for part in (named, below, examples)}
        return reopen(*args) | named_mode | {switch: False, blind.column: gr.Column(visible=False)}

    outputs = [*shown.all(), system, switch, named, below, examples, blind.column]
    parts = (shown.prompt, shown.verdict, shown.last_id, shown.turns)
    tab = ChatTab(*parts, outputs, reopen_named, scorings.forget, shown.panes)
    wire_comparisons(Wiring(comparer, shown, settings, boxes["scoring"], stops, scorings), buttons)
    status_poll(demo, comparer, status, shown.panes, buttons.send)
    return tab


def _named_mode(comparer: Comparer, panes: dict, prompt, send, stop) -> tuple[Shown, Buttons, VoteRow]:
    """Named mode under the prompt, to the details; returns what it shows, the buttons and the vote row."""
    regenerate, edit, retry, clear = _action_row()
    verdict, fidelity, metrics = _verdict_row()
    last_id, turns, results = gr.State(""), gr.State([]), gr.State({})
    votes = vote_row(comparer, last_id)
    with gr.Accordion("Difference view", open=True):
        diff = gr.HTML(elem_id="diff")
    with gr.Row():
        for side in SIDES:
            _details(panes[side], side)
    shown = Shown(panes, metrics, verdict, fidelity, diff, prompt, last_id, turns, results, votes.standing)
    return shown, Buttons(send, stop, regenerate, edit, retry, clear), votes


def _action_row() -> tuple[dict[str, gr.Button], gr.Button, gr.Button, gr.Button]:
    """Regenerate one side, edit the last prompt, retry both, clear (words: no emoji font needed)."""
    with gr.Row(elem_id="actions"):
        small = {"size": "sm", "min_width": 110}  # several to a line on a phone
        regenerate = {
            side: gr.Button(f"Regenerate {side}", elem_id=f"regenerate-{side}", **small) for side in SIDES
        }
        edit = gr.Button("Edit last prompt", elem_id="edit", **small)
        retry = gr.Button("Retry both", elem_id="retry", **small)
        clear = gr.Button("Clear", elem_id="clear", **small)
    return regenerate, edit, retry, clear


def _verdict_row() -> tuple[gr.Markdown, dict, gr.Markdown]:
    """The verdict with its fidelity line and token strip, beside the metrics table."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            verdict = gr.Markdown(elem_id="verdict")
            fidelity = {
                "line": gr.Markdown(elem_id="fidelity"),
                "strip": gr.HTML(elem_id="fidelity-strip"),
            }
        with gr.Column(scale=2, min_width=300):
            metrics = gr.Markdown(fmt.metrics_markdown({s: fmt.Result() for s in SIDES}), elem_id="metrics")
    return verdict, fidelity, metrics


def _prompt_row(comparer: Comparer) -> tuple[gr.Textbox, gr.Button, gr.Button]:
    with gr.Row(elem_id="prompt-row"):
        prompt = gr.Textbox(
            label="Prompt",
            show_label=False,
            placeholder="Ask both models…",
            scale=6,
            elem_id="prompt",
        )
        loading = not comparer.ready()[0]
        send = gr.Button(
            "Loading models…" if loading else "Send",
            variant="primary",
            elem_id="send",
            interactive=not loading,
            min_width=90,
        )
        stop = gr.Button("Stop", variant="stop", elem_id="stop", min_width=70)
    return prompt, send, stop


def _pane(side: str, title: str) -> dict:
    with gr.Column(variant="panel", min_width=300):
        gr.Markdown(f"**{side}** · <small>{title}</small>", elem_classes="pane-title")
        chat = gr.Chatbot(
            show_label=False,
            elem_id=f"chat-{side}",
            height=330,
            feedback_options=None,
            buttons=["copy"],
            render_markdown=False,  # prompts, answers and imported turns are text (see fmt.chat_messages)
        )
    return {"chat": chat}


def _details(pane: dict, side: str) -> None:
    with gr.Column(), gr.Accordion(f"{side}: response, raw output, model card", open=False):
        pane["response"] = gr.JSON(label="OpenAI-style chat completion", elem_id=f"response-{side}")
        pane["raw"] = gr.Code(language="json", label="Exactly what predict() returned", elem_id=f"raw-{side}")
        pane["card"] = gr.Markdown("Not loaded yet.", elem_id=f"card-{side}")
