"""Blind mode: the Chat tab's arena switch, and the /arena and /arena_vote endpoints.

The battle (which side is Model A) lives in `compare.arena.Arena`, on the server;
the page holds only the battle id, in a server-side `gr.State`. Everything a
battle sends before its vote goes through `compare.arena.anonymous`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypedDict

import gradio as gr

from compare.arena import LABELS, Arena, ArenaError, Battle, anonymous, lockstep
from compare.comparison import TURNS, judge
from compare.endings import NOT_VOTABLE_NOTE, Ending, ending_of, refusal
from compare.owners import Asker
from compare.requests import options_of
from compare.service import Comparer, new_comparison_id
from compare.votes import CHOICES
from ui import formatting as fmt
from ui.api import (
    MODEL_EVENTS,
    SIDES,
    JudgedInfo,
    Side,
    asker_of,
    at_boundary,
    input_error,
    prompt_messages,
    voter_of,
)
from ui.api_docs import add_endpoint
from ui.chat_events import StopSignals, stopper
from ui.checks import box_options, check_send
from ui.pacing import paced
from wrappers import GenerationOptions, Result

# Words, not emoji: a machine without an emoji font showed empty boxes.
ARENA_VOTES = {"a": "A is better", "b": "B is better", "tie": "Tie", "both_bad": "Both are bad"}
NAMES = {"model_a": "Model A", "model_b": "Model B"}
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
    stop: threading.Event | None = None,
) -> Iterator[tuple[Battle, dict[str, Result]]]:
    """Stream one turn of a battle in lockstep; the last item carries the updated battle.

    The two sides take turns (round-robin), not the processor-sharing schedule of a named
    comparison: there, the faster side finishes first, and that alone would name it.
    The turn ends as a comparison does (`stop` is the Stop button; a closed stream, a client
    that cancelled or went away), and the battle keeps how it ended: only a finished turn
    takes the vote.
    """
    conversations = turn_conversations(battle, prompt, system)
    comparison_id, latest = new_comparison_id(), {}
    arena_tag = {"arena": "true"}
    updates = comparer.compare(
        conversations, options, comparison_id, asker, tags=arena_tag, stop=stop, schedule=TURNS
    )
    try:
        with contextlib.closing(updates):
            for latest in paced(lockstep(updates), comparer.limits.stream_interval_s):
                yield battle, latest
    except GeneratorExit:
        arena.add_turn(battle, conversations, latest, comparison_id, Ending.ABANDONED)
        raise
    ending = ending_of(latest, stop is not None and stop.is_set())
    yield arena.add_turn(battle, conversations, latest, comparison_id, ending), latest


def turn_conversations(battle: Battle, prompt: str, system: str) -> dict[str, list[dict[str, str]]]:
    """Each side's conversation for the battle's next turn."""
    opening = prompt_messages(prompt, system)  # the system prompt (if any) and the prompt
    return {
        side: [*battle.conversations[side], opening[-1]] if battle.conversations else opening
        for side in SIDES
    }


def blind_payload(battle: Battle, latest: dict[str, Result]) -> dict:
    """The API's view of a battle in progress: no names, no figures."""
    view = anonymous(battle, latest)
    return {"battle_id": battle.id, **view, "done": all(view[label]["done"] for label in LABELS)}


def cast_vote(
    comparer: Comparer, arena: Arena, battle_id: Any, owner: str, voter: str, choice: Any, comment: Any
) -> dict:
    """Store a blind vote (with the sides shown as A and B) and reveal the battle.

    Only on a last turn that finished; the service's ballot box admits one vote per battle, so
    votes sent at once store one and refuse the others, which store nothing.
    """
    battle, choice, comment = votable(comparer, arena, battle_id, owner, choice, comment)
    side = battle.side_of(choice)
    value = CHOICES[SIDES.index(side)] if side else choice
    metadata = {"blind": "true", "model_a": battle.order[0], "model_b": battle.order[1], "shown": choice}
    trace_ids, _ = comparer.store_vote(battle.comparison_ids[-1], value, comment, voter, metadata)
    try:
        battle = arena.close(battle, choice)
    except ArenaError as exc:  # a second vote raced this one
        raise input_error(str(exc)) from exc
    return reveal(battle, trace_ids)


def votable(comparer: Comparer, arena: Arena, battle_id: Any, owner: str, choice: Any, comment: Any):
    """(battle, choice, comment) of a vote that may be cast, or the reason it may not: nothing is stored."""
    asked = comparer.check("arena_vote", {"battle_id": battle_id, "choice": choice, "comment": comment})
    try:
        battle = arena.get(asked.battle_id, owner)
        if not battle.comparison_ids:
            raise ArenaError("Send a prompt first, then vote.")
        if battle.voted:
            raise ArenaError("This blind comparison has already been voted on; start a new one.")
        if battle.ending is not Ending.FINISHED:
            raise ArenaError(refusal(battle.ending))
    except ArenaError as exc:
        raise input_error(str(exc)) from exc
    return battle, asked.choice, asked.comment


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
        usage, latency = side["usage"], side["latency"]
        lines.append(
            f"- **{NAMES[label]} was {side['side']}** ({fmt.code(_ref(side))}): "
            f"{usage['completion_tokens'] or '–'} tokens · total {_seconds(latency['total_s'])} · "
            f"first token {_seconds(latency['ttft_s'])} · decode {_rate(latency['tokens_per_s'])}"
        )
    winner = revealed["winner"] or revealed["choice"].replace("_", " ")
    summary = fmt.plain(revealed["verdict"]["summary"])  # it quotes the models' tokens
    return f"**Your vote**: {winner}\n\n" + "\n".join(lines) + f"\n\n{summary}"


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
        Vote with /arena_vote to learn which model was which, with their figures (only on a battle
        whose last turn finished: a failed or cancelled one cannot be voted on).
        The settings (prompt, system_prompt, max_tokens, ...) are described in ui/api_docs.SHARED.
        """
        fields = ("prompt", "system_prompt", "max_tokens", "temperature", "top_p", "stop")
        asked = comparer.check("prompt", {k: v for k, v in locals().items() if k in fields})
        started = arena.start(owner_of(request))  # only once the whole request is checked
        for battle, latest in play_turn(
            comparer, arena, started, asked.prompt, asked.system_prompt, options_of(asked), asker_of(request)
        ):
            yield blind_payload(battle, latest)

    def arena_vote(battle_id: str, choice: str, comment: str = "", request: gr.Request = None) -> dict:
        """Vote on a blind comparison: a, b, tie or both_bad. Returns the reveal: names and figures.

        Args:
            battle_id: The battle_id that /arena returned.
            choice: a (model_a is better), b (model_b is better), tie or both_bad.
            comment: An optional note stored with the vote (at most 2,000 characters).
        """
        return cast_vote(comparer, arena, battle_id, owner_of(request), voter_of(request), choice, comment)

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
    p.new.click(lambda: _fresh(p), None, outputs[:2] + outputs[3:], cancels=runs, api_visibility="private")
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


def _ref(side: dict) -> str:
    return f"{side['model']['name']}/{side['model']['version']}"


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f} s"


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} tokens/s"
