"""The public gradio_client contract, and the request checks the UI shares.

Endpoints: /compare, /compare_messages, /chat_transformers, /chat_onnx, /vote
(and /batch, registered with the batch tab, since it takes a file). They call
the comparison service (`compare.service.Comparer`). Bad input raises
`gr.Error`, which reaches a client as an error carrying the message, never as
an internal-error trace: the service's own refusals (`compare.errors`) become
`gr.Error` here, at the boundary (`at_boundary`), for every handler that calls it.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
from collections.abc import Iterator, Mapping
from typing import Any, TypedDict

import gradio as gr

from compare.comparison import judge
from compare.errors import RequestError, StoreError
from compare.owners import Asker
from compare.service import Comparer, new_comparison_id
from compare.turns import messages_for
from compare.votes import canonical_choice
from ui.api_docs import add_endpoint, described
from ui.pacing import paced
from wrappers import GenerationOptions, Result
from wrappers.backend import Messages

SIDES = ("transformers", "onnx")
MODEL_EVENTS = "models"  # one concurrency group: both models share the CPU
ROLES = ("system", "user", "assistant")


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
    token: str  # the text the pane shows for this token (the end token: its special text)
    kl: float  # KL(transformers || onnx) of the next-token distributions, in nats
    p_reference: float  # each model's probability of the token emitted
    p_other: float
    agree: bool  # both models' most likely token is the same
    hidden: bool  # the pane shows none of it: the end token, or the token a stop sequence cut


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


def input_error(message: str) -> gr.Error:
    """A mistake in the input: one toast in the page, a clear error for a client, no traceback in the log."""
    return gr.Error(message, print_exception=False)


@contextlib.contextmanager
def shown_to_the_user():
    """Turn the service's refusals into `gr.Error`: what a page shows as a toast and a client receives."""
    try:
        yield
    except RequestError as exc:
        raise input_error(str(exc)) from exc
    except StoreError as exc:
        raise gr.Error(str(exc)) from exc


def at_boundary(handler):
    """`handler`, raising `gr.Error` for the service's refusals; a streaming handler stays a generator.

    `functools.wraps` keeps the signature, which Gradio reads (gr.Request, the typed API).
    """
    if inspect.isgeneratorfunction(handler):

        @functools.wraps(handler)
        def streaming(*args, **kwargs):
            with shown_to_the_user():
                yield from handler(*args, **kwargs)

        return streaming

    @functools.wraps(handler)
    def answering(*args, **kwargs):
        with shown_to_the_user():
            return handler(*args, **kwargs)

    return answering


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
        """Like /compare, for a whole conversation: a list of {"role", "content"}.

        Args:
            messages: The conversation, oldest first: [{"role": "system"|"user"|"assistant", "content": str}].
        """
        options = comparer.options(max_tokens, temperature, top_p, stop)
        yield from _sides(comparer, checked_messages(messages), options, fidelity, asker_of(request))

    def vote(comparison_id: str, choice: str, comment: str = "", request: gr.Request = None) -> VoteReceipt:
        """Vote on your own comparison: choice is transformers, onnx, tie or both_bad (left and right
        are aliases of transformers and onnx); stored as MLflow feedback. previous_choice is the vote
        it replaced, if any.

        Args:
            comparison_id: The comparison_id a comparison returned, e.g. by /compare (32 hex digits).
            choice: transformers, onnx, tie or both_bad (left and right name transformers and onnx).
            comment: An optional note stored with the vote (at most 2,000 characters).
        """
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
    add_endpoint(at_boundary(vote), VoteReceipt, api_name="vote")

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

        The parameters are described in ui/api_docs.SHARED, as every endpoint's settings are.
        """
        options = comparer.options(max_tokens, temperature, top_p, stop)
        messages = prompt_messages(prompt, system_prompt)
        yield from _sides(comparer, messages, options, fidelity, asker_of(request))

    add_endpoint(at_boundary(compare), Comparison, api_name="compare", **models)
    add_endpoint(at_boundary(compare_messages), Comparison, api_name="compare_messages", **models)
    for side in SIDES:
        single = _prompt_endpoint(comparer, one_side(side), Side)
        single.__doc__ = f"Send one prompt to the {side} model only; stream that side's result."
        add_endpoint(single, api_name=f"chat_{side}", **models)


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

    return described(at_boundary(endpoint), update)


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
