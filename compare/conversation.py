"""A conversation as a JSON file: export it, read it back (checked), and replay it.

The file holds what a reader needs to trust or repeat a comparison: the
settings, both sides' conversations turn by turn (each prompt and both
answers), each answer's figures (usage, latency) where this server measured
them, and the registered model versions that answered.

Reading is strict and bounded: at most `MAX_BYTES` and `MAX_TURNS`, and every
problem is named with its place in the file ("turns[2].prompt must be a
string"). A replay sends the prompts again, in order, to the current models
with the file's settings, each side continuing its own new conversation, and
says per turn and side whether the answer is the one recorded.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from compare.comparison import first_difference
from compare.turns import ERROR, OK, Answer, Turn
from wrappers.options import GenerationOptions
from wrappers.results import Result

FORMAT = "phi3-mlflow-compare/conversation"
VERSION = 1
MAX_BYTES = 2_000_000
MAX_TURNS = 200
SIDES = ("transformers", "onnx")
SETTINGS = {"system_prompt": str, "max_tokens": int, "temperature": float, "top_p": float, "stop": list}


class ConversationError(ValueError):
    """A conversation file that cannot be read, with the reason and where."""


def export_conversation(
    settings: Mapping[str, Any], turns: list[Mapping[str, Any]], models: Mapping[str, Mapping[str, Any]]
) -> dict:
    """The file's content. A turn is {"prompt", "answers": {side: {"text", "usage", "latency", ...}}}."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": dict(settings),
        "models": {side: dict(models.get(side) or {}) for side in SIDES},
        "turns": [dict(turn) for turn in turns],
    }


def settings_of(system_prompt: str, options: GenerationOptions) -> dict:
    """The file's settings for a system prompt and generation options."""
    return {"system_prompt": system_prompt, **{k: v for k, v in asdict(options).items() if k in SETTINGS}}


def answer_of(result: Result | None, text: str) -> dict:
    """One side's answer in a turn: its text, and the figures when they are known."""
    if result is None:
        return {"text": text, "usage": None, "latency": None, "model": None, "error": None}
    public = result.to_dict()
    return {"text": text} | {key: public[key] for key in ("usage", "latency", "model", "error")}


def read_conversation(data: bytes | str) -> dict:
    """A checked conversation from the file's bytes, or a `ConversationError` saying what is wrong."""
    if len(data) > MAX_BYTES:
        raise ConversationError(
            f"The file is {len(data):,} bytes; a conversation file is at most {MAX_BYTES:,}."
        )
    try:
        content = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConversationError(f"The file is not JSON: {exc}") from exc
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise ConversationError(
            f"This is not a conversation exported by this app (its 'format' is not {FORMAT!r})."
        )
    if content.get("version") != VERSION:
        raise ConversationError(
            f"Conversation files of version {content.get('version')!r} are not known here."
        )
    _check_settings(content.get("settings"))
    _check_turns(content.get("turns"))
    return content


def options_of(content: Mapping[str, Any], max_tokens_limit: int) -> GenerationOptions:
    """The file's generation options, checked as any request's are."""
    settings = content["settings"]
    if not 1 <= settings["max_tokens"] <= max_tokens_limit:
        raise ConversationError(
            f"settings.max_tokens must be between 1 and {max_tokens_limit} on this server."
        )
    try:
        return GenerationOptions(
            settings["max_tokens"],
            float(settings["temperature"]),
            float(settings["top_p"]),
            tuple(settings["stop"]),
        )
    except ValueError as exc:
        raise ConversationError(f"settings: {exc}") from exc


class AnswerMemory:
    """Recent finished answers, by side and the exact conversation sent: an export's figures.

    Bounded (oldest forgotten first); an answer no longer here is exported without figures.
    """

    def __init__(self, capacity: int = 5000) -> None:
        self._answers: OrderedDict[str, Result] = OrderedDict()
        self._lock = threading.Lock()
        self._capacity = capacity

    def remember(self, side: str, messages: list[dict[str, str]], result: Result) -> None:
        key = _key(side, messages, result.text)
        with self._lock:
            self._answers[key] = result
            self._answers.move_to_end(key)
            while len(self._answers) > self._capacity:
                self._answers.popitem(last=False)

    def recall(self, side: str, messages: list[dict[str, str]], text: str) -> Result | None:
        with self._lock:
            return self._answers.get(_key(side, messages, text))


def _key(side: str, messages: list[dict[str, str]], text: str) -> str:
    plain = [[m["role"], m["content"]] for m in messages]
    return hashlib.sha256(json.dumps([side, plain, text]).encode()).hexdigest()


def turns_of(content: Mapping[str, Any]) -> list[Turn]:
    """The file's turns as the Chat tab holds them; a turn with an error is shown, not sent again."""
    turns = []
    for turn in content["turns"]:
        answers = {
            side: Answer(turn["answers"][side]["text"], _error(turn["answers"][side])) for side in SIDES
        }
        failed = any(answer.error for answer in answers.values())
        turns.append(Turn(turn["prompt"], answers, ERROR if failed else OK))
    return turns


def _error(answer: Mapping[str, Any]) -> str | None:
    error = answer.get("error")
    return error if isinstance(error, str) and error else None


def replay(
    content: Mapping[str, Any],
    compare: Callable[[dict[str, list[dict[str, str]]]], Result | dict[str, Result]],
) -> Iterator[dict]:
    """Send the file's prompts again, in order; yield one row per turn and side.

    `compare(conversations)` answers both sides and returns their final results. Each
    side continues its own replayed conversation, as it would in the app.
    """
    system = content["settings"]["system_prompt"]
    conversations = {
        side: [{"role": "system", "content": system}] if system.strip() else [] for side in SIDES
    }
    for number, turn in enumerate(content["turns"], start=1):
        for side in SIDES:
            conversations[side] = [*conversations[side], {"role": "user", "content": turn["prompt"]}]
        results = compare(conversations)
        for side in SIDES:
            result = results[side]
            recorded = turn["answers"][side]
            yield _replay_row(number, turn["prompt"], side, recorded, result)
            if not result.error:
                conversations[side] = [*conversations[side], {"role": "assistant", "content": result.text}]
            else:  # as in the app: a failed turn is left out, with its prompt
                conversations[side] = conversations[side][:-1]


def _replay_row(number: int, prompt: str, side: str, recorded: Mapping[str, Any], result: Result) -> dict:
    was, now = recorded["text"], result.text
    index = first_difference(tuple(was.split()), tuple(now.split()))
    same = "yes" if was == now else f"no: from word {index + 1}" if index is not None else "no: spacing only"
    latency = recorded.get("latency") or {}
    return {
        "turn": number,
        "prompt": prompt,
        "side": side,
        "recorded": was,
        "replayed": result.error and f"⚠️ {result.error}" or now,
        "same": "no: error" if result.error else same,
        "recorded_tokens_per_s": latency.get("tokens_per_s"),
        "replayed_tokens_per_s": result.latency.tokens_per_s,
        "model": f"{result.model.name}/{result.model.version}",
    }


def _check_settings(settings: Any) -> None:
    if not isinstance(settings, dict):
        raise ConversationError("'settings' must be an object with " + ", ".join(SETTINGS) + ".")
    for key, kind in SETTINGS.items():
        value = settings.get(key)
        numeric = kind is float and isinstance(value, int | float) and not isinstance(value, bool)
        if not (numeric or (isinstance(value, kind) and not isinstance(value, bool))):
            raise ConversationError(f"settings.{key} must be a {kind.__name__}, got {value!r}.")
    if not all(isinstance(stop, str) for stop in settings["stop"]):
        raise ConversationError("settings.stop must be a list of strings.")


def _check_turns(turns: Any) -> None:
    if not isinstance(turns, list) or not turns:
        raise ConversationError("'turns' must be a non-empty list of {prompt, answers}.")
    if len(turns) > MAX_TURNS:
        raise ConversationError(f"The file has {len(turns)} turns; at most {MAX_TURNS} are read.")
    for i, turn in enumerate(turns):
        where = f"turns[{i}]"
        if not isinstance(turn, dict):
            raise ConversationError(f"{where} must be an object with a prompt and answers.")
        if not isinstance(turn.get("prompt"), str) or not turn["prompt"].strip():
            raise ConversationError(f"{where}.prompt must be a non-empty string.")
        answers = turn.get("answers")
        if not isinstance(answers, dict) or set(SIDES) - set(answers):
            raise ConversationError(f"{where}.answers must have an answer for each of {', '.join(SIDES)}.")
        for side in SIDES:
            answer = answers[side]
            if not isinstance(answer, dict) or not isinstance(answer.get("text"), str):
                raise ConversationError(f"{where}.answers.{side}.text must be a string.")
