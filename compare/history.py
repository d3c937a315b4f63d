"""History: past comparisons read back from their traces, as a table and as the Chat tab's turns.

Every comparison is listed, however it ended (`compare/endings.py`): the `ended` column
labels the ones that cannot be voted on ("⏹ stopped: no vote", ...).
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

import pandas as pd

from compare.endings import LABELS, comparison_ending
from compare.traces import search
from compare.turns import Answer, Turn, turns_from_sent
from compare.votes import ALIASES, SIDES, standing_vote
from wrappers.options import GenerationOptions
from wrappers.results import Latency, ModelRef, Result, Usage


def recent_comparisons(owner: str | None, limit: int = 50) -> pd.DataFrame:
    """The latest comparisons of `owner` (None: everyone's), one row per comparison, with both answers.

    `ended` labels how each ended (`ending` is the `compare.endings.Ending` value); `vote`
    is the vote that stands, if any.
    """
    mine = "" if owner is None else f" and tags.owner = '{owner}'"
    latest = {"max_results": limit, "order_by": ["timestamp_ms DESC"]}
    onnx = {t.info.tags.get("comparison_id"): t for t in search(f"tags.side = 'onnx'{mine}", **latest)}
    rows = []
    for trace in search(f"tags.side = 'transformers'{mine}", **latest):
        messages = (trace.data.request or {}) if hasattr(trace, "data") else {}
        vote = standing_vote(trace.info.assessments)
        comparison_id = trace.info.tags.get("comparison_id")
        if trace.info.tags.get("arena") == "true" and vote is None:
            continue  # a blind comparison shows its answers beside the names only after its vote
        ending = comparison_ending([t.info for t in (trace, onnx.get(comparison_id)) if t is not None])
        rows.append(
            {
                "time": pd.Timestamp(trace.info.request_time, unit="ms"),
                "comparison_id": comparison_id,
                "transformers": trace.info.tags.get("model.transformers"),
                "onnx": trace.info.tags.get("model.onnx"),
                "last prompt": _last_user_message(messages),
                "transformers answer": answer_text(trace),
                "onnx answer": answer_text(onnx[comparison_id]) if comparison_id in onnx else "",
                "ended": LABELS[ending],
                "ending": ending.value,
                "vote": "" if vote is None else ALIASES.get(vote.value, vote.value),
            }
        )
    return pd.DataFrame(rows)


def reopened(comparison_id: str, owner: str | None) -> tuple[str, list[Turn], dict[str, Result]]:
    """A past comparison of `owner` (None: anyone's) as the Chat tab's (system prompt, turns), and
    each side's last answer as its trace recorded it (`recorded_result`), for the metrics and verdict.

    Unknown, or someone else's: no turns, so ids cannot be probed.
    """
    mine = "" if owner is None else f" and tags.owner = '{owner}'"
    traces = search(f"tags.comparison_id = '{comparison_id}'{mine}")
    by_side = {t.info.tags.get("side"): t for t in traces if t.info.tags.get("side") in SIDES}
    sent = {side: (as_json(t.data.request) or {}).get("messages", []) for side, t in by_side.items()}
    last = {side: Answer(*_text_and_error(t)) for side, t in by_side.items()}
    if not by_side:
        return "", [], {}
    return *turns_from_sent(sent, last), {side: recorded_result(t) for side, t in by_side.items()}


def recorded_result(trace) -> Result:
    """A side's final `Result` as far as its trace holds it: text, per-token pieces (traces
    written before they were kept have none), usage, latency, model, settings and error.
    The raw output and the token ids are not recorded."""
    outputs = as_json(trace.data.response) or {}
    inputs = as_json(trace.data.request) or {}
    attributes = trace.data.spans[0].attributes if trace.data.spans else {}
    text, error = _text_and_error(trace)
    name, _, version = (trace.info.tags.get("model") or "").rpartition("/")
    return Result(
        text=text,
        response=outputs.get("response"),
        usage=Usage(**_known(outputs.get("usage"), Usage)),
        latency=Latency(**_known(attributes, Latency)),
        model=ModelRef(name or None, version or None),
        error=error,
        pieces=tuple(outputs.get("pieces") or ()),
        done=True,
        options=_options(inputs.get("settings")),
    )


def _known(values: dict | None, kind: type) -> dict:
    """The fields of dataclass `kind` that `values` holds."""
    return {f.name: (values or {})[f.name] for f in fields(kind) if f.name in (values or {})}


def _options(settings: dict | None) -> GenerationOptions | None:
    try:
        return GenerationOptions(**{**settings, "stop": tuple(settings.get("stop") or ())})
    except (TypeError, ValueError, AttributeError):  # an older or foreign record: unknown, not a guess
        return None


def answer_text(trace) -> str:
    """A side's answer as its trace recorded it, with the error if there was one."""
    text, error = _text_and_error(trace)
    return f"{text}\n⚠️ {error}".strip() if error else text


def _text_and_error(trace) -> tuple[str, str | None]:
    if not hasattr(trace, "data"):
        return "", None
    text = (as_json(trace.data.response) or {}).get("text") or ""
    return text, next((span.attributes.get("error") for span in trace.data.spans[:1]), None)


def as_json(value) -> Any:
    """A trace's request or response: MLflow hands either the JSON text or the object."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return {"text": value}
    return value


def _last_user_message(request) -> str:
    if isinstance(request, str):
        try:
            request = json.loads(request)
        except ValueError:
            return request[:80]
    messages = (request or {}).get("messages", [])
    users = [m.get("content", "") for m in messages if m.get("role") == "user"]
    return users[-1][:80] if users else ""
