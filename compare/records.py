"""Every comparison on the record: MLflow traces, votes as feedback, and the tally.

Each model's answer becomes one trace in the app's experiment, tagged with
the comparison it belongs to, so the pair is found together. Traces are
written by a background thread after the answer is complete, and only while
no model is generating (or after a short wait): on two cores, writing during
a generation would slow it down. A tracking store that is down only produces
a notice (`Recorder.notice`), never a failed chat.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass

import mlflow
import pandas as pd
from mlflow.entities import AssessmentSource

from wrappers.options import GenerationOptions
from wrappers.registry import EXPERIMENT
from wrappers.results import Result

CHOICES = ("transformers", "onnx", "tie", "both_bad")  # a side's name means that side is better
ALIASES = {"left": "transformers", "right": "onnx"}  # the older names, still accepted and read
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


def write_trace(request: Request) -> str:
    """Log one request as an MLflow trace; return its id."""
    result, model = request.result, request.result.model
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    span = mlflow.start_span_no_context(
        name=f"{request.side} {model.name}",
        span_type="CHAT_MODEL",
        inputs={"messages": request.messages, "settings": asdict(request.options)},
        attributes={"model_uri": model.uri, **asdict(result.latency)},
        tags={
            "comparison_id": request.comparison_id,
            "side": request.side,
            "model": f"{model.name}/{model.version}",
            **{f"model.{side}": ref for side, ref in request.pair.items()},
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


def log_vote(trace_ids: list[str], choice: str, comment: str = "") -> str | None:
    """Store a human vote as feedback on both traces of a comparison; return the earlier vote, if any."""
    choice = canonical_choice(choice)
    if not trace_ids:
        raise ValueError("No recorded comparison has that id.")
    previous = previous_vote(trace_ids[0])
    source = AssessmentSource(source_type="HUMAN", source_id="phi3-compare-app")
    for trace_id in trace_ids:
        mlflow.log_feedback(
            trace_id=trace_id, name=VOTE, value=choice, rationale=comment or None, source=source
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


def leaderboard() -> pd.DataFrame:
    """Votes per model version: wins, losses, ties and both-bad, across all comparisons."""
    tally: Counter[tuple[str, str]] = Counter()
    for trace in _left_traces():
        votes = [a for a in trace.info.assessments if a.name == VOTE]
        if not votes:
            continue
        choice = ALIASES.get(votes[-1].value, votes[-1].value)  # the latest vote counts
        left, right = trace.info.tags.get("model.transformers"), trace.info.tags.get("model.onnx")
        outcome = {"transformers": ("wins", "losses"), "onnx": ("losses", "wins")}.get(
            choice, (choice, choice)
        )
        tally[(left, outcome[0])] += 1
        tally[(right, outcome[1])] += 1
    columns = ["wins", "losses", "tie", "both_bad"]
    models = sorted({model for model, _ in tally})
    rows = [[model, *(tally[(model, c)] for c in columns)] for model in models]
    return pd.DataFrame(rows, columns=["model", *columns])


def recent_comparisons(limit: int = 50) -> pd.DataFrame:
    """The latest comparisons read back from MLflow, one row per comparison."""
    rows = []
    for trace in _left_traces(limit):
        messages = (trace.data.request or {}) if hasattr(trace, "data") else {}
        votes = [a.value for a in trace.info.assessments if a.name == VOTE]
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
