"""The public gradio_client contract, and the request checks the UI shares.

Endpoints: /compare, /compare_messages, /chat_transformers, /chat_onnx, /vote
(and /batch, registered with the batch tab, since it takes a file). They call
the comparison service (`compare.service.Comparer`). Bad input raises
`gr.Error`, which reaches a client as an error carrying the message, never as
an internal-error trace: the service's own refusals (`compare.errors`) become
`gr.Error` here, at the boundary (`at_boundary`), for every handler that calls it.
What each endpoint returns, field by field, is in `ui/api_types.py`.
"""

from __future__ import annotations

import contextlib
import functools
import html
import inspect
from collections.abc import Iterator, Mapping

import gradio as gr

from compare.comparison import judge
from compare.endings import NOT_VOTABLE_NOTE, Ending, ending_of
from compare.errors import RequestError, StoreError
from compare.owners import Asker
from compare.requests import options_of
from compare.service import Comparer, new_comparison_id
from compare.turns import messages_for
from compare.votes import canonical_choice
from ui.api_docs import add_endpoint, described
from ui.api_types import Comparison, Side, VoteReceipt
from ui.pacing import paced
from wrappers import GenerationOptions, Result
from wrappers.backend import Messages
from wrappers.schema import InputError, bounded_json

SIDES = ("transformers", "onnx")
MODEL_EVENTS = "models"  # one concurrency group: both models share the CPU
PROMPT_FIELDS = ("prompt", "system_prompt", "max_tokens", "temperature", "top_p", "stop", "fidelity")
MAX_MESSAGES_BYTES = 40 * 2**20  # messages sent as JSON text; their length is checked by the schema


def input_error(message: str) -> gr.Error:
    """A mistake in the input: one toast in the page, a clear error for a client, no traceback in the log.

    The message may quote what was sent (a file's column, a value), and a toast renders HTML:
    it is escaped, so it shows as text.
    """
    return gr.Error(html.escape(message, quote=False), print_exception=False)


@contextlib.contextmanager
def shown_to_the_user():
    """Turn the service's refusals into `gr.Error`: what a page shows as a toast and a client receives."""
    try:
        yield
    except (RequestError, InputError) as exc:
        raise input_error(str(exc)) from exc
    except StoreError as exc:
        raise gr.Error(html.escape(str(exc), quote=False)) from exc


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


def voter_of(request: gr.Request | None) -> str:
    """Who casts a vote, for the rate limit and the leaderboard's cap: the login, else the client.

    The seam for a trusted client address: today a visitor without a login is their browser or
    gradio_client session (the owner id), and a script can open as many sessions as it likes.
    Once `ui/login.py` can name the client's address as a trusted proxy reports it, return a
    hash of that address here for visitors without a login; nothing else changes.
    """
    return asker_of(request).owner


def register_api(comparer: Comparer) -> None:
    """Add the named endpoints to the Blocks being built, in the order the API page lists them."""
    models = {"concurrency_id": MODEL_EVENTS, "concurrency_limit": comparer.limits.concurrency}
    add_endpoint(at_boundary(_vote_endpoint(comparer)), VoteReceipt, api_name="vote")
    add_endpoint(at_boundary(_compare_endpoint(comparer)), Comparison, api_name="compare", **models)
    messages = _messages_endpoint(comparer)
    add_endpoint(at_boundary(messages), Comparison, api_name="compare_messages", **models)
    for side in SIDES:
        single = _prompt_endpoint(comparer, _one_side(comparer, side), Side)
        single.__doc__ = f"Send one prompt to the {side} model only; stream that side's result."
        add_endpoint(single, api_name=f"chat_{side}", **models)


def _compare_endpoint(comparer: Comparer):
    """/compare: gr.api reads its typed signature and its docstring."""

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
        asked = comparer.check("prompt", {k: v for k, v in locals().items() if k in PROMPT_FIELDS})
        messages = prompt_messages(asked.prompt, asked.system_prompt)
        yield from _sides(comparer, messages, options_of(asked), asked.fidelity, asker_of(request))

    return compare


def _messages_endpoint(comparer: Comparer):
    """/compare_messages: gr.api reads its typed signature and its docstring."""

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
        if isinstance(messages, str) and messages.lstrip().startswith("["):  # the list as JSON text
            messages = bounded_json(messages, MAX_MESSAGES_BYTES, "messages")
        settings = {"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p, "stop": stop}
        asked = comparer.check("messages", {"messages": messages, "fidelity": fidelity} | settings)
        sent = [{"role": m.role, "content": m.content} for m in asked.messages]
        yield from _sides(comparer, sent, options_of(asked), asked.fidelity, asker_of(request))

    return compare_messages


def _vote_endpoint(comparer: Comparer):
    """/vote: gr.api reads its typed signature and its docstring."""

    def vote(comparison_id: str, choice: str, comment: str = "", request: gr.Request = None) -> VoteReceipt:
        """Vote on your own comparison: choice is transformers, onnx, tie or both_bad (left and right
        are aliases of transformers and onnx); stored as MLflow feedback. previous_choice is the vote
        it replaced, if any. Only a comparison that finished takes a vote (see "ended" in /compare's
        last update), and a voter may cast a limited number of votes in a given time.

        Args:
            comparison_id: The comparison_id a comparison returned, e.g. by /compare (32 hex digits).
            choice: transformers, onnx, tie or both_bad (left and right name transformers and onnx).
            comment: An optional note stored with the vote (at most 2,000 characters).
        """
        traces, previous = comparer.votes.vote(
            comparison_id, choice, comment, asker_of(request), voter_of(request)
        )
        return {
            "comparison_id": comparison_id,
            "choice": canonical_choice(choice),
            "trace_ids": traces,
            "previous_choice": previous,
        }

    return vote


def _one_side(comparer: Comparer, side: str):
    """What /chat_<side> streams: that side's result as it grows, recorded as a comparison."""

    def respond(messages: Messages, options: GenerationOptions, asker: Asker) -> Iterator[Side]:
        results = comparer.one(side, messages, options, new_comparison_id(), asker)
        with contextlib.closing(results):
            for result in paced(results, comparer.limits.stream_interval_s):
                yield result.to_dict()

    return respond


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
        asked = comparer.check("prompt", {k: v for k, v in locals().items() if k in PROMPT_FIELDS})
        yield from respond(
            prompt_messages(asked.prompt, asked.system_prompt), options_of(asked), asker_of(request)
        )

    return described(at_boundary(endpoint), update)


def _sides(
    comparer: Comparer, messages: Messages, options: GenerationOptions, fidelity: bool, asker: Asker
) -> Iterator[Comparison]:
    comparison_id, latest = new_comparison_id(), {}
    results = comparer.compare({side: messages for side in SIDES}, options, comparison_id, asker)
    with contextlib.closing(results):  # when Gradio closes this stream, stop generating at once
        for latest in paced(results, comparer.limits.stream_interval_s):
            yield _payload(comparison_id, latest, None, None)
    ended = ending_of(latest)
    verdict = judge(latest["transformers"], latest["onnx"], SIDES).to_dict()
    verdict["summary"] += "" if ended is Ending.FINISHED else f" {NOT_VOTABLE_NOTE}"
    if comparer.fidelity and fidelity:  # the panes are final: send them before scoring starts
        pending = {"fidelity": None, "fidelity_reason": "Scoring…"}
        yield _payload(comparison_id, latest, verdict | pending, comparer.notice, ended)
    verdict |= comparer.score(latest, options, fidelity).to_api()
    yield _payload(comparison_id, latest, verdict, comparer.notice, ended)


def _payload(comparison_id: str, latest: Mapping[str, Result], verdict, notice, ended=None) -> dict:
    sides = {side: latest[side].to_dict() for side in SIDES}
    how = {"ended": ended and ended.value, "votable": ended is Ending.FINISHED}
    return sides | {"verdict": verdict, "comparison_id": comparison_id, "tracing_notice": notice} | how


def prompt_messages(prompt: str, system_prompt: str) -> Messages:
    """The conversation for a single checked prompt: the system prompt (if any), then the prompt."""
    return messages_for([], "", system_prompt, prompt)
