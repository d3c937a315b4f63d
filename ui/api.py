"""The public gradio_client contract, and the request checks the UI shares.

Endpoints: /compare, /compare_messages, /chat_transformers, /chat_onnx, /vote
(and /batch, registered with the batch tab, since it takes a file). Bad
input raises `gr.Error`, which reaches a client as an error carrying the
message, never as an internal-error trace.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict, TypeVar

import gradio as gr

from compare.comparison import compare_stream, judge
from compare.conversation import messages_for
from compare.records import Recorder, Request, canonical_choice, log_vote
from wrappers import GenerationOptions, Result, stream_result
from wrappers.backend import Backend, Messages
from wrappers.config import Limits
from wrappers.startup import Startup

SIDES = ("transformers", "onnx")
MODEL_EVENTS = "models"  # one concurrency group: both models share the CPU
ROLES = ("system", "user", "assistant")
COMPARISON_ID = re.compile(r"[0-9a-f]{32}")
T = TypeVar("T")
_NONE = object()  # no update held back


class UsageInfo(TypedDict):
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None


class LatencyInfo(TypedDict):
    """Seconds of the model's own work (a remote endpoint's also carry network_s)."""

    total_s: float | None
    ttft_s: float | None
    tokens_per_s: float | None


class ModelInfo(TypedDict):
    name: str | None
    version: str | None
    uri: str | None


class Side(TypedDict):
    """One model's answer: the chat completion, exactly what predict returned, and its figures."""

    response: dict | None  # OpenAI chat.completion object, once the answer is complete
    raw: Any
    usage: UsageInfo
    latency: LatencyInfo
    model: ModelInfo
    error: str | None


class VerdictInfo(TypedDict):
    identical: bool
    diverged_at_token: int | None  # 0-based index of the first differing token
    transformers_token: str | None  # that token on each side (None: its answer had ended)
    onnx_token: str | None
    left_token: str | None  # aliases of transformers_token and onnx_token
    right_token: str | None
    speed_ratio: float | None  # onnx decode tokens/s over transformers'
    same_conversation: bool  # False: the models were sent different histories
    summary: str


class Comparison(TypedDict):
    """Each update of /compare; verdict is null until the last one."""

    transformers: Side
    onnx: Side
    verdict: VerdictInfo | None
    comparison_id: str
    tracing_notice: str | None


class VoteReceipt(TypedDict):
    comparison_id: str
    choice: str
    trace_ids: list[str]
    previous_choice: str | None  # the vote this one replaced


@dataclass(frozen=True)
class Comparer:
    """The two backends under the configured limits, as the UI and the API use them."""

    backends: Mapping[str, Backend]
    limits: Limits
    recorder: Recorder | None = None  # None: nothing is traced (tests of the UI alone)
    startup: Startup | None = None  # None: the models were loaded before the app was built

    def ready(self) -> tuple[bool, int]:
        """(whether every model has finished loading, how many are ready); a failed one counts as done."""
        if self.startup is None:
            return True, len(self.backends)
        states, _ = self.startup.snapshot()
        return self.startup.finished, sum(state.startswith("ready") for state in states.values())

    def require_ready(self) -> None:
        ready, count = self.ready()
        if not ready:
            raise input_error(
                f"The models are still loading ({count} of {len(self.backends)} ready). "
                "Try again in a moment."
            )

    def options(self, max_tokens: Any, temperature: Any, top_p: Any, stop: Any) -> GenerationOptions:
        if not isinstance(stop, str):
            raise input_error(f"stop must be a string with one stop sequence per line, got {stop!r}.")
        try:
            return GenerationOptions.from_text(
                max_tokens, temperature, top_p, stop, max_tokens_limit=self.limits.max_new_tokens
            )
        except ValueError as exc:
            raise input_error(str(exc)) from exc

    def compare(
        self, conversations: Mapping[str, Messages], options: GenerationOptions, comparison_id: str
    ) -> Iterator[dict[str, Result]]:
        """Stream both sides; once both are done, record them as a linked pair of traces."""
        started, latest = time.time_ns(), {}
        with self._generating():
            for latest in compare_stream(
                self.backends, conversations, options, self.limits.request_timeout_s
            ):
                yield latest
        self._record(comparison_id, conversations, options, latest, started)

    def one(self, side: str, messages: Messages, options: GenerationOptions, comparison_id: str):
        """Stream one side only; recorded like a comparison with one trace."""
        yield from self.regenerate(side, {side: messages}, options, {}, comparison_id)

    def regenerate(
        self,
        side: str,
        conversations: Mapping[str, Messages],
        options: GenerationOptions,
        kept: Mapping[str, Result],
        comparison_id: str,
    ) -> Iterator[Result]:
        """Stream `side` again; record it with the `kept` answers of the other sides, as one comparison."""
        started, deadline, result = time.time_ns(), time.monotonic() + self.limits.request_timeout_s, None
        with self._generating():
            for result in stream_result(self.backends[side], conversations[side], options, deadline):
                yield result
        others = {s: r for s, r in kept.items() if s != side}
        self._record(comparison_id, conversations, options, {side: result, **others}, started)

    def _generating(self):
        return self.recorder.generating() if self.recorder else contextlib.nullcontext()

    def _record(self, comparison_id, conversations, options, results, started_ns) -> None:
        if self.recorder is None:
            return
        pair = {side: f"{r.model.name}/{r.model.version}" for side, r in results.items()}
        for side, result in results.items():
            request = Request(comparison_id, side, conversations[side], options, result, started_ns, pair)
            self.recorder.record(request)

    @property
    def notice(self) -> str | None:
        return self.recorder.notice if self.recorder else None

    def vote(self, comparison_id: Any, choice: Any, comment: Any = "") -> tuple[list[str], str | None]:
        """Store a vote as MLflow feedback on a comparison's traces; return their ids and the earlier vote."""
        if not isinstance(comparison_id, str) or not COMPARISON_ID.fullmatch(comparison_id):
            raise input_error("comparison_id must be an id returned by /compare.")
        try:
            choice = canonical_choice(choice)
        except ValueError as exc:
            raise input_error(str(exc)) from exc
        if not isinstance(comment, str) or len(comment) > 2000:
            raise input_error("comment must be a string of at most 2000 characters.")
        if self.recorder is None:
            raise input_error("Votes need tracing, which is off in this app.")
        trace_ids = self.recorder.trace_ids(comparison_id)
        try:
            previous = log_vote(trace_ids, choice, comment)
        except ValueError as exc:
            raise input_error(str(exc)) from exc
        except Exception as exc:
            raise gr.Error(f"The vote could not be stored in MLflow: {exc}") from exc
        return trace_ids, previous


def input_error(message: str) -> gr.Error:
    """A mistake in the input: one toast in the page, a clear error for a client, no traceback in the log."""
    return gr.Error(message, print_exception=False)


def new_comparison_id() -> str:
    return uuid.uuid4().hex


def register_api(comparer: Comparer) -> None:
    """Add the named endpoints to the Blocks being built."""

    def compare_messages(
        messages: list[dict],
        max_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: str = "",
    ) -> Iterator[Comparison]:
        """Like /compare, for a whole conversation: a list of {"role", "content"}."""
        options = comparer.options(max_tokens, temperature, top_p, stop)
        yield from _sides(comparer, checked_messages(messages), options)

    def vote(comparison_id: str, choice: str, comment: str = "") -> VoteReceipt:
        """Vote on a comparison: choice is transformers, onnx, tie or both_bad (left and right are
        aliases of transformers and onnx); stored as MLflow feedback. previous_choice is the vote it
        replaced, if any."""
        traces, previous = comparer.vote(comparison_id, choice, comment)
        choice = canonical_choice(choice)
        return {
            "comparison_id": comparison_id,
            "choice": choice,
            "trace_ids": traces,
            "previous_choice": previous,
        }

    def one_side(side: str):
        def respond(messages: Messages, options: GenerationOptions) -> Iterator[Side]:
            results = comparer.one(side, messages, options, new_comparison_id())
            for result in paced(results, comparer.limits.stream_interval_s):
                yield result.to_dict()

        return respond

    models = {"concurrency_id": MODEL_EVENTS, "concurrency_limit": comparer.limits.concurrency}
    gr.api(_described(vote, VoteReceipt), api_name="vote")
    both = _prompt_endpoint(
        comparer, lambda messages, options: _sides(comparer, messages, options), Comparison
    )
    both.__doc__ = 'Send one prompt to both models; stream {"transformers", "onnx", "verdict", ...}.'
    gr.api(both, api_name="compare", **models)
    gr.api(_described(compare_messages, Comparison), api_name="compare_messages", **models)
    for side in SIDES:
        single = _prompt_endpoint(comparer, one_side(side), Side)
        single.__doc__ = f"Send one prompt to the {side} model only; stream that side's result."
        gr.api(single, api_name=f"chat_{side}", **models)


def _described(endpoint, update: type):
    """gr.api describes what an endpoint returns by its return annotation: for a stream, one update."""
    endpoint.__annotations__["return"] = update
    return endpoint


def _prompt_endpoint(comparer: Comparer, respond, update: type):
    """An endpoint taking one prompt and the settings; gr.api reads its typed signature."""

    def endpoint(
        prompt: str,
        system_prompt: str = "",
        max_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: str = "",
    ) -> Iterator[dict]:
        options = comparer.options(max_tokens, temperature, top_p, stop)
        yield from respond(prompt_messages(prompt, system_prompt), options)

    return _described(endpoint, update)


def _sides(comparer: Comparer, messages: Messages, options: GenerationOptions) -> Iterator[Comparison]:
    comparison_id, latest = new_comparison_id(), {}
    results = comparer.compare({side: messages for side in SIDES}, options, comparison_id)
    for latest in paced(results, comparer.limits.stream_interval_s):
        yield _payload(comparison_id, latest, None, None)
    verdict = judge(latest["transformers"], latest["onnx"], SIDES)
    yield _payload(comparison_id, latest, verdict.to_dict(), comparer.notice)


def paced(updates: Iterator[T], interval_s: float) -> Iterator[T]:
    """The first update at once, then at most one per `interval_s`, and always the last.

    Each update Gradio sends costs 0.15 to 0.8 ms here, while the generation waits (streams
    stay in lockstep so that a model's time is its own work; see docs/benchmarks.md). Nobody
    reads 100 updates a second.

    >>> list(paced(iter(range(5)), interval_s=3600))
    [0, 4]
    >>> list(paced(iter(range(3)), interval_s=0))
    [0, 1, 2]
    """
    sent_at, pending = None, _NONE
    for update in updates:
        now = time.monotonic()
        if sent_at is None or now - sent_at >= interval_s:
            sent_at, pending = now, _NONE
            yield update
        else:
            pending = update
    if pending is not _NONE:
        yield pending


def _payload(comparison_id: str, latest: Mapping[str, Result], verdict, notice) -> dict:
    sides = {side: latest[side].to_dict() for side in SIDES}
    return sides | {"verdict": verdict, "comparison_id": comparison_id, "tracing_notice": notice}


def prompt_messages(prompt: Any, system_prompt: Any) -> Messages:
    """The conversation for a single prompt, or a clear error."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise input_error("prompt must be a non-empty string.")
    if not isinstance(system_prompt, str):
        raise input_error(f"system_prompt must be a string, got {system_prompt!r}.")
    return messages_for([], "", system_prompt, prompt)


def checked_messages(messages: Any) -> Messages:
    """A validated copy of an API conversation, or a clear error."""
    if isinstance(messages, str):
        try:
            messages = json.loads(messages)
        except json.JSONDecodeError as exc:
            raise input_error(f"messages must be a JSON list of {{role, content}}: {exc}") from exc
    if not isinstance(messages, list) or not messages or not all(map(_is_message, messages)):
        raise input_error(
            'messages must be a non-empty list of {"role": system|user|assistant, "content": str}.'
        )
    if messages[-1]["role"] != "user":
        raise input_error("The last message must be from the user.")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _is_message(message: Any) -> bool:
    return (
        isinstance(message, dict) and message.get("role") in ROLES and isinstance(message.get("content"), str)
    )
