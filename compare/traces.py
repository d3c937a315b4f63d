"""Writing one answer as an MLflow trace, and finding traces again.

Each model's answer becomes one trace in the app's experiment, tagged with the
comparison it belongs to and its owner (`owners.py`), so the pair is found
together and only its owner sees it in History or votes on it. `trace_payload`
is what the spool keeps; `write_payload` logs it. Votes (`votes.py`), History
(`history.py`) and the recorder (`recorder.py`) all read traces back with `search`.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.tracing.constant import SpanAttributeKey, TokenUsageKey, TraceMetadataKey

from wrappers.options import GenerationOptions
from wrappers.registry import EXPERIMENT
from wrappers.results import ModelRef, Result

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


class RecordError(Exception):
    """A record could not be written to MLflow."""


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
            "outputs": {
                "text": result.text,
                "usage": asdict(result.usage),
                "response": result.response,
                "pieces": list(result.pieces),  # per token: a reopened comparison's verdict needs them
            },
            "error": result.error,
            "start_ns": request.started_ns,
            "end_ns": request.started_ns + int((result.latency.total_s or 0) * 1e9),
        }
    )


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
    export_synchronously()
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


def export_synchronously() -> None:
    """Export in the caller's thread, at the moment it chooses, not on MLflow's own queue."""
    if os.environ.get("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING") != "false":
        os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"
        mlflow.tracing.reset()


def search(filter_string: str, **kwargs) -> list:
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    return mlflow.search_traces(
        locations=[experiment.experiment_id], filter_string=filter_string, return_type="list", **kwargs
    )
