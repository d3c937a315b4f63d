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
from dataclasses import dataclass, field, replace
from typing import Any, TypedDict, TypeVar

import gradio as gr

from compare.comparison import compare_stream, judge
from compare.conversation import AnswerMemory
from compare.fidelity import Scored, score
from compare.lanes import ModelSlot
from compare.records import Asker, Recorder, Request, canonical_choice, log_vote
from compare.turns import messages_for
from wrappers import GenerationOptions, Result, stream_result
from wrappers.backend import Backend, Messages
from wrappers.chat import check_length
from wrappers.config import Limits
from wrappers.errors import public_text
from wrappers.startup import Startup

SIDES = ("transformers", "onnx")
MODEL_EVENTS = "models"  # one concurrency group: both models share the CPU
ROLES = ("system", "user", "assistant")
COMPARISON_ID = re.compile(r"[0-9a-f]{32}")
T = TypeVar("T")
_NONE = object()  # no update held back
ABANDONED = "Abandoned: the client went away"


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


class TokenInfo(TypedDict):
    token: str
    kl: float  # KL(transformers || onnx) of the next-token distributions, in nats
    p_reference: float  # each model's probability of the token emitted
    p_other: float
    agree: bool  # both models' most likely token is the same


class FidelityInfo(TypedDict):
    """The transformers answer teacher-forced through both models."""

    reference: str
    other: str
    tokens: int
    mean_kl: float
    max_kl: float
    top1_agreement: float
    per_token: list[TokenInfo]
    scoring_s: float  # charged to neither side's latency
    note: str | None


class JudgedInfo(TypedDict):
    """The verdict on two answers."""

    identical: bool
    diverged_at_token: int | None  # 0-based index of the first differing token
    transformers_token: str | None  # that token on each side (None: its answer had ended)
    onnx_token: str | None
    left_token: str | None  # aliases of transformers_token and onnx_token
    right_token: str | None
    speed_ratio: float | None  # onnx decode tokens/s over transformers'
    same_conversation: bool  # False: the models were sent different histories
    summary: str


class VerdictInfo(JudgedInfo):
    """The verdict, and the fidelity scored after it."""

    fidelity: FidelityInfo | None  # null while scoring, when switched off, or when it cannot be scored
    fidelity_reason: str | None  # why fidelity is null


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
    fidelity: bool = True  # score each comparison's answers through both models (the switch)
    startup: Startup | None = None  # None: the models were loaded before the app was built
    answers: AnswerMemory = field(default_factory=AnswerMemory)  # recent answers' figures, for exports
    slot: ModelSlot = field(init=False)  # chat requests generate before batch rows

    def __post_init__(self) -> None:
        object.__setattr__(self, "slot", ModelSlot(self.limits.concurrency))

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
        self,
        conversations: Mapping[str, Messages],
        options: GenerationOptions,
        comparison_id: str,
        asker: Asker | None = None,
        lane: str = "chat",
        tags: Mapping[str, str] | None = None,
    ) -> Iterator[dict[str, Result]]:
        """Stream both sides; once both are done, record them as a linked pair of traces.

        Refused at once if the conversation cannot fit the token limit; `lane` "batch" waits
        for every chat request that is waiting.
        """
        for messages in conversations.values():
            self.check_length(messages)
        started, latest = time.time_ns(), {}
        try:
            with self.slot.take(lane), self._generating():
                for latest in compare_stream(
                    self.backends, conversations, options, self.limits.request_timeout_s
                ):
                    yield latest
        except GeneratorExit:  # the client went away: generation stopped and the slot is free
            self._record_abandoned(comparison_id, conversations, options, latest, started, asker, tags)
            raise
        self._record(comparison_id, conversations, options, latest, started, asker, tags)

    def score(self, results: Mapping[str, Result], options: GenerationOptions, wanted: bool = True) -> Scored:
        """Fidelity of a finished comparison; the panes are final, so neither side waits for it.

        Runs as a generation would (traces wait, batch rows too), so its time is its own.
        """
        if not (self.fidelity and wanted):
            return Scored(reason="Fidelity scoring is switched off.")
        with self.slot.take("chat"), self._generating():
            return score(self.backends, results, options)

    def one(
        self, side: str, messages: Messages, options: GenerationOptions, comparison_id: str, asker: Asker
    ):
        """Stream one side only; recorded like a comparison with one trace."""
        yield from self.regenerate(side, {side: messages}, options, {}, comparison_id, asker)

    def regenerate(
        self,
        side: str,
        conversations: Mapping[str, Messages],
        options: GenerationOptions,
        kept: Mapping[str, Result],
        comparison_id: str,
        asker: Asker | None = None,
    ) -> Iterator[Result]:
        """Stream `side` again; record it with the `kept` answers of the other sides, as one comparison."""
        self.check_length(conversations[side])
        started, deadline, result = time.time_ns(), time.monotonic() + self.limits.request_timeout_s, None
        try:
            with self.slot.take("chat"), self._generating():
                for result in stream_result(self.backends[side], conversations[side], options, deadline):
                    yield result
        except GeneratorExit:
            latest = {side: result} if result is not None else {}
            self._record_abandoned(comparison_id, conversations, options, latest, started, asker)
            raise
        others = {s: r for s, r in kept.items() if s != side}
        self._record(comparison_id, conversations, options, {side: result, **others}, started, asker)

    def check_length(self, messages: Messages) -> None:
        try:
            check_length(messages, self.limits.max_prompt_tokens)
        except ValueError as exc:
            raise input_error(str(exc)) from exc

    def _generating(self):
        return self.recorder.generating() if self.recorder else contextlib.nullcontext()

    def _record(self, comparison_id, conversations, options, results, started_ns, asker, tags=None) -> None:
        for side, result in results.items():
            self.answers.remember(side, conversations[side], result)
        if self.recorder is None:
            return
        asker = asker or Asker.of(None, None)  # nobody's: e.g. a blind battle, whose vote goes by /arena_vote
        pair = {side: f"{r.model.name}/{r.model.version}" for side, r in results.items()}
        for side, result in results.items():
            request = Request(
                comparison_id,
                side,
                conversations[side],
                options,
                result,
                started_ns,
                pair,
                asker.owner,
                asker.user,
                dict(tags or {}),
            )
            self.recorder.record(request)

    def _record_abandoned(self, comparison_id, conversations, options, partial, started_ns, asker, tags=None):
        """Record what was generated before the client went away, marked as abandoned.

        Runs as Gradio closes the stream, on its event loop: the recorder only spools (milliseconds).
        """
        partial = {side: result for side, result in partial.items() if result.model.name}  # started
        if not partial:
            return  # nothing was generated yet
        cut = {
            side: result
            if result.done
            else replace(result, error=f"{ABANDONED} after {len(result.pieces)} tokens.", done=True)
            for side, result in partial.items()
        }
        marked = dict(tags or {}) | {"abandoned": "true"}
        self._record(comparison_id, conversations, options, cut, started_ns, asker, marked)

    @property
    def notice(self) -> str | None:
        return self.recorder.notice if self.recorder else None

    def vote(
        self, comparison_id: Any, choice: Any, comment: Any, asker: Asker
    ) -> tuple[list[str], str | None]:
        """Store the asker's vote on their own comparison as MLflow feedback.

        Returns the trace ids and the vote it replaced (None for a first vote).
        """
        if not isinstance(comparison_id, str) or not COMPARISON_ID.fullmatch(comparison_id):
            raise input_error("comparison_id must be an id returned by /compare.")
        try:
            choice = canonical_choice(choice)
        except ValueError as exc:
            raise input_error(str(exc)) from exc
        return self.store_vote(comparison_id, choice, comment, owner=asker.owner)

    def store_vote(
        self, comparison_id: str, choice: str, comment: Any, metadata=None, owner: str | None = None
    ) -> tuple[list[str], str | None]:
        """Store a checked vote (blind votes carry `metadata`); return the trace ids and the earlier vote.

        With `owner`, only a comparison of that owner; anyone else's, or an unknown id, gets
        the same answer, so ids cannot be probed. (A blind battle's vote is checked by its battle.)
        """
        if not isinstance(comment, str) or len(comment) > 2000:
            raise input_error("comment must be a string of at most 2000 characters.")
        if self.recorder is None:
            raise input_error("Votes need tracing, which is off in this app.")
        try:
            found, trace_ids = self.recorder.comparison(comparison_id)
        except Exception as exc:
            raise gr.Error(public_text(f"The comparison could not be read from MLflow: {exc}")) from exc
        if owner is not None and found != owner:
            trace_ids = []
        try:
            previous = log_vote(trace_ids, choice, comment, metadata)
        except ValueError as exc:
            raise input_error(str(exc)) from exc
        except Exception as exc:
            raise gr.Error(public_text(f"The vote could not be stored in MLflow: {exc}")) from exc
        return trace_ids, previous


def input_error(message: str) -> gr.Error:
    """A mistake in the input: one toast in the page, a clear error for a client, no traceback in the log."""
    return gr.Error(message, print_exception=False)


def new_comparison_id() -> str:
    return uuid.uuid4().hex


def asker_of(request: gr.Request | None) -> Asker:
    """Who is asking: the logged-in user, else the browser or gradio_client session."""
    if request is None:
        return Asker.of(None, None)
    return Asker.of(getattr(request, "username", None), getattr(request, "session_hash", None))


def register_api(comparer: Comparer) -> None:
    """Add the named endpoints to the Blocks being built."""

    def compare_messages(
        messages: list[dict],
        max_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: str = "",
        fidelity: bool = True,
        request: gr.Request = None,
    ) -> Iterator[Comparison]:
        """Like /compare, for a whole conversation: a list of {"role", "content"}."""
        options = comparer.options(max_tokens, temperature, top_p, stop)
        yield from _sides(comparer, checked_messages(messages), options, fidelity, asker_of(request))

    def vote(comparison_id: str, choice: str, comment: str = "", request: gr.Request = None) -> VoteReceipt:
        """Vote on your own comparison: choice is transformers, onnx, tie or both_bad (left and right
        are aliases of transformers and onnx); stored as MLflow feedback. previous_choice is the vote
        it replaced, if any."""
        traces, previous = comparer.vote(comparison_id, choice, comment, asker_of(request))
        return {
            "comparison_id": comparison_id,
            "choice": canonical_choice(choice),
            "trace_ids": traces,
            "previous_choice": previous,
        }

    def one_side(side: str):
        def respond(messages: Messages, options: GenerationOptions, asker: Asker) -> Iterator[Side]:
            results = comparer.one(side, messages, options, new_comparison_id(), asker)
            with contextlib.closing(results):
                for result in paced(results, comparer.limits.stream_interval_s):
                    yield result.to_dict()

        return respond

    models = {"concurrency_id": MODEL_EVENTS, "concurrency_limit": comparer.limits.concurrency}
    gr.api(described(vote, VoteReceipt), api_name="vote")

    def compare(
        prompt: str,
        system_prompt: str = "",
        max_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: str = "",
        fidelity: bool = True,
        request: gr.Request = None,
    ) -> Iterator[Comparison]:
        """Send one prompt to both models; stream {"transformers", "onnx", "verdict", ...}.

        fidelity: after both answers, score them through both models (verdict.fidelity).
        """
        options = comparer.options(max_tokens, temperature, top_p, stop)
        messages = prompt_messages(prompt, system_prompt)
        yield from _sides(comparer, messages, options, fidelity, asker_of(request))

    gr.api(described(compare, Comparison), api_name="compare", **models)
    gr.api(described(compare_messages, Comparison), api_name="compare_messages", **models)
    for side in SIDES:
        single = _prompt_endpoint(comparer, one_side(side), Side)
        single.__doc__ = f"Send one prompt to the {side} model only; stream that side's result."
        gr.api(single, api_name=f"chat_{side}", **models)


def described(endpoint, update: type):
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
        request: gr.Request = None,
    ) -> Iterator[dict]:
        options = comparer.options(max_tokens, temperature, top_p, stop)
        yield from respond(prompt_messages(prompt, system_prompt), options, asker_of(request))

    return described(endpoint, update)


def _sides(
    comparer: Comparer, messages: Messages, options: GenerationOptions, fidelity: Any, asker: Asker
) -> Iterator[Comparison]:
    if not isinstance(fidelity, bool):
        raise input_error(f"fidelity must be true or false, got {fidelity!r}.")
    comparison_id, latest = new_comparison_id(), {}
    results = comparer.compare({side: messages for side in SIDES}, options, comparison_id, asker)
    with contextlib.closing(results):  # when Gradio closes this stream, stop generating at once
        for latest in paced(results, comparer.limits.stream_interval_s):
            yield _payload(comparison_id, latest, None, None)
    verdict = judge(latest["transformers"], latest["onnx"], SIDES).to_dict()
    if comparer.fidelity and fidelity:  # the panes are final: send them before scoring starts
        pending = {"fidelity": None, "fidelity_reason": "Scoring…"}
        yield _payload(comparison_id, latest, verdict | pending, comparer.notice)
    verdict |= comparer.score(latest, options, fidelity).to_api()
    yield _payload(comparison_id, latest, verdict, comparer.notice)


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
