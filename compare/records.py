"""Every comparison on the record: MLflow traces, votes as feedback, and the table of votes.

Each model's answer becomes one trace in the app's experiment, tagged with
the comparison it belongs to and its owner (a hash of the logged-in user, or
of the browser or client session), so the pair is found together and only
its owner sees it in History or votes on it. Every answer is first written
to a durable local spool (`spool.py`) before it is returned; a background
thread turns spooled records into traces while no model is generating (or
after a short wait), since on two cores writing during a generation slows it
down. A failure to record only produces a notice (`Recorder.notice`), never
a failed chat, and the record stays in the spool until it is written.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import AssessmentSource
from mlflow.tracing.constant import SpanAttributeKey, TokenUsageKey, TraceMetadataKey

from compare.spool import Entry, Spool
from compare.turns import Answer, Turn, turns_from_sent
from wrappers.errors import public_text
from wrappers.options import GenerationOptions
from wrappers.registry import EXPERIMENT
from wrappers.results import ModelRef, Result

CHOICES = ("transformers", "onnx", "tie", "both_bad")  # a side's name means that side is better
ALIASES = {"left": "transformers", "right": "onnx"}  # the older names, still accepted and read
SIDES = ("transformers", "onnx")
WINNERS = {"left": "transformers", "right": "onnx", "transformers": "transformers", "onnx": "onnx"}
VOTE = "preference"  # the feedback's name on both traces of a comparison
MAX_ATTEMPTS = 3  # per process; a record that keeps failing waits in the spool for the next start
UNENCODABLE = re.compile("[\ud800-\udfff]")  # lone surrogates: UTF-8 cannot store them


@dataclass(frozen=True)
class Request:
    """One answered request, as it will be traced."""

    comparison_id: str
    side: str
    messages: list[dict[str, str]]
    options: GenerationOptions
    result: Result
    started_ns: int
    pair: dict[str, str]  # side -> "name/version" of both models compared
    owner: str = ""  # owner_id() of who asked; "" only for requests nobody may vote on
    user: str = ""  # the logged-in user's name, for the operator's view in MLflow
    tags: dict[str, str] = field(default_factory=dict)  # e.g. {"arena": "true"} for a blind comparison


@dataclass(frozen=True)
class Asker:
    """Who made a request: `owner` (see `owner_id`) and, with login on, the user's name."""

    owner: str
    user: str = ""

    @classmethod
    def of(cls, username: str | None, session_hash: str | None) -> Asker:
        return cls(owner_id(username, session_hash), username or "")


class RecordError(Exception):
    """A record could not be written to MLflow."""


def owner_id(username: str | None, session_hash: str | None) -> str:
    """Who a request belongs to: the logged-in user, else the session; hashed, safe in a filter.

    Without either, a fresh id: nobody else can ever claim the request.

    >>> owner_id("ml", "abc") == owner_id("ml", "xyz") != owner_id(None, "abc")
    True
    """
    key = f"user:{username}" if username else f"session:{session_hash or uuid.uuid4().hex}"
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:32]


def sanitized(value: Any) -> Any:
    """A JSON-safe copy where text UTF-8 cannot store (lone surrogates) becomes U+FFFD.

    >>> sanitized({"a": ["x\\ud800"], "b": 1})
    {'a': ['x\\ufffd'], 'b': 1}
    """
    if isinstance(value, str):
        return UNENCODABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {sanitized(str(k)): sanitized(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [sanitized(v) for v in value]
    return value


def trace_payload(request: Request, attributes: dict | None = None) -> dict[str, Any]:
    """Everything one trace holds, as sanitized JSON: what the spool keeps and the writer logs.

    A CHAT_MODEL span with its token usage where MLflow reads it (`trace.info.token_usage`, the
    UI's Token Usage chart), linked to the registered version's logged model, whose page in
    MLflow then lists the trace.
    """
    result, model = request.result, request.result.model
    model_id = logged_model_id(model)
    tags = {
        "comparison_id": request.comparison_id,
        "side": request.side,
        "model": f"{model.name}/{model.version}",
        "owner": request.owner,
        **({"user": request.user} if request.user else {}),
        **request.tags,
        **{f"model.{side}": ref for side, ref in request.pair.items()},
    }
    return sanitized(
        {
            "name": f"{request.side} {model.name}",
            "inputs": {"messages": request.messages, "settings": asdict(request.options)},
            "attributes": {
                "model_uri": model.uri,
                **asdict(result.latency),
                **_usage(result),
                **(attributes or {}),
            },
            "metadata": {TraceMetadataKey.MODEL_ID: model_id} if model_id else None,
            "tags": tags,
            "outputs": {"text": result.text, "usage": asdict(result.usage), "response": result.response},
            "error": result.error,
            "start_ns": request.started_ns,
            "end_ns": request.started_ns + int((result.latency.total_s or 0) * 1e9),
        }
    )


class Recorder:
    """Spools every record at once, writes traces off the request path, reports trouble."""

    def __init__(self, spool_dir: Path, max_wait_s: float = 10.0) -> None:
        _export_synchronously()
        self.spool = Spool(spool_dir)
        self._failures: Counter[int] = Counter()  # spool entry id -> failed attempts here
        self._write_lock = threading.Lock()
        self._idle = threading.Condition()
        self._wake = threading.Event()
        self._generating = 0
        self._max_wait_s = max_wait_s
        self.notice: str | None = None
        if self.spool.replayed_up_to:
            self._wake.set()  # a crash left records: replay them
        threading.Thread(target=self._work, name="trace-recorder", daemon=True).start()

    @contextlib.contextmanager
    def generating(self):
        """Mark a generation in progress; traces wait for it to end."""
        with self._idle:
            self._generating += 1
        try:
            yield
        finally:
            with self._idle:
                self._generating -= 1
                self._idle.notify_all()

    def record(self, request: Request) -> None:
        """Put the record on disk now; the trace follows when the models are idle."""
        try:
            self.spool.put(request.comparison_id, trace_payload(request))
        except Exception as exc:  # a full or read-only disk: say so, keep chatting
            self._report(f"Recording failed, this answer is not kept ({type(exc).__name__}: {exc}).")
            return
        self._wake.set()

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every spooled record has been written, or tried at least once."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        while time.monotonic() < deadline and any(not self._failures[e.id] for e in self.spool.entries()):
            time.sleep(0.02)

    def comparison(self, comparison_id: str) -> tuple[str | None, list[str]]:
        """(owner, trace ids) of a comparison, writing its spooled records first."""
        for entry in self.spool.entries(comparison_id):
            self._write(entry)
        traces = _search(f"tags.comparison_id = '{comparison_id}'", include_spans=False)
        owners = {t.info.tags.get("owner") for t in traces}
        return (owners.pop() if len(owners) == 1 else None), [t.info.trace_id for t in traces]

    def _work(self) -> None:
        while True:
            self._wake.wait(timeout=5.0)  # retries failed records every few seconds
            self._wake.clear()
            with self._idle:
                waited = self._idle.wait_for(lambda: self._generating == 0, timeout=self._max_wait_s)
            for entry in self.spool.entries():
                if self._failures[entry.id] >= MAX_ATTEMPTS:
                    continue
                if waited and self._generating:  # a generation started: let it run alone
                    self._wake.set()
                    break
                self._write(entry)

    def _write(self, entry: Entry) -> None:
        with self._write_lock:
            if not self.spool.contains(entry.id):
                return  # written meanwhile (a vote writes its comparison at once)
            try:
                if entry.id > self.spool.replayed_up_to or not _already_written(entry.payload):
                    write_payload(entry.payload)
                self.spool.remove(entry.id)
                self._failures.pop(entry.id, None)
                if not self._failures:
                    self.notice = None
            except Exception as exc:  # the store is down or refuses: keep the record, keep chatting
                self._failures[entry.id] += 1
                reason = f"{type(exc).__name__}: {exc}"[:300]
                self.spool.failed(entry.id, reason)
                waiting = self.spool.count()
                self._report(
                    f"Tracing is unavailable ({reason}); {waiting} answers wait in the local spool "
                    "and will be written when the store accepts them. Chatting continues."
                )

    def _report(self, notice: str) -> None:
        if notice != self.notice:
            print(notice, file=sys.stderr, flush=True)
        self.notice = public_text(notice)  # visitors read it: no server folders


class _ExportWarnings(logging.Handler):
    """MLflow's exporter logs a failed write and carries on; this catches the reason."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def write_trace(request: Request, attributes: dict | None = None) -> str:
    """Log one request as an MLflow trace now; return its id, or raise `RecordError`."""
    return write_payload(trace_payload(request, attributes))


def write_payload(payload: dict[str, Any]) -> str:
    """Log one spooled record as an MLflow trace; return its id, or raise `RecordError`."""
    _export_synchronously()
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    exporter_log = logging.getLogger("mlflow.tracing.export")
    caught = _ExportWarnings()
    exporter_log.addHandler(caught)
    try:
        span = mlflow.start_span_no_context(
            name=payload["name"],
            span_type="CHAT_MODEL",
            inputs=payload["inputs"],
            attributes=payload["attributes"],
            metadata=payload.get("metadata"),
            tags=payload["tags"],
            experiment_id=experiment.experiment_id if experiment else None,
            start_time_ns=payload["start_ns"],
        )
        error = payload["error"]
        span.end(
            outputs=payload["outputs"],
            status="ERROR" if error else "OK",
            attributes={"error": error} if error else None,
            end_time_ns=payload["end_ns"],
        )
    finally:
        exporter_log.removeHandler(caught)
    trace = mlflow.get_trace(span.trace_id, silent=True)
    if trace is None or not trace.data.spans:
        raise RecordError("; ".join(caught.messages) or "MLflow did not store the trace.")
    return span.trace_id


def _usage(result: Result) -> dict:
    """MLflow's token-usage attribute; omitted while a count is unknown (never a guess)."""
    usage = result.usage
    counts = (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)
    if None in counts:
        return {}
    keys = (TokenUsageKey.INPUT_TOKENS, TokenUsageKey.OUTPUT_TOKENS, TokenUsageKey.TOTAL_TOKENS)
    return {SpanAttributeKey.CHAT_USAGE: dict(zip(keys, counts, strict=True))}


@functools.lru_cache(maxsize=64)
def _model_id(name: str, version: str) -> str | None:
    """A local store leaves `model_id` empty; the source is then the logged model, `models:/m-...`."""
    found = MlflowClient().get_model_version(name, version)
    source = found.source or ""
    from_source = source.removeprefix("models:/") if source.startswith("models:/m-") else None
    return found.model_id or from_source


def logged_model_id(model: ModelRef) -> str | None:
    """The logged model (`m-...`) behind a registered version; None for a remote pane or an old store."""
    if not (model.name and model.version):
        return None
    try:
        return _model_id(model.name, model.version)
    except Exception:  # not registered in this store: the trace is still written, unlinked
        return None


def _export_synchronously() -> None:
    """Export in the caller's thread, at the moment it chooses, not on MLflow's own queue."""
    if os.environ.get("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING") != "false":
        os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"
        mlflow.tracing.reset()


def _already_written(payload: dict[str, Any]) -> bool:
    """Whether a replayed record reached MLflow before the crash (then it is not written twice)."""
    tags = payload["tags"]
    query = f"tags.comparison_id = '{tags['comparison_id']}' and tags.side = '{tags['side']}'"
    return bool(_search(query, include_spans=False))


def canonical_choice(choice: object) -> str:
    """A vote's choice by side name; `left`/`right` are aliases of the first/second side.

    >>> canonical_choice("left"), canonical_choice("onnx")
    ('transformers', 'onnx')
    """
    choice = ALIASES.get(choice, choice) if isinstance(choice, str) else choice
    if choice not in CHOICES:
        names = ", ".join([*CHOICES, *ALIASES])
        raise ValueError(f"choice must be one of {names}, got {choice!r}.")
    return choice


def log_vote(
    trace_ids: list[str], choice: str, comment: str = "", metadata: dict[str, str] | None = None
) -> str | None:
    """Store a human vote as feedback on both traces of a comparison; return the earlier vote, if any.

    `metadata` says how the vote was cast: a blind vote carries `blind: "true"` and the
    sides shown as Model A and Model B (`model_a`, `model_b`).
    """
    choice = canonical_choice(choice)
    if not trace_ids:
        raise ValueError("No comparison of yours has that id.")
    blind = (metadata or {}).get("blind") == "true"
    if not blind and mlflow.get_trace(trace_ids[0]).info.tags.get("arena") == "true":
        raise ValueError("That comparison was blind: its vote goes through /arena_vote, once.")
    previous = previous_vote(trace_ids[0])
    source = AssessmentSource(source_type="HUMAN", source_id="phi3-compare-app")
    for trace_id in trace_ids:
        mlflow.log_feedback(
            trace_id=trace_id,
            name=VOTE,
            value=choice,
            rationale=sanitized(comment) or None,
            source=source,
            metadata=metadata,
        )
    return previous


def previous_vote(trace_id: str) -> str | None:
    """The latest vote already stored on a trace, by side name."""
    trace = mlflow.get_trace(trace_id)
    votes = [a for a in (trace.info.assessments if trace else []) if a.name == VOTE and a.valid is not False]
    if not votes:
        return None
    latest = max(votes, key=lambda a: a.create_time_ms or 0).value
    return ALIASES.get(latest, latest)


def vote_table() -> pd.DataFrame:
    """Every comparison's latest vote, as the table `compare.leaderboard` rates.

    Columns: `comparison_id`, `model_a`, `model_b` ("name/version"), `outcome` (`a`, `b`,
    `tie`, `both_bad`), `blind`. A named vote has the transformers side as Model A; a
    blind one, the side that was shown as Model A.
    """
    rows = [_vote_row(trace) for trace in _voted_traces()]
    columns = ["comparison_id", "model_a", "model_b", "outcome", "blind"]
    return pd.DataFrame([row for row in rows if row], columns=columns)


def _voted_traces():
    """Every voted comparison's transformers trace, however old (no window of recent traces)."""
    return _search(f"tags.side = 'transformers' AND feedback.{VOTE} IS NOT NULL", include_spans=False)


def _vote_row(trace) -> list | None:
    votes = [a for a in trace.info.assessments if a.name == VOTE]
    if not votes:
        return None
    vote, tags = votes[-1], trace.info.tags  # the latest vote counts
    models = {side: tags.get(f"model.{side}") for side in SIDES}
    if not all(models.values()) or any(m.startswith("None/") for m in models.values()):
        return None  # a side that never loaded has no version to rate
    metadata = vote.metadata or {}
    blind = metadata.get("blind") == "true"
    order = (metadata.get("model_a"), metadata.get("model_b")) if blind else SIDES
    if set(order) != set(SIDES):
        return None
    winner = WINNERS.get(vote.value)
    outcome = vote.value if winner is None else ("a" if winner == order[0] else "b")
    return [tags.get("comparison_id"), models[order[0]], models[order[1]], outcome, blind]


def recent_comparisons(owner: str | None, limit: int = 50) -> pd.DataFrame:
    """The latest comparisons of `owner` (None: everyone's), one row per comparison, with both answers."""
    mine = "" if owner is None else f" and tags.owner = '{owner}'"
    latest = {"max_results": limit, "order_by": ["timestamp_ms DESC"]}
    onnx = {t.info.tags.get("comparison_id"): t for t in _search(f"tags.side = 'onnx'{mine}", **latest)}
    rows = []
    for trace in _search(f"tags.side = 'transformers'{mine}", **latest):
        messages = (trace.data.request or {}) if hasattr(trace, "data") else {}
        votes = [a.value for a in trace.info.assessments if a.name == VOTE]
        comparison_id = trace.info.tags.get("comparison_id")
        if trace.info.tags.get("arena") == "true" and not votes:
            continue  # a blind comparison shows its answers beside the names only after its vote
        rows.append(
            {
                "time": pd.Timestamp(trace.info.request_time, unit="ms"),
                "comparison_id": comparison_id,
                "transformers": trace.info.tags.get("model.transformers"),
                "onnx": trace.info.tags.get("model.onnx"),
                "last prompt": _last_user_message(messages),
                "transformers answer": answer_text(trace),
                "onnx answer": answer_text(onnx[comparison_id]) if comparison_id in onnx else "",
                "vote": ALIASES.get(votes[-1], votes[-1]) if votes else "",
            }
        )
    return pd.DataFrame(rows)


def _search(filter_string: str, **kwargs) -> list:
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    return mlflow.search_traces(
        locations=[experiment.experiment_id], filter_string=filter_string, return_type="list", **kwargs
    )


def reopened(comparison_id: str, owner: str | None) -> tuple[str, list[Turn]]:
    """A past comparison of `owner` (None: anyone's) as the Chat tab's (system prompt, turns).

    Unknown, or someone else's: no turns, so ids cannot be probed.
    """
    mine = "" if owner is None else f" and tags.owner = '{owner}'"
    traces = _search(f"tags.comparison_id = '{comparison_id}'{mine}")
    by_side = {t.info.tags.get("side"): t for t in traces if t.info.tags.get("side") in SIDES}
    sent = {side: (as_json(t.data.request) or {}).get("messages", []) for side, t in by_side.items()}
    last = {side: Answer(*_text_and_error(t)) for side, t in by_side.items()}
    return turns_from_sent(sent, last) if by_side else ("", [])


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
