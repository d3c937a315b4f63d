"""Blind mode's battles and the /arena and /arena_vote endpoints (the panel is `ui/arena_panel.py`).

The battle (which side is Model A) lives in `compare.arena.Arena`, on the server;
the page holds only the battle id, in a server-side `gr.State`. Everything a
battle sends before its vote goes through `compare.arena.anonymous`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any, TypedDict

import gradio as gr

from compare.arena import LABELS, Arena, ArenaError, Battle, anonymous, lockstep
from compare.comparison import TURNS, judge
from compare.endings import Ending, ending_of, refusal
from compare.owners import Asker
from compare.requests import options_of
from compare.service import Comparer, new_comparison_id
from compare.votes import CHOICES
from ui import formatting as fmt
from ui.api import (
    MODEL_EVENTS,
    SIDES,
    asker_of,
    at_boundary,
    input_error,
    prompt_messages,
    voter_of,
)
from ui.api_docs import add_endpoint
from ui.api_types import JudgedInfo, Side
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
    trace_ids, _ = comparer.votes.store(battle.comparison_ids[-1], value, comment, voter, metadata)
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


def _ref(side: dict) -> str:
    return f"{side['model']['name']}/{side['model']['version']}"


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f} s"


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} tokens/s"
