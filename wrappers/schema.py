"""One way to check what a visitor or a file sends: strict pydantic models, one message per mistake.

Every input (the settings, an API request, a conversation file) is a model built on
`Strict`: unknown keys are refused, numbers are finite and never coerced from text or
booleans, and each field's `description` states what it must be, with its limits
("a whole number from 1 to 512"). `check` validates the whole input before anything
runs, and `explain` turns the first mistake into one sentence that names the field's
place and repeats that description, so the Chat tab, the API, import and replay all
say the same words: "settings.max_tokens must be a whole number from 1 to 512, got 0."

JSON text from a visitor goes through `bounded_json`, which refuses deep nesting by a
scan of the text before the (recursive) parser runs.

Concession: only the first mistake is explained; the message says how many more there are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, TypeVar, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound=BaseModel)
MAX_JSON_DEPTH = 16  # a conversation file needs 5 levels; the parser recurses once per level
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string, its escapes included
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
CHUNK = 2**22
_SURROGATE = re.compile("[\ud800-\udfff]")


class InputError(ValueError):
    """Input that breaks its schema; the message names the field and what it must be."""


class Strict(BaseModel):
    """The base of every input schema: unknown keys refused, no coercion, finite numbers."""

    model_config = ConfigDict(
        extra="forbid", strict=True, allow_inf_nan=False, frozen=True, hide_input_in_errors=True
    )


def check(model: type[M], data: Any, where: str = "") -> M:
    """`data` validated as `model`, or `InputError` naming the first mistake.

    >>> from pydantic import Field
    >>> class Knob(Strict):
    ...     level: int = Field(1, ge=1, le=9, description="a whole number from 1 to 9")
    >>> check(Knob, {"level": 3}).level
    3
    >>> check(Knob, {"level": 0}, "knob")
    Traceback (most recent call last):
    wrappers.schema.InputError: knob.level must be a whole number from 1 to 9, got 0.
    """
    if not isinstance(data, Mapping):
        raise InputError(f"{where or 'The input'} must be an object, got {shown(data)}.")
    try:
        return model.model_validate(encodable(dict(data)))
    except ValidationError as exc:
        raise InputError(explain(exc, model, where, data)) from None


def explain(error: ValidationError, model: type[BaseModel], where: str = "", data: Any = None) -> str:
    """One sentence for the first mistake: its place, what it must be, and what it was."""
    errors = error.errors(include_url=False, include_input=False)
    first = errors[0]
    loc = first["loc"]
    path = _path(where, loc)
    others = len(errors) - 1
    more = f" ({others} more {'mistake' if others == 1 else 'mistakes'} after this one.)" if others else ""
    if first["type"] == "extra_forbidden":
        known = ", ".join(_fields_at(model, loc[:-1]))
        return f"{path} is not a known field; the fields are: {known}.{more}"
    if first["type"] == "missing":
        return f"{path} is missing: it must be {_description(model, loc) or 'given'}.{more}"
    if first["type"] == "value_error":  # a model's own rule, already worded for people
        return str(first["ctx"]["error"]) + more
    value = _value_at(data, loc)
    if first["type"] in ("model_type", "dict_type", "model_attributes_type"):
        requirement = "an object with " + ", ".join(_fields_at(model, loc))
    else:
        requirement = _description(model, loc) or first["msg"].lower()
    return f"{path} must be {requirement}, got {shown(value)}.{more}"


def encodable(value: Any) -> Any:
    """`value` with every lone surrogate in its text as U+FFFD, as the models and the store take it
    (pydantic cannot check such text against a length or a pattern).

    >>> encodable({"a": ["x\\ud800"]}) == {"a": ["x\\ufffd"]}
    True
    """
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {encodable(key): encodable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(encodable(item) for item in value)
    return value


def shown(value: Any) -> str:
    """A value as a message quotes it: short, and safe for any size.

    >>> shown(0), shown(10**400), shown("x" * 5000), shown([1, 2])
    ('0', 'a number of 401 digits', 'text of 5,000 characters', 'a list of 2 items')
    """
    if isinstance(value, bool | None):
        return json.dumps(value)
    if isinstance(value, int):
        digits = len(str(value)) if value.bit_length() < 10_000 else int(value.bit_length() * 0.30103) + 1
        return str(value) if digits <= 20 else f"a number of {digits} digits"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return (
            json.dumps(value, ensure_ascii=False)
            if len(value) <= 40
            else f"text of {len(value):,} characters"
        )
    if isinstance(value, list | tuple):
        return f"a list of {len(value)} items"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def bounded_json(text: str | bytes, max_bytes: int, what: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON text that a visitor sent, refusing it first if it is too large or too deep.

    >>> bounded_json('{"a": [1, "]]]"]}', 100, "The file")
    {'a': [1, ']]]']}
    >>> bounded_json("[" * 50 + "]" * 50, 1000, "The file")
    Traceback (most recent call last):
    wrappers.schema.InputError: The file nests 50 levels deep; at most 16 are read.
    """
    if len(text) > max_bytes:
        raise InputError(f"{what} is {len(text):,} bytes; at most {max_bytes:,} are read.")
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} is not UTF-8 text: {exc}") from None
    opened = text.count("[") + text.count("{")  # cheap: most texts cannot nest deeper than they open
    depth = 0 if opened <= max_depth else _depth(text)
    if depth > max_depth:
        raise InputError(f"{what} nests {depth:,} levels deep; at most {max_depth} are read.")
    try:
        return json.loads(text)
    except ValueError as exc:  # includes integers over Python's 4,300 digits
        raise InputError(f"{what} is not JSON: {exc}") from None


def _depth(text: str) -> int:
    """How deep the JSON text nests, by its brackets outside strings, without parsing it.

    >>> _depth('{"a": [[1], "[[["]}')
    3
    """
    signs = np.frombuffer(_STRING.sub("", text).encode().translate(None, _NOT_BRACKETS), dtype=np.uint8)
    deepest, level = 0, 0
    for start in range(0, len(signs), CHUNK):  # numpy, in chunks: a 40 MB body is scanned in a second
        chunk = signs[start : start + CHUNK]
        levels = level + np.cumsum(np.where((chunk == ord("[")) | (chunk == ord("{")), 1, -1), dtype=np.int64)
        deepest, level = max(deepest, int(levels.max())), int(levels[-1])
    return deepest


def _path(where: str, loc: tuple) -> str:
    """('turns', 2, 'prompt') -> 'turns[2].prompt', under `where` if given."""
    path = where
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or "The input"


def _field(model: Any, loc: tuple):
    """The pydantic field that `loc` ends in (list indexes stay on the list's field), or None."""
    field = None
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return field if isinstance(part, int) else None
        field = fields[part]
        model = _inner_model(field.annotation)
    return field


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """The model inside an annotation such as `Answer | None` or `list[Turn]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _description(model: type[BaseModel], loc: tuple) -> str | None:
    field = _field(model, loc)
    return field.description if field is not None else None


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    field = _field(model, loc) if loc else None
    inner = _inner_model(field.annotation) if field is not None else model
    return list(inner.model_fields) if inner is not None else []


def _value_at(data: Any, loc: tuple) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data
