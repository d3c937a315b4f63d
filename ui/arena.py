"""Blind mode: the Chat tab's arena switch, and the /arena and /arena_vote endpoints.

The battle (which side is Model A) lives in `compare.arena.Arena`, on the server;
the page holds only the battle id, in a server-side `gr.State`. Everything a
battle sends before its vote goes through `compare.arena.anonymous`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypedDict

import gradio as gr

from compare.arena import ARENA_CHOICES, LABELS, Arena, ArenaError, Battle, anonymous, lockstep
from compare.comparison import judge
from compare.owners import Asker
from compare.service import Comparer, new_comparison_id
from compare.votes import CHOICES
from ui.api import (
    MODEL_EVENTS,
    SIDES,
    JudgedInfo,
    Side,
    asker_of,
    at_boundary,
    input_error,
    prompt_messages,
)
from ui.api_docs import add_endpoint
from ui.pacing import paced
from wrappers import GenerationOptions, Result

# Words, not emoji: a machine without an emoji font showed empty boxes.
ARENA_VOTES = {"a": "A is better", "b": "B is better", "tie": "Tie", "both_bad": "Both are bad"}
NAMES = {"model_a": "Model A", "model_b": "Model B"}
BATTLE_ID = re.compile(r"[0-9a-f]{32}")
WAITING = "Both answers are in. Vote to reveal which model is which."


class BlindSide(TypedDict):
    text: str  # whole words only until the answer is done
    error: str | None
    done: bool


class BattleUpdate(TypedDict):
    """Each update of /arena: no names, no figures."""

    battle_id: str
    model_a: BlindSide
    model_b: BlindSide
    done: bool


class RevealedSide(Side):
    side: str  # the packaging this label was: transformers or onnx


class Reveal(TypedDict):
    """What /arena_vote returns: who was who, with every figure."""

    battle_id: str
    choice: str  # a, b, tie or both_bad
    winner: str | None  # the side voted better, if any
    model_a: RevealedSide
    model_b: RevealedSide
    verdict: JudgedInfo
    trace_ids: list[str]


def owner_of(request: gr.Request | None) -> str:
    """Who may vote on a battle: the logged-in user, else the browser (or client) session."""
    if request is None:
        return "in-process"
    return f"user:{request.username}" if request.username else f"session:{request.session_hash}"


def play_turn(
    comparer: Comparer,
    arena: Arena,
    battle: Battle,
    prompt: str,
    system: str,
    options: GenerationOptions,
    asker: Asker | None = None,
) -> Iterator[tuple[Battle, dict[str, Result]]]:
    """Stream one turn of a battle in lockstep; the last item carries the updated battle."""
    opening = prompt_messages(prompt, system)  # the system prompt (if any) and the prompt
    conversations = {
        side: [*battle.conversations[side], opening[-1]] if battle.conversations else opening
        for side in SIDES
    }
    comparison_id, latest = new_comparison_id(), {}
    updates = comparer.compare(conversations, options, comparison_id, asker, tags={"arena": "true"})
    for latest in paced(lockstep(updates), comparer.limits.stream_interval_s):
        yield battle, latest
    yield arena.add_turn(battle, conversations, latest, comparison_id), latest


def blind_payload(battle: Battle, latest: dict[str, Result]) -> dict:
    """The API's view of a battle in progress: no names, no figures."""
    view = anonymous(battle, latest)
    return {"battle_id": battle.id, **view, "done": all(view[label]["done"] for label in LABELS)}


def cast_vote(
    comparer: Comparer, arena: Arena, battle_id: Any, owner: str, choice: Any, comment: Any
) -> dict:
    """Store a blind vote (with the sides shown as A and B) and reveal the battle."""
    if not isinstance(battle_id, str) or not BATTLE_ID.fullmatch(battle_id):
        raise input_error("battle_id must be an id returned by /arena.")
    if choice not in ARENA_CHOICES:
        raise input_error(f"choice must be one of {', '.join(ARENA_CHOICES)}, got {choice!r}.")
    try:
        battle = arena.get(battle_id, owner)
        if not battle.comparison_ids:
            raise ArenaError("Send a prompt first, then vote.")
        if battle.voted:
            raise ArenaError("This blind comparison has already been voted on; start a new one.")
    except ArenaError as exc:
        raise input_error(str(exc)) from exc
    side = battle.side_of(choice)
    value = CHOICES[SIDES.index(side)] if side else choice
    metadata = {"blind": "true", "model_a": battle.order[0], "model_b": battle.order[1], "shown": choice}
    trace_ids, _ = comparer.store_vote(battle.comparison_ids[-1], value, comment, metadata)
    try:
        battle = arena.close(battle, choice)
    except ArenaError as exc:  # a second vote raced this one
        raise input_error(str(exc)) from exc
    return reveal(battle, trace_ids)


def reveal(battle: Battle, trace_ids: list[str]) -> dict:
    """Which model was A and which B, with every figure, and the verdict."""
    results = battle.results
    pairs = zip(LABELS, battle.order, strict=True)
    shown = {label: {"side": side, **results[side].to_dict()} for label, side in pairs}
    verdict = judge(results[SIDES[0]], results[SIDES[1]], SIDES)
    winner = battle.side_of(battle.voted or "")
    return {"battle_id": battle.id, "choice": battle.voted, "winner": winner, **shown} | {
        "verdict": verdict.to_dict(),
        "trace_ids": trace_ids,
    }


def reveal_markdown(revealed: dict) -> str:
    """The reveal as the page shows it."""
    lines = []
    for label in LABELS:
        side = revealed[label]
        model = side["model"]
        usage, latency = side["usage"], side["latency"]
        lines.append(
            f"- **{NAMES[label]} was {side['side']}** (`{model['name']}/{model['version']}`): "
            f"{usage['completion_tokens'] or '–'} tokens · total {_seconds(latency['total_s'])} · "
            f"first token {_seconds(latency['ttft_s'])} · decode {_rate(latency['tokens_per_s'])}"
        )
    winner = revealed["winner"] or revealed["choice"].replace("_", " ")
    return f"**Your vote**: {winner}\n\n" + "\n".join(lines) + f"\n\n{revealed['verdict']['summary']}"


def register_arena_api(comparer: Comparer, arena: Arena) -> None:
    """/arena streams a blind battle; /arena_vote stores the vote and reveals it."""

    def arena_battle(
        prompt: str,
        system_prompt: str = "",
        max_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: str = "",
        request: gr.Request = None,
    ) -> Iterator[dict]:
        """A blind comparison: both models answer, shown as model_a and model_b in random order.

        Returns {"battle_id", "model_a": {"text", "error", "done"}, "model_b": {...}, "done"}.
        Vote with /arena_vote to learn which model was which, with their figures.
        The settings (prompt, system_prompt, max_tokens, ...) are described in ui/api_docs.SHARED.
        """
        options = comparer.options(max_tokens, temperature, top_p, stop)
        prompt_messages(prompt, system_prompt)  # refuse bad input before a battle starts
        started = arena.start(owner_of(request))
        for battle, latest in play_turn(
            comparer, arena, started, prompt, system_prompt, options, asker_of(request)
        ):
            yield blind_payload(battle, latest)

    def arena_vote(battle_id: str, choice: str, comment: str = "", request: gr.Request = None) -> dict:
        """Vote on a blind comparison: a, b, tie or both_bad. Returns the reveal: names and figures.

        Args:
            battle_id: The battle_id that /arena returned.
            choice: a (model_a is better), b (model_b is better), tie or both_bad.
            comment: An optional note stored with the vote (at most 2,000 characters).
        """
        return cast_vote(comparer, arena, battle_id, owner_of(request), choice, comment)

    limits = {"concurrency_id": MODEL_EVENTS, "concurrency_limit": comparer.limits.concurrency}
    add_endpoint(at_boundary(arena_battle), BattleUpdate, api_name="arena", **limits)
    add_endpoint(at_boundary(arena_vote), Reveal, api_name="arena_vote")


@dataclass(frozen=True)
class ArenaPanel:
    """The blind-mode components, laid out; `wire_arena_panel` connects them once settings exist."""

    switch: gr.Checkbox
    named: gr.Column
    column: gr.Column
    chats: dict[str, gr.Chatbot]
    prompt: gr.Textbox
    send: gr.Button
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
                label: gr.Chatbot(label=NAMES[label], height=360, elem_id=f"chat-{label}") for label in LABELS
            }
        with gr.Row():
            prompt = gr.Textbox(
                label="Prompt", placeholder="Ask Model A and Model B…", scale=6, elem_id="arena-prompt"
            )
            send = gr.Button("Send", variant="primary", elem_id="arena-send")
            new = gr.Button("New battle", elem_id="arena-new")
        status = gr.Markdown(elem_id="arena-status")
        with gr.Row():
            votes = {
                c: gr.Button(label, size="sm", elem_id=f"arena-vote-{c}") for c, label in ARENA_VOTES.items()
            }
            comment = gr.Textbox(placeholder="Optional comment on your vote", show_label=False, scale=3)
        reveal_box = gr.Markdown(elem_id="arena-reveal")
    return ArenaPanel(
        switch, named, column, chats, prompt, send, new, status, votes, comment, reveal_box, gr.State("")
    )


def wire_arena_panel(
    panel: ArenaPanel, comparer: Comparer, arena: Arena, settings: list, after_vote=None
) -> None:
    """Connect the panel: `settings` are (system, max_tokens, temperature, top_p, stop) components."""
    p = panel
    p.switch.change(
        lambda on: (gr.Column(visible=not on), gr.Column(visible=on)),
        p.switch,
        [p.named, p.column],
        api_visibility="private",
    )
    chats = [p.chats[label] for label in LABELS]
    outputs = [*chats, p.prompt, p.status, p.reveal, p.battle]
    turn = {
        "fn": _turn_handler(comparer, arena, p),
        "inputs": [p.prompt, p.battle, *settings, *chats],
        "outputs": outputs,
        "concurrency_id": MODEL_EVENTS,
        "concurrency_limit": comparer.limits.concurrency,
        "api_visibility": "private",
    }
    runs = [p.send.click(**turn), p.prompt.submit(**turn)]
    p.new.click(lambda: _fresh(p), None, outputs[:2] + outputs[3:], cancels=runs, api_visibility="private")
    for choice, button in p.votes.items():
        event = button.click(
            _vote_handler(comparer, arena, p, choice),
            [p.battle, p.comment],
            [*chats, p.reveal, p.status, p.comment],
            api_visibility="private",
        )
        if after_vote is not None:
            after_vote(event)


def _turn_handler(comparer: Comparer, arena: Arena, p: ArenaPanel):
    @at_boundary
    def battle_turn(
        prompt, battle_id, system, max_tokens, temperature, top_p, stop, chat_a, chat_b, request: gr.Request
    ):
        options = comparer.options(int(max_tokens), float(temperature), float(top_p), stop or "")
        if not (prompt or "").strip():
            raise input_error("Type a prompt first.")
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
            comparer, arena, opened, prompt, system or "", options, asker_of(request)
        ):
            view = anonymous(battle, latest)
            yield {p.chats[label]: _with_turn(histories[label], prompt, view[label]) for label in LABELS}
        yield {p.status: WAITING, p.battle: battle.id}

    return battle_turn


def _fresh(p: ArenaPanel) -> dict:
    """A new battle: empty, unnamed panes."""
    chats = {p.chats[label]: gr.Chatbot([], label=NAMES[label]) for label in LABELS}
    return chats | {p.status: "", p.reveal: "", p.battle: ""}


def _open_battle(arena: Arena, battle_id: str, owner: str) -> Battle:
    """The session's current battle, or a new one if there is none or it was voted on."""
    if battle_id:
        try:
            battle = arena.get(battle_id, owner)
            if not battle.voted:
                return battle
        except ArenaError:
            pass
    return arena.start(owner)


def _with_turn(history, prompt: str, side: dict) -> list[dict]:
    answer = f"{side['text']}\n\n⚠️ {side['error']}" if side["error"] else side["text"]
    return [*(history or []), {"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


def _vote_handler(comparer: Comparer, arena: Arena, p: ArenaPanel, choice: str):
    @at_boundary
    def vote_blind(battle_id: str, comment: str, request: gr.Request):
        if not battle_id:
            raise input_error("Start a blind comparison first, then vote.")
        revealed = cast_vote(comparer, arena, battle_id, owner_of(request), choice, comment or "")
        gr.Info(f"Vote stored in MLflow: {ARENA_VOTES[choice]}")
        labels = {
            p.chats[label]: gr.Chatbot(
                label=f"{NAMES[label]}: {revealed[label]['side']} ({_ref(revealed[label])})"
            )
            for label in LABELS
        }
        status = "Revealed. Send a new prompt to start another blind comparison."
        return labels | {p.reveal: reveal_markdown(revealed), p.status: status, p.comment: ""}

    return vote_blind


def _ref(side: dict) -> str:
    return f"{side['model']['name']}/{side['model']['version']}"


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f} s"


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} tokens/s"
