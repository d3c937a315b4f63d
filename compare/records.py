"""Every comparison on the record: MLflow traces, votes as feedback, and the table of votes.

Each model's answer becomes one trace in the app's experiment, tagged with
the comparison it belongs to, so the pair is found together. Traces are
written by a background thread after the answer is complete, and only while
no model is generating (or after a short wait): on two cores, writing during
a generation would slow it down. A tracking store that is down only produces
a notice (`Recorder.notice`), never a failed chat.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import sys
import threading
import time
from dataclasses import asdict, dataclass, field

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import AssessmentSource
from mlflow.tracing.constant import SpanAttributeKey, TokenUsageKey, TraceMetadataKey

from wrappers.options import GenerationOptions
from wrappers.registry import EXPERIMENT
from wrappers.results import ModelRef, Result

CHOICES = ("left", "right", "tie", "both_bad")
SIDES = ("transformers", "onnx")
WINNERS = {"left": "transformers", "right": "onnx", "transformers": "transformers", "onnx": "onnx"}
VOTE = "preference"  # the feedback's name on both traces of a comparison


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
    tags: dict[str, str] = field(default_factory=dict)  # e.g. {"arena": "true"} for a blind comparison


class Recorder:
    """Writes traces off the request path; reports trouble instead of raising it."""

    def __init__(self, max_wait_s: float = 10.0) -> None:
        # Export in this recorder's own thread, at the moment it chooses, not on MLflow's queue.
        os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"
        mlflow.tracing.reset()
        self._queue: queue.Queue[Request | None] = queue.Queue(maxsize=1000)
        self._traces: dict[str, list[str]] = {}  # comparison id -> trace ids
        self._lock = threading.Lock()
        self._idle = threading.Condition()
        self._generating = 0
        self._max_wait_s = max_wait_s
        self.notice: str | None = None
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
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            self.notice = "Tracing is falling behind; some requests were not recorded."

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until everything queued so far is written (or has failed)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)

    def trace_ids(self, comparison_id: str) -> list[str]:
        self.flush()
        with self._lock:
            known = list(self._traces.get(comparison_id, []))
        return known or _search_trace_ids(comparison_id)

    def _work(self) -> None:
        while True:
            request = self._queue.get()
            with self._idle:
                self._idle.wait_for(lambda: self._generating == 0, timeout=self._max_wait_s)
            try:
                trace_id = write_trace(request)
                with self._lock:
                    self._traces.setdefault(request.comparison_id, []).append(trace_id)
                self.notice = None
            except Exception as exc:  # the store is down or refuses: keep chatting
                notice = f"Tracing is unavailable ({type(exc).__name__}: {exc}); chatting continues."
                if notice != self.notice:
                    print(notice, file=sys.stderr, flush=True)
                self.notice = notice
            finally:
                self._queue.task_done()


def write_trace(request: Request, attributes: dict | None = None) -> str:
    """Log one request as an MLflow trace; return its id.

    A CHAT_MODEL span with its token usage where MLflow reads it (`trace.info.token_usage`, the
    UI's Token Usage chart), linked to the registered version's logged model, whose page in
    MLflow then lists the trace.
    """
    result, model = request.result, request.result.model
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    model_id = logged_model_id(model)
    span = mlflow.start_span_no_context(
        name=f"{request.side} {model.name}",
        span_type="CHAT_MODEL",
        inputs={"messages": request.messages, "settings": asdict(request.options)},
        attributes={"model_uri": model.uri, **asdict(result.latency), **_usage(result), **(attributes or {})},
        metadata={TraceMetadataKey.MODEL_ID: model_id} if model_id else None,
        tags={
            "comparison_id": request.comparison_id,
            "side": request.side,
            "model": f"{model.name}/{model.version}",
            **{f"model.{side}": ref for side, ref in request.pair.items()},
            **request.tags,
        },
        experiment_id=experiment.experiment_id if experiment else None,
        start_time_ns=request.started_ns,
    )
    span.end(
        outputs={"text": result.text, "usage": asdict(result.usage), "response": result.response},
        status="ERROR" if result.error else "OK",
        attributes={"error": result.error} if result.error else None,
        end_time_ns=request.started_ns + int((result.latency.total_s or 0) * 1e9),
    )
    return span.trace_id  # MLflow exports it from a queue of its own (see Recorder.flush)


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


def log_vote(
    trace_ids: list[str], choice: str, comment: str = "", metadata: dict[str, str] | None = None
) -> None:
    """Store a human vote as feedback on both traces of a comparison.

    `metadata` says how the vote was cast: a blind vote carries `blind: "true"` and the
    sides shown as Model A and Model B (`model_a`, `model_b`).
    """
    if choice not in CHOICES:
        raise ValueError(f"choice must be one of {', '.join(CHOICES)}, got {choice!r}.")
    if not trace_ids:
        raise ValueError("No recorded comparison has that id.")
    blind = (metadata or {}).get("blind") == "true"
    if not blind and mlflow.get_trace(trace_ids[0]).info.tags.get("arena") == "true":
        raise ValueError("That comparison was blind: its vote goes through /arena_vote, once.")
    source = AssessmentSource(source_type="HUMAN", source_id="phi3-compare-app")
    for trace_id in trace_ids:
        mlflow.log_feedback(
            trace_id=trace_id,
            name=VOTE,
            value=choice,
            rationale=comment or None,
            source=source,
            metadata=metadata,
        )


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
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    return mlflow.search_traces(
        experiment_ids=[experiment.experiment_id],
        filter_string=f"tags.side = 'transformers' AND feedback.{VOTE} IS NOT NULL",
        return_type="list",
        include_spans=False,
    )


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


def recent_comparisons(limit: int = 50) -> pd.DataFrame:
    """The latest comparisons read back from MLflow, one row per comparison."""
    rows = []
    for trace in _left_traces(limit):
        messages = (trace.data.request or {}) if hasattr(trace, "data") else {}
        votes = [a.value for a in trace.info.assessments if a.name == VOTE]
        if trace.info.tags.get("arena") == "true" and not votes:
            continue  # a blind comparison shows its answers beside the names only after its vote
        rows.append(
            {
                "time": pd.Timestamp(trace.info.request_time, unit="ms"),
                "comparison_id": trace.info.tags.get("comparison_id"),
                "transformers": trace.info.tags.get("model.transformers"),
                "onnx": trace.info.tags.get("model.onnx"),
                "last prompt": _last_user_message(messages),
                "vote": votes[-1] if votes else "",
            }
        )
    return pd.DataFrame(rows)


def _left_traces(limit: int = 1000):
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    return mlflow.search_traces(
        experiment_ids=[experiment.experiment_id],
        filter_string="tags.side = 'transformers'",
        max_results=limit,
        order_by=["timestamp_ms DESC"],
        return_type="list",
    )


def _search_trace_ids(comparison_id: str) -> list[str]:
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    traces = mlflow.search_traces(
        experiment_ids=[experiment.experiment_id],
        filter_string=f"tags.comparison_id = '{comparison_id}'",
        return_type="list",
        include_spans=False,
    )
    return [t.info.trace_id for t in traces]


def _last_user_message(request) -> str:
    if isinstance(request, str):
        import json

        try:
            request = json.loads(request)
        except ValueError:
            return request[:80]
    messages = (request or {}).get("messages", [])
    users = [m.get("content", "") for m in messages if m.get("role") == "user"]
    return users[-1][:80] if users else ""
