"""The public gradio_client contract, and the request checks the UI shares.

Endpoints: /compare, /compare_messages, /chat_transformers, /chat_onnx. Bad
input raises `gr.Error`, which reaches a client as an error carrying the
message, never as an internal-error trace.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import gradio as gr

import formatting as fmt
from wrappers import GenerationOptions, Result, stream_result
from wrappers.backend import Backend, Messages
from wrappers.comparison import compare_stream, judge
from wrappers.config import Limits

SIDES = ("transformers", "onnx")
MODEL_EVENTS = "models"  # one concurrency group: both models share the CPU
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Comparer:
    """The two backends under the configured limits, as the UI and the API use them."""

    backends: Mapping[str, Backend]
    limits: Limits

    def options(self, max_tokens: Any, temperature: Any, top_p: Any, stop: Any) -> GenerationOptions:
        if not isinstance(stop, str):
            raise gr.Error(f"stop must be a string with one stop sequence per line, got {stop!r}.")
        try:
            return GenerationOptions.from_text(
                max_tokens, temperature, top_p, stop, max_tokens_limit=self.limits.max_new_tokens
            )
        except ValueError as exc:
            raise gr.Error(str(exc)) from exc

    def compare(self, conversations: Mapping[str, Messages], options: GenerationOptions):
        return compare_stream(self.backends, conversations, options, self.limits.request_timeout_s)

    def one(self, side: str, messages: Messages, options: GenerationOptions) -> Iterator[Result]:
        deadline = time.monotonic() + self.limits.request_timeout_s
        return stream_result(self.backends[side], messages, options, deadline)


def register_api(comparer: Comparer) -> None:
    """Add the named endpoints to the Blocks being built."""

    def compare(
        prompt: str,
        system_prompt: str = "",
        max_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: str = "",
    ) -> Iterator[dict]:
        """Send one prompt to both models; stream {"transformers", "onnx", "verdict"}."""
        options = comparer.options(max_tokens, temperature, top_p, stop)
        yield from _sides(comparer, prompt_messages(prompt, system_prompt), options)

    def compare_messages(
        messages: list[dict],
        max_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: str = "",
    ) -> Iterator[dict]:
        """Like /compare, for a whole conversation: a list of {"role", "content"}."""
        options = comparer.options(max_tokens, temperature, top_p, stop)
        yield from _sides(comparer, checked_messages(messages), options)

    limit = comparer.limits.concurrency
    gr.api(compare, api_name="compare", concurrency_id=MODEL_EVENTS, concurrency_limit=limit)
    gr.api(
        compare_messages, api_name="compare_messages", concurrency_id=MODEL_EVENTS, concurrency_limit=limit
    )
    for side in SIDES:
        gr.api(
            _one_side(comparer, side),
            api_name=f"chat_{side}",
            concurrency_id=MODEL_EVENTS,
            concurrency_limit=limit,
        )


def _one_side(comparer: Comparer, side: str):
    def chat(
        prompt: str,
        system_prompt: str = "",
        max_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: str = "",
    ) -> Iterator[dict]:
        options = comparer.options(max_tokens, temperature, top_p, stop)
        for result in comparer.one(side, prompt_messages(prompt, system_prompt), options):
            yield result.to_dict()

    chat.__doc__ = f"Send one prompt to the {side} model only; stream that side's result."
    return chat


def _sides(comparer: Comparer, messages: Messages, options: GenerationOptions) -> Iterator[dict]:
    latest: dict[str, Result] = {}
    for latest in comparer.compare({side: messages for side in SIDES}, options):
        yield {side: latest[side].to_dict() for side in SIDES} | {"verdict": None}
    verdict = judge(latest["transformers"], latest["onnx"], SIDES)
    yield {side: latest[side].to_dict() for side in SIDES} | {"verdict": verdict.to_dict()}


def prompt_messages(prompt: Any, system_prompt: Any) -> Messages:
    """The conversation for a single prompt, or a clear error."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise gr.Error("prompt must be a non-empty string.")
    if not isinstance(system_prompt, str):
        raise gr.Error(f"system_prompt must be a string, got {system_prompt!r}.")
    return fmt.conversation([], system_prompt, prompt)


def checked_messages(messages: Any) -> Messages:
    """A validated copy of an API conversation, or a clear error."""
    if isinstance(messages, str):
        try:
            messages = json.loads(messages)
        except json.JSONDecodeError as exc:
            raise gr.Error(f"messages must be a JSON list of {{role, content}}: {exc}") from exc
    if not isinstance(messages, list) or not messages or not all(map(_is_message, messages)):
        raise gr.Error(
            'messages must be a non-empty list of {"role": system|user|assistant, "content": str}.'
        )
    if messages[-1]["role"] != "user":
        raise gr.Error("The last message must be from the user.")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _is_message(message: Any) -> bool:
    return (
        isinstance(message, dict) and message.get("role") in ROLES and isinstance(message.get("content"), str)
    )
