"""The one backend interface, and the one place that measures any backend.

A backend only produces: `stream()` yields one piece of text per generated
token and fills a `Report` (raw output, usage, finish reason). `stream_result`
wraps it: it times each step, takes the time to first token, accumulates the
text and builds the `Result`, for every backend the same way.

Time is summed over the calls into the backend's iterator only, so when the
caller interleaves two backends token by token, each one's figures count its
own work and not the other's.
"""

from __future__ import annotations

import contextvars
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from wrappers.chat import safe_messages
from wrappers.errors import BackendError, GenerationError, public_text
from wrappers.options import GenerationOptions
from wrappers.pace import Pace
from wrappers.registry import LazyModel
from wrappers.results import Latency, ModelRef, Result, Usage

TIME_LIMIT_ERROR = "Stopped: the request ran past its time limit. Ask for fewer tokens."

Messages = list[dict[str, str]]


@dataclass
class Report:
    """What a backend tells the runner besides its text."""

    raw: Any = None
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    response_id: str | None = None
    prompt_ids: tuple[int, ...] = ()  # the token ids fed to the model
    completion_ids: tuple[int, ...] = ()  # the ids it generated, the end token included; () if unknown
    max_prompt_tokens: int | None = None
    network_s: float | None = None  # remote endpoints only
    streamed: bool = True  # False: the answer came in one piece, so there is no first-token time

    def admit_prompt(self, ids) -> None:
        """Record the prompt's token ids; refuse a prompt over the limit before generating."""
        self.prompt_ids = tuple(int(i) for i in ids)
        limit = self.max_prompt_tokens
        if limit is not None and len(self.prompt_ids) > limit:
            raise GenerationError(
                f"The conversation is {len(self.prompt_ids)} tokens long; the limit is {limit}. "
                "Shorten the prompt or press Clear to start a new conversation."
            )


class Backend(Protocol):
    title: str
    streaming_note: str

    def model_ref(self) -> ModelRef: ...

    def stream(self, messages: Messages, options: GenerationOptions, report: Report) -> Iterator[str]: ...


@dataclass
class MlflowBackend:
    """A registered MLflow model, loaded lazily, with a streaming predict function."""

    title: str
    streaming_note: str
    model: LazyModel
    predict: Callable[..., Iterator[str]]  # (pyfunc, messages, options, report) -> pieces
    max_prompt_tokens: int | None = None
    count: Callable[..., int] | None = None  # (pyfunc, messages) -> the prompt's tokens
    pace: Pace = field(default_factory=Pace)  # its speed here, learnt from its answers

    def model_ref(self) -> ModelRef:
        return self.model.get().ref

    def prompt_tokens(self, messages: Messages) -> int | None:
        """How many tokens `messages` make for this model, as `stream` would feed them."""
        if self.count is None:
            return None
        return self.count(self.model.get().pyfunc, safe_messages(messages))

    def stream(self, messages: Messages, options: GenerationOptions, report: Report) -> Iterator[str]:
        report.max_prompt_tokens = self.max_prompt_tokens
        return self.predict(self.model.get().pyfunc, messages, options, report)

    def signature(self) -> str:
        """The model's input/output signature, as MLflow prints it."""
        return str(self.model.get().pyfunc.metadata.signature)

    def weights(self) -> str:
        """The dtype or precision its weights run in (bfloat16, float32, int4, ...)."""
        return self.model.get().weights


def stream_result(
    backend: Backend, messages: Messages, options: GenerationOptions, deadline: float | None = None
) -> Iterator[Result]:
    """Yield the growing `Result` after each token, and a final one (`done=True`).

    Message text is neutralized first (see `chat.py`). Past `deadline` (a
    `time.monotonic()` value) generation stops with an error, keeping the text so far.
    """
    report, pieces, spent, ttft = Report(), [], 0.0, None
    messages = safe_messages(messages)
    try:
        ref = backend.model_ref()
    except Exception as exc:
        yield Result(error=_describe(exc), done=True)
        return
    result = Result(model=ref, options=options)
    # Callers such as Gradio step a generator from a fresh context each time; MLflow's
    # predict_stream sets and resets a ContextVar across steps, so keep one context.
    context = contextvars.copy_context()
    chunks = backend.stream(messages, options, report)
    try:
        while True:
            if deadline is not None and time.monotonic() > deadline:
                raise GenerationError(TIME_LIMIT_ERROR)
            started = time.perf_counter()
            try:
                piece = context.run(next, chunks)
            except StopIteration:
                spent += time.perf_counter() - started
                break
            spent += time.perf_counter() - started
            ttft = spent if ttft is None else ttft
            pieces.append(piece)
            result = _so_far(
                replace(result, text=result.text + piece, pieces=tuple(pieces)), report, spent, ttft
            )
            yield result
    except Exception as exc:
        yield replace(result, error=_describe(exc), done=True)
        return
    finally:
        context.run(chunks.close)
    result = _finish(result, report, spent, ttft)
    pace = getattr(backend, "pace", None)  # remote endpoints keep none
    if pace is not None:
        pace.observe(result)
    yield result


def run(
    backend: Backend, messages: Messages, options: GenerationOptions, deadline: float | None = None
) -> Result:
    """The final result of `stream_result`."""
    *_, final = stream_result(backend, messages, options, deadline)
    return final


def _so_far(result: Result, report: Report, spent: float, ttft: float | None) -> Result:
    """A partial result with its figures so far: tokens streamed, time spent, decode speed."""
    prompt = len(report.prompt_ids) or None
    done = len(result.pieces)
    usage = Usage(prompt, done, None if prompt is None else prompt + done)
    latency = Latency(spent, ttft, decode_speed(done, spent, ttft))
    ids = {"prompt_ids": report.prompt_ids, "completion_ids": report.completion_ids}  # a stop keeps them
    return replace(result, usage=usage, latency=latency, **ids)


def _finish(result: Result, report: Report, spent: float, ttft: float | None) -> Result:
    usage = report.usage
    ttft = ttft if report.streamed else None
    return replace(
        result,
        raw=report.raw,
        usage=usage,
        prompt_ids=report.prompt_ids,
        completion_ids=report.completion_ids,
        latency=Latency(spent, ttft, decode_speed(usage.completion_tokens, spent, ttft), report.network_s),
        response=chat_completion(result.text, usage, report, result.model),
        done=True,
    )


def decode_speed(tokens: int | None, total_s: float, ttft_s: float | None) -> float | None:
    """Tokens per second after the first token.

    >>> decode_speed(11, 1.5, 0.5)
    10.0
    """
    if tokens is None or ttft_s is None or tokens < 2 or total_s <= ttft_s:
        return None
    return (tokens - 1) / (total_s - ttft_s)


def chat_completion(text: str, usage: Usage, report: Report, model: ModelRef) -> dict[str, Any]:
    """The OpenAI chat-completion object for a finished answer."""
    return {
        "id": report.response_id or f"chatcmpl-{uuid.uuid4()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model.name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": report.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        },
    }


def _describe(exc: Exception) -> str:
    """A pane's error message, without the server's folders."""
    if isinstance(exc, BackendError | ValueError):
        return public_text(str(exc))
    return public_text(f"{type(exc).__name__}: {exc}")
