"""A conversation as a JSON file: export it, read it back (checked), and replay it.

The file holds what a reader needs to trust or repeat a comparison: the
settings, both sides' conversations turn by turn (each prompt and both
answers), each answer's figures (usage, latency) where this server measured
them, and the registered model versions that answered.

Reading is strict and bounded: the file is one schema (`conversation_schema`,
built on `wrappers/schema.py` with the server's limits), its nesting is refused
before the JSON parser runs, the whole file is checked before any of it is
used, and a mistake is named with its place in the file, in the words the API
uses ("turns[2].prompt must be text that is not blank, ..."). A replay sends
the prompts again, in order, to the current models with the file's settings,
each side continuing its own new conversation, and says per turn and side
whether the answer is the one recorded.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, create_model

from compare.comparison import first_difference
from compare.requests import schemas
from compare.turns import ERROR, OK, Answer, Turn
from wrappers.limits import Limits
from wrappers.options import GenerationOptions
from wrappers.results import Result
from wrappers.schema import InputError, Strict, bounded_json, check

FORMAT = "phi3-mlflow-compare/conversation"
VERSION = 1
MAX_BYTES = Limits().max_conversation_bytes
MAX_TURNS = Limits().max_conversation_turns
SIDES = ("transformers", "onnx")
SETTINGS = ("system_prompt", "max_tokens", "temperature", "top_p", "stop")
NAME = Annotated[str, StringConstraints(max_length=500)]
COUNT = Field(None, ge=0, description="a whole number of at least 0, or null")
SECONDS = Field(None, ge=0.0, description="a number of at least 0, or null")
NOTE = Field(None, description="text of at most 2,000 characters, or null")


class UsageRecord(Strict):
    prompt_tokens: int | None = COUNT
    completion_tokens: int | None = COUNT
    total_tokens: int | None = COUNT


class LatencyRecord(Strict):
    total_s: float | None = SECONDS
    ttft_s: float | None = SECONDS
    tokens_per_s: float | None = SECONDS
    network_s: float | None = SECONDS


class ModelRecord(Strict):
    """A registered model version; a side that failed to load has only its `error`."""

    name: NAME | None = Field(None, description="text of at most 500 characters, or null")
    version: NAME | None = Field(None, description="text of at most 500 characters, or null")
    uri: NAME | None = Field(None, description="text of at most 500 characters, or null")
    error: Annotated[str, StringConstraints(max_length=2000)] | None = NOTE


class AnswerRecord(Strict):
    text: str = Field(description="text")  # bounded by the file's size
    usage: UsageRecord | None = Field(None, description="an object of token counts, or null")
    latency: LatencyRecord | None = Field(None, description="an object of times in seconds, or null")
    model: ModelRecord | None = Field(None, description="an object naming the model version, or null")
    error: Annotated[str, StringConstraints(max_length=2000)] | None = NOTE


class Answers(Strict):
    transformers: AnswerRecord = Field(description="the transformers side's answer: an object with text")
    onnx: AnswerRecord = Field(description="the onnx side's answer: an object with text")


class Models(Strict):
    transformers: ModelRecord | None = Field(None, description="an object naming the model version, or null")
    onnx: ModelRecord | None = Field(None, description="an object naming the model version, or null")


@cache
def conversation_schema(limits: Limits) -> type[Strict]:
    """The file's schema on a server with `limits`: its settings are checked as any request's."""
    request = schemas(limits).prompt
    turn = create_model(
        "TurnRecord",
        __base__=Strict,
        prompt=(request.model_fields["prompt"].annotation, request.model_fields["prompt"]),
        answers=(Answers, Field(description="an object with an answer for each of transformers, onnx")),
    )
    settings = create_model(
        "FileSettings",
        __base__=schemas(limits).settings,
        system_prompt=(str, request.model_fields["system_prompt"]),
    )
    return create_model(
        "ConversationFile",
        __base__=Strict,
        format=(Literal[FORMAT], Field(description=f"{FORMAT!r}, as in a file exported by this app")),
        version=(Literal[VERSION], Field(description=f"{VERSION}, the only version known here")),
        exported_at=(NAME | None, Field(None, description="a date as text, or null")),
        settings=(settings, Field(description="an object with " + ", ".join(SETTINGS))),
        models=(Models | None, Field(None, description="an object with transformers and onnx, or null")),
        turns=(
            list[turn],
            Field(
                min_length=1,
                max_length=limits.max_conversation_turns,
                description=f"a list of 1 to {limits.max_conversation_turns} turns (prompt and answers)",
            ),
        ),
    )


class ConversationError(InputError):
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


def read_conversation(data: bytes | str, limits: Limits | None = None) -> dict:
    """A checked conversation from the file's bytes, or a `ConversationError` saying what is wrong.

    The whole file is checked (size, nesting, every field against `limits`) before any of it is used.
    """
    limits = limits or Limits()
    try:
        content = bounded_json(data, limits.max_conversation_bytes, "The file")
        if not isinstance(content, dict) or content.get("format") != FORMAT:
            raise InputError(
                f"This is not a conversation exported by this app (its 'format' is not {FORMAT!r})."
            )
        return check(conversation_schema(limits), content).model_dump()
    except InputError as exc:
        raise ConversationError(str(exc)) from None


def options_of(content: Mapping[str, Any]) -> GenerationOptions:
    """The generation options of a conversation that `read_conversation` checked."""
    settings = content["settings"]
    return GenerationOptions(
        settings["max_tokens"], settings["temperature"], settings["top_p"], settings["stop"]
    )


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
