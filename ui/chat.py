"""The Chat tab: both answers and the prompt on one screen, the figures and the difference below.

Top to bottom: the blind-mode switch, the two panes side by side (stacked on
a phone), the prompt with Send and Stop, the examples; the settings (for both
modes, one click under the prompt); then the turn's actions, the verdict with
one metrics table beside it, the fidelity line and token strip under the
verdict, the vote, the difference view, each side's details; then, for both
modes, the leaderboard and conversation files. Blind mode (`ui/arena.py`)
swaps the panes, prompt and figures for Model A and Model B.

The turns live in one `gr.State` (see `compare/turns.py`), and both panes
are drawn from it, so they always hold the same turns. What the buttons do
is in `chat_events.py`; here they are laid out and wired.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import gradio as gr

from compare.arena import Arena
from compare.service import Comparer
from ui import formatting as fmt
from ui.api import MODEL_EVENTS, SIDES
from ui.arena_panel import arena_panel, blind_switch, wire_arena_panel
from ui.chat_events import (
    Shown,
    StopSignals,
    chat_handler,
    check_take_back,
    checker,
    clearer,
    regenerate_checker,
    regenerate_handler,
    reopener,
    retry_checker,
    stopper,
    take_last_prompt,
)
from ui.conversation_io import conversation_panel
from ui.leaderboard import leaderboard_panel
from ui.votes import VoteRow, vote_row
from wrappers.errors import public_text

# What the tiny model can do (its own words or other ones), and one question outside its world.
EXAMPLES = [
    ["What is the capital of Spain?", ""],
    ["tell me japan's capital city please", "You are a helpful assistant."],
    ["What is seven times eight?", ""],
    ["Tell me a joke about atom", "You are a stand-up comedian."],
    ["Hello! Who are you?", ""],
    ["Who won the 2022 football World Cup?", ""],
]
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
    traces recorded them, ready to continue (or vote on, if it finished)."""

    prompt: gr.Textbox
    verdict: gr.Markdown
    last_id: gr.State
    turns: gr.State
    outputs: list
    reopen: Callable[..., dict]
    panes: dict[str, dict] = field(default_factory=dict)


def chat_tab(demo: gr.Blocks, comparer: Comparer, arena: Arena, status: gr.Markdown) -> ChatTab:
    """Arrange the Chat tab and wire its events."""
    switch = blind_switch()
    boxes = _settings_boxes(comparer)  # laid out under the prompt, shared by both modes
    with gr.Column() as named:
        with gr.Row(equal_height=True, elem_id="panes"):
            panes = {side: _pane(side, comparer.backends[side].title) for side in SIDES}
        prompt, send, stop = _prompt_row(comparer)
    blind = arena_panel(switch, named)
    examples = _under_prompt(prompt, boxes)
    with gr.Column() as below:  # the turn's actions and figures: named mode only
        shown, buttons, votes = _named_mode(comparer, panes, prompt, send, stop)
    hide = {
        "fn": lambda on: [gr.Column(visible=not on)] * 2,
        "api_visibility": "private",
        "concurrency_limit": None,
    }
    switch.change(inputs=switch, outputs=[below, examples], **hide)
    refresh_board = leaderboard_panel(demo)
    for event in votes.events:
        refresh_board(event)
    settings = [boxes[name] for name in ("system", "max_tokens", "temperature", "top_p", "stop")]
    stops = StopSignals()  # one for the page: the Chat tab's Stop and blind mode's
    wire_arena_panel(blind, comparer, arena, settings, stops, refresh_board)
    conversation_panel(comparer, shown.turns, settings, shown.all(), shown.loaded)
    demo.load(None, js=FOCUS_PROMPT)
    system = settings[0]
    reopen = reopener(shown, system)

    def reopen_named(*args) -> dict:
        """A reopened comparison shows in the named panes: blind mode is switched off, not left on top."""
        named_mode = {part: gr.Column(visible=True) for part in (named, below, examples)}
        return reopen(*args) | named_mode | {switch: False, blind.column: gr.Column(visible=False)}

    outputs = [*shown.all(), system, switch, named, below, examples, blind.column]
    tab = ChatTab(shown.prompt, shown.verdict, shown.last_id, shown.turns, outputs, reopen_named, shown.panes)
    _wire_comparisons(comparer, shown, buttons, settings, boxes["scoring"], stops)
    _status_poll(demo, comparer, status, shown.panes, buttons.send)
    return tab


@dataclass(frozen=True)
class Buttons:
    """What starts, stops and takes back a comparison in named mode."""

    send: gr.Button
    stop: gr.Button
    regenerate: dict[str, gr.Button]  # side -> "Regenerate side"
    edit: gr.Button
    retry: gr.Button
    clear: gr.Button


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


def _under_prompt(prompt: gr.Textbox, boxes: dict) -> gr.Column:
    """The examples beside the settings, right under the prompt; returns the examples' column."""
    with gr.Row(equal_height=False, elem_id="under-prompt"):
        with gr.Column(scale=5, min_width=300) as examples:  # they fill the named prompt
            gr.Examples(
                EXAMPLES,
                inputs=[prompt, boxes["system"]],
                label="Examples (click one to fill the prompt)",
                example_labels=[_example_label(*example) for example in EXAMPLES],  # buttons, not a table
                elem_id="examples",
            )
        with gr.Column(scale=2, min_width=260):
            _settings(boxes)
    return examples


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


def _wire_comparisons(
    comparer: Comparer, shown: Shown, buttons: Buttons, settings: list, scoring, stops: StopSignals
) -> None:
    """Send, retry, edit, regenerate, Stop and Clear: each checks first, then runs in the models' queue."""
    prompt, turns, b = shown.prompt, shown.turns, buttons
    run = {"concurrency_id": MODEL_EVENTS, "concurrency_limit": comparer.limits.concurrency}
    private = {"api_visibility": "private"}
    check, quick = checker(comparer, stops), {"concurrency_limit": None, **private}
    generate = chat_handler(comparer, shown, stops)
    asked = [prompt, *settings, scoring, turns]
    for trigger in (b.send.click, prompt.submit):  # every check is a step with no outputs: one toast
        trigger(check, [prompt, *settings, turns], None, **quick).success(
            generate, asked, shown.all(), **run, **private
        )
    b.retry.click(retry_checker(comparer, stops), [*settings, turns], None, **quick).success(
        take_last_prompt, turns, [prompt, turns], **quick
    ).success(generate, asked, shown.all(), **run, **private)
    b.edit.click(check_take_back, turns, None, **quick).success(
        take_last_prompt, turns, [prompt, turns], **quick
    ).success(
        shown.loaded, turns, shown.all(), **quick
    )  # the comparison taken back can no longer be voted on
    for side, button in b.regenerate.items():
        button.click(
            regenerate_checker(comparer, stops, side),
            [turns, shown.results, *settings],
            None,
            concurrency_limit=None,
            **private,
        ).success(
            regenerate_handler(comparer, shown, stops, side),
            [*settings, scoring, turns, shown.results],
            shown.all(),
            **run,
            **private,
        )
    b.stop.click(stopper(stops), None, None, concurrency_limit=None, **private)
    chats = [shown.panes[side]["chat"] for side in SIDES]
    for trigger in (b.clear.click, *(chat.clear for chat in chats)):  # a pane never clears alone
        trigger(clearer(shown, stops), None, shown.all(), concurrency_limit=None, **private)


def _example_label(prompt: str, system: str) -> str:
    """
    >>> _example_label("Hi", ""), _example_label("Hi", "Be brief.")
    ('Hi', 'Hi (+ system prompt)')
    """
    return f"{prompt} (+ system prompt)" if system else prompt


def _settings_boxes(comparer: Comparer) -> dict:
    """The generation settings, made before they are placed (the examples fill the system prompt)."""
    top, later = comparer.limits.max_new_tokens, {"render": False}
    return {
        "system": gr.Textbox("", label="System prompt", lines=1, max_lines=4, **later),
        **dict(zip(("max_tokens", "temperature", "top_p"), _setting_boxes(top, **later), strict=True)),
        "stop": gr.Textbox(
            "", label="Stop sequences (one per line)", lines=1, max_lines=4, elem_id="setting-stop", **later
        ),
        "scoring": gr.Checkbox(
            comparer.fidelity,
            label="Score fidelity after each answer (teacher-forced KL; charged to neither side)",
            interactive=comparer.fidelity,  # off in the configuration: off for everyone
            elem_id="fidelity-switch",
            **later,
        ),
    }


def _settings(boxes: dict) -> None:
    """The settings, one click beside the examples: opening them leaves the answers in view."""
    label = "Settings for both models"  # system prompt, max tokens, temperature, top_p, stop, fidelity
    with gr.Accordion(label, open=False, elem_id="settings"):
        with gr.Row():
            for name in ("max_tokens", "temperature", "top_p"):
                boxes[name].render()
        with gr.Row():
            for name in ("system", "stop", "scoring"):
                boxes[name].render()


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


def _setting_boxes(most_tokens: int, **kwargs) -> tuple[gr.Number, gr.Number, gr.Number]:
    """Number boxes that keep what is typed: a value out of range is refused with the API's words
    when it is used, never clamped in silence as a slider's box would."""
    top = f"Max new tokens (1 to {most_tokens})"
    return (
        gr.Number(min(128, most_tokens), label=top, elem_id="setting-max-tokens", **kwargs),
        gr.Number(
            0.0, label="Temperature (0 to 2; 0 = greedy)", step=0.05, elem_id="setting-temperature", **kwargs
        ),
        gr.Number(1.0, label="top_p (above 0, at most 1)", step=0.05, elem_id="setting-top-p", **kwargs),
    )


def _details(pane: dict, side: str) -> None:
    with gr.Column(), gr.Accordion(f"{side}: response, raw output, model card", open=False):
        pane["response"] = gr.JSON(label="OpenAI-style chat completion", elem_id=f"response-{side}")
        pane["raw"] = gr.Code(language="json", label="Exactly what predict() returned", elem_id=f"raw-{side}")
        pane["card"] = gr.Markdown("Not loaded yet.", elem_id=f"card-{side}")


def _status_poll(demo, comparer: Comparer, status, panes, send) -> None:
    """Show start-up progress until both models are ready, then their model cards; Send waits."""
    startup = comparer.startup
    timer = gr.Timer(1.0, active=startup is not None)

    def poll():
        if startup is None:
            return {timer: gr.Timer(active=False)}
        states, lines = startup.snapshot()
        updates = {status: startup_status(states, lines, startup.notices, startup.finished)}
        if startup.finished:
            updates |= {panes[side]["card"]: _card(comparer, side, states[side]) for side in SIDES}
            updates |= {timer: gr.Timer(active=False), send: gr.Button("Send", interactive=True)}
        return updates

    outputs = [status, timer, send, *(panes[side]["card"] for side in SIDES)]
    timer.tick(poll, None, outputs, api_visibility="private", concurrency_limit=None)
    demo.load(poll, None, outputs, api_visibility="private", concurrency_limit=None)


def startup_status(states: dict[str, str], lines: list[str], notices: list[str], finished: bool) -> str:
    """The status line above the panes: each side's state, and what a visitor should know all along
    (e.g. limits lowered to fit the memory); during start-up, also the last lines of its log.

    >>> startup_status({"onnx": "ready"}, [], ["Limits lowered."], finished=True)
    '<small>**onnx**: ready</small>\\n\\n⚠️ Limits lowered.'
    """
    text = public_text(" · ".join(f"**{side}**: {state}" for side, state in states.items()))
    notes = "".join(f"\n\n⚠️ {public_text(notice)}" for notice in notices)
    if finished:
        return f"<small>{text}</small>{notes}"
    log = public_text("\n".join(lines[-4:]))
    return f"Start-up: {text}{notes}\n\n```\n{log}\n```"


def _card(comparer: Comparer, side: str, state: str) -> str:
    if not state.startswith("ready"):
        return public_text(f"⚠️ This model is not available: {state}")
    backend = comparer.backends[side]
    ref = backend.model_ref()
    return fmt.model_card_markdown(
        ref.uri, ref.name, ref.version, backend.signature(), backend.streaming_note, backend.weights()
    )
