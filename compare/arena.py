"""Blind comparisons: the two sides shown as Model A and Model B until the vote.

Which side is Model A is drawn at random per battle and kept here, on the
server, never sent to the client before the vote: an attacker can read every
API response, so a response may only carry what a voter may see.

What a voter sees while the battle is open:
- each side's answer text and whether it is done; nothing about the model
  (no name, version, usage, latency, raw output or chat-format response);
- whole words only while streaming, and an update only when every side still
  running has moved on: the two engines cut text into different pieces and
  take different times per step, and either would give the mapping away;
- an error as a shared message: each engine words its failures its own way.

A battle is owned by the session (or login) that started it; only the owner
may vote, once, and only on a last turn that finished (`compare/endings.py`):
a stopped, abandoned, timed-out or failed turn cannot be voted on, and is left
out of the conversations sent to the models. The vote reveals the mapping, the
names and the figures.
Battles live in memory (bounded); after a restart an open battle cannot be
voted on, and says so.
"""

from __future__ import annotations

import re
import secrets
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace

from compare.endings import Ending
from wrappers.results import Result

LABELS = ("model_a", "model_b")
ARENA_CHOICES = ("a", "b", "tie", "both_bad")
HIDDEN_ERROR = "This model could not answer. Vote, and the reason is shown with the names."
_LAST_SPACE = re.compile(r"\s(?=\S*$)")


class ArenaError(ValueError):
    """A battle that cannot be shown or voted on, with the reason."""


@dataclass(frozen=True)
class Battle:
    """One blind battle: which side is Model A, who may vote, and what was answered."""

    id: str
    order: tuple[str, str]  # the sides shown as Model A and Model B
    owner: str
    conversations: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    results: dict[str, Result] = field(default_factory=dict)  # the last turn's
    comparison_ids: tuple[str, ...] = ()  # one per turn
    ending: Ending = Ending.FINISHED  # how the last turn ended: only a finished one takes the vote
    voted: str | None = None

    def side_of(self, choice: str) -> str | None:
        """The side a choice (`a`, `b`, `tie`, `both_bad`) names; None for the others."""
        return {"a": self.order[0], "b": self.order[1]}.get(choice)


class Arena:
    """Open battles, kept server-side; bounded, oldest forgotten first."""

    def __init__(self, sides: tuple[str, str], capacity: int = 10_000) -> None:
        self._sides = sides
        self._battles: OrderedDict[str, Battle] = OrderedDict()
        self._lock = threading.Lock()
        self._capacity = capacity

    def start(self, owner: str) -> Battle:
        """A new battle with a fresh random order."""
        order = list(self._sides)
        secrets.SystemRandom().shuffle(order)
        battle = Battle(uuid.uuid4().hex, tuple(order), owner)
        self._store(battle)
        return battle

    def get(self, battle_id: str, owner: str) -> Battle:
        """The owner's battle, or a clear reason why not."""
        with self._lock:
            battle = self._battles.get(battle_id)
        if battle is None or battle.owner != owner:
            raise ArenaError(
                "No open blind comparison of yours has that id (they are kept in memory until "
                "the app restarts). Start a new one."
            )
        return battle

    def add_turn(
        self, battle: Battle, conversations, results, comparison_id: str, ending: Ending = Ending.FINISHED
    ) -> Battle:
        """Record a turn that ended: the answers, how it ended, and the conversations so far.

        A turn that did not finish (stopped, abandoned, a side failed) is left out of the
        conversations, with its prompt, on both sides alike; it cannot be voted on.
        """
        if ending is not Ending.FINISHED or any(results[side].error for side in self._sides):
            conversations = battle.conversations
        else:
            conversations = {
                side: [*conversations[side], {"role": "assistant", "content": results[side].text}]
                for side in self._sides
            }
        battle = replace(
            battle,
            conversations=conversations,
            results=dict(results),
            comparison_ids=(*battle.comparison_ids, comparison_id),
            ending=ending,
        )
        self._store(battle)
        return battle

    def close(self, battle: Battle, choice: str) -> Battle:
        """Mark the battle voted; a second vote is refused (it would no longer be blind)."""
        with self._lock:
            current = self._battles.get(battle.id)
            if current is None or current.voted:
                raise ArenaError("This blind comparison has already been voted on; start a new one.")
            closed = replace(current, voted=choice)
            self._battles[battle.id] = closed
        return closed

    def _store(self, battle: Battle) -> None:
        with self._lock:
            self._battles[battle.id] = battle
            self._battles.move_to_end(battle.id)
            while len(self._battles) > self._capacity:
                self._battles.popitem(last=False)


def anonymous(battle: Battle, latest: Mapping[str, Result]) -> dict[str, dict]:
    """What a voter may see of each side: text and whether it is done, as Model A and B.

    >>> battle = Battle("id", ("onnx", "transformers"), "me")
    >>> latest = {"transformers": Result(text="Hi the"), "onnx": Result(text="Hi", done=True)}
    >>> view = anonymous(battle, latest)
    >>> view["model_a"], view["model_b"]
    ({'text': 'Hi', 'error': None, 'done': True}, {'text': 'Hi ', 'error': None, 'done': False})
    """
    errors = {result.error for result in latest.values() if result.error}
    shared_error = errors.pop() if len(errors) == 1 and all(r.error for r in latest.values()) else None
    view = {}
    for label, side in zip(LABELS, battle.order, strict=True):
        result = latest.get(side, Result())
        error = (shared_error or HIDDEN_ERROR) if result.error else None
        text = result.text if result.done else _whole_words(result.text)
        view[label] = {"text": text, "error": error, "done": result.done}
    return view


def lockstep(updates: Iterator[dict[str, Result]]) -> Iterator[dict[str, Result]]:
    """Only the updates after which every side still running has moved on.

    A battle's `compare_stream` takes turns (one side's step, then the other's); between
    the two steps the client would see which side is the quicker one, and which goes first.
    """
    shown: dict[str, tuple[int, bool]] = {}  # side -> (pieces, done) at the last update let through
    pending = None
    for latest in updates:
        pending = latest
        progress = {side: (len(result.pieces), result.done) for side, result in latest.items()}
        running = [side for side in latest if not shown.get(side, (0, False))[1]]
        if all(progress[side] != shown.get(side, (0, False)) for side in running):
            shown, pending = progress, None
            yield latest
    if pending is not None:
        yield pending


def _whole_words(text: str) -> str:
    """The text up to its last whitespace: a word still growing is held back.

    >>> _whole_words("The capital of Spa")
    'The capital of '
    """
    match = _LAST_SPACE.search(text)
    return text[: match.end()] if match else ""
