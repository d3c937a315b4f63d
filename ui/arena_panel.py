"""Blind mode in the Chat tab: the switch, the Model A and Model B panes, and what their buttons do.

The battle and its API live in `ui/arena.py` (and `compare/arena.py`); this module arranges the
panel and wires Send, Stop, New battle and the votes, each checked in a step with no outputs first.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from compare.arena import LABELS, Arena, ArenaError, Battle, anonymous
from compare.endings import NOT_VOTABLE_NOTE, Ending
from compare.service import Comparer
from ui import formatting as fmt
from ui.api import MODEL_EVENTS, asker_of, at_boundary, input_error, voter_of
from ui.arena import (
    ARENA_VOTES,
    NAMES,
    WAITING,
    cast_vote,
    owner_of,
    play_turn,
    reveal_markdown,
    turn_conversations,
    votable,
)
from ui.chat_events import StopSignals, stopper
from ui.checks import box_options, check_send


@dataclass(frozen=True)
class ArenaPanel:
    """The blind-mode components, laid out; `wire_arena_panel` connects them once settings exist."""

    switch: gr.Checkbox
    named: gr.Column
    column: gr.Column
    chats: dict[str, gr.Chatbot]
    prompt: gr.Textbox
    send: gr.Button
    stop: gr.Button
    new: gr.Button
    status: gr.Markdown
    votes: dict[str, gr.Button]
    comment: gr.Textbox
    reveal: gr.Markdown
    battle: gr.State


def blind_switch() -> gr.Checkbox:
    return gr.Checkbox(
        False,
        label="Blind mode (arena): the models answer as Model A and Model B; your vote reveals which",
        elem_id="blind-mode",
    )


def arena_panel(switch: gr.Checkbox, named: gr.Column) -> ArenaPanel:
    """The blind battle's panes, prompt and votes; shown instead of `named` while the switch is on."""
    with gr.Column(visible=False, elem_id="arena") as column:
        with gr.Row(equal_height=False):
            chats = {
                label: gr.Chatbot(
                    label=NAMES[label], height=360, elem_id=f"chat-{label}", render_markdown=False
                )
                for label in LABELS
            }
        with gr.Row():
            prompt = gr.Textbox(
                label="Prompt", placeholder="Ask Model A and Model B…", scale=6, elem_id="arena-prompt"
            )
            send = gr.Button("Send", variant="primary", elem_id="arena-send", min_width=90)
            stop = gr.Button("Stop", variant="stop", elem_id="arena-stop", min_width=70)
            new = gr.Button("New battle", elem_id="arena-new", min_width=90)
        status = gr.Markdown(elem_id="arena-status")
        with gr.Row():
            votes = {
                c: gr.Button(label, size="sm", elem_id=f"arena-vote-{c}") for c, label in ARENA_VOTES.items()
            }
            comment = gr.Textbox(placeholder="Optional comment on your vote", show_label=False, scale=3)
        reveal_box = gr.Markdown(elem_id="arena-reveal")
    return ArenaPanel(
        switch,
        named,
        column,
        chats,
        prompt,
        send,
        stop,
        new,
        status,
        votes,
        comment,
        reveal_box,
        gr.State(""),
    )


def wire_arena_panel(
    panel: ArenaPanel, comparer: Comparer, arena: Arena, settings: list, stops: StopSignals, after_vote=None
) -> None:
    """Connect the panel: `settings` are (system, max_tokens, temperature, top_p, stop) components;
    `stops` are the Chat tab's, so Stop means the same in both modes."""
    p = panel
    p.switch.change(
        lambda on: (gr.Column(visible=not on), gr.Column(visible=on)),
        p.switch,
        [p.named, p.column],
        api_visibility="private",
        concurrency_limit=None,  # the page's own steps start at once: they hold no place in the queue
    )
    chats = [p.chats[label] for label in LABELS]
    outputs = [*chats, p.prompt, p.status, p.reveal, p.battle]
    check = {
        "fn": _turn_checker(comparer, arena),
        "inputs": [p.prompt, p.battle, *settings],
        "outputs": None,
        "concurrency_limit": None,
        "api_visibility": "private",
    }
    turn = {
        "fn": _turn_handler(comparer, arena, p, stops),
        "inputs": [p.prompt, p.battle, *settings, *chats],
        "outputs": outputs,
        "concurrency_id": MODEL_EVENTS,
        "concurrency_limit": comparer.limits.concurrency,
        "api_visibility": "private",
    }
    runs = [p.send.click(**check).success(**turn), p.prompt.submit(**check).success(**turn)]
    p.stop.click(stopper(stops), None, None, concurrency_limit=None, api_visibility="private")
    p.new.click(
        lambda: _fresh(p),
        None,
        outputs[:2] + outputs[3:],
        cancels=runs,
        concurrency_limit=None,
        api_visibility="private",
    )
    _wire_votes(p, comparer, arena, chats, after_vote)


def _wire_votes(p: ArenaPanel, comparer: Comparer, arena: Arena, chats: list, after_vote) -> None:
    """Each vote button: checked with no outputs, then counted, then the reveal."""
    revealed = gr.State({})  # a refused vote is one toast: its only output shows no error badge
    for choice, button in p.votes.items():
        checked = button.click(
            _vote_checker(comparer, arena, choice), [p.battle, p.comment], None, api_visibility="private"
        )
        event = checked.success(
            _vote_handler(comparer, arena, choice),
            [p.battle, p.comment],
            [revealed],
            api_visibility="private",
        ).success(
            lambda shown: _revealed(p, shown),
            revealed,
            [*chats, p.reveal, p.status, p.comment],
            concurrency_limit=None,
            api_visibility="private",
        )
        if after_vote is not None:
            after_vote(event)


def _turn_checker(comparer: Comparer, arena: Arena):
    @at_boundary
    def check(prompt, battle_id, system, max_tokens, temperature, top_p, stop, request: gr.Request) -> None:
        """The blind prompt and the settings, refused as the Chat tab's are, before any output changes;
        then the battle's next turn, with its earlier turns, against the token and time limits."""
        check_send(comparer, prompt, system, (max_tokens, temperature, top_p, stop), [])
        battle = _current_battle(arena, battle_id, owner_of(request))
        if battle is not None:
            options = box_options(comparer, max_tokens, temperature, top_p, stop)
            comparer.check_fits(turn_conversations(battle, prompt, system or ""), options)

    return check


def _vote_checker(comparer: Comparer, arena: Arena, choice: str):
    @at_boundary
    def check(battle_id: str, comment: str, request: gr.Request) -> None:
        if not battle_id:
            raise input_error("Start a blind comparison first, then vote.")
        votable(comparer, arena, battle_id, owner_of(request), choice, comment or "")

    return check


def _turn_handler(comparer: Comparer, arena: Arena, p: ArenaPanel, stops: StopSignals):
    @at_boundary
    def battle_turn(
        prompt, battle_id, system, max_tokens, temperature, top_p, stop, chat_a, chat_b, request: gr.Request
    ):
        options = box_options(comparer, max_tokens, temperature, top_p, stop)
        stopping = stops.arm(request.session_hash)
        owner = owner_of(request)
        opened = _open_battle(arena, battle_id, owner)
        shown = (chat_a, chat_b) if opened.comparison_ids else ([], [])  # a new battle starts empty
        histories = dict(zip(LABELS, shown, strict=True))
        # A new battle also takes back the names the last vote put on the panes.
        labels = {p.chats[label]: gr.Chatbot(label=NAMES[label]) for label in LABELS}
        yield (labels if not opened.comparison_ids else {}) | {
            p.prompt: "",
            p.status: "Model A and Model B are answering…",
            p.reveal: "",
            p.battle: opened.id,
        }
        for battle, latest in play_turn(
            comparer, arena, opened, prompt, system or "", options, asker_of(request), stopping
        ):
            view = anonymous(battle, latest)
            yield {p.chats[label]: _with_turn(histories[label], prompt, view[label]) for label in LABELS}
        yield {p.status: _turn_status(battle.ending), p.battle: battle.id}

    return battle_turn


def _turn_status(ending: Ending) -> str:
    """What the status line says once a turn has ended."""
    if ending is Ending.FINISHED:
        return WAITING
    if ending is Ending.STOPPED:
        return (
            "⏹ Stopped. This turn is kept on the record as stopped, but only comparisons that finished "
            "can be voted on: send another prompt, and vote on that one."
        )
    return f"{NOT_VOTABLE_NOTE} Send another prompt, and vote on that one."


def _fresh(p: ArenaPanel) -> dict:
    """A new battle: empty, unnamed panes."""
    chats = {p.chats[label]: gr.Chatbot([], label=NAMES[label]) for label in LABELS}
    return chats | {p.status: "", p.reveal: "", p.battle: ""}


def _current_battle(arena: Arena, battle_id: str, owner: str) -> Battle | None:
    """The session's battle still open for turns, if there is one."""
    if battle_id:
        try:
            battle = arena.get(battle_id, owner)
            if not battle.voted:
                return battle
        except ArenaError:
            pass
    return None


def _open_battle(arena: Arena, battle_id: str, owner: str) -> Battle:
    """The session's current battle, or a new one if there is none or it was voted on."""
    return _current_battle(arena, battle_id, owner) or arena.start(owner)


def _with_turn(history, prompt: str, side: dict) -> list[dict]:
    """The pane's history (already escaped) and this turn, shown as text (see fmt.pane_text)."""
    answer = f"{side['text']}\n\n⚠️ {side['error']}" if side["error"] else side["text"]
    turn = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    return [*(history or []), *({**m, "content": fmt.pane_text(m["content"])} for m in turn)]


def _vote_handler(comparer: Comparer, arena: Arena, choice: str):
    @at_boundary
    def vote_blind(battle_id: str, comment: str, request: gr.Request) -> dict:
        if not battle_id:
            raise input_error("Start a blind comparison first, then vote.")
        voter = voter_of(request)
        revealed = cast_vote(comparer, arena, battle_id, owner_of(request), voter, choice, comment or "")
        gr.Info(f"Vote stored in MLflow: {ARENA_VOTES[choice]}")
        return revealed

    return vote_blind


def _revealed(p: ArenaPanel, revealed: dict) -> dict:
    """The page after a stored vote: the names on the panes, the reveal, the status."""
    # Short, on one line above the messages; the versions and figures are in the reveal.
    labels = {
        p.chats[label]: gr.Chatbot(label=f"{NAMES[label]}: {revealed[label]['side']}") for label in LABELS
    }
    status = "Revealed. Send a new prompt to start another blind comparison."
    return labels | {p.reveal: reveal_markdown(revealed), p.status: status, p.comment: ""}
