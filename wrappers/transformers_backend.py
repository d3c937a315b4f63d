"""Wrapper (a): the MLflow transformers flavor, logged with `task="llm/v1/chat"`.

Requests go through the flavor's own `predict`, so `raw` is exactly what it
returned. The flavor has no `predict_stream`, so streaming attaches a token
streamer (and a stopping criterion for stop sequences) to the very pipeline
that `predict` runs, through the pipeline's default call arguments. Those are
Python objects that cannot travel through MLflow's JSON input schema.

The streamer runs `predict` one token at a time, in lockstep with the
consumer: the generating thread waits while the caller is not asking for the
next token, so two models can be interleaved token by token and each one's
latency counts only its own work.

Greedy decoding is sent as `top_k=1` on a pipeline logged with
`do_sample=True`: the chat schema has no `do_sample` field, and transformers
5 rejects `temperature=0`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import mlflow

from wrappers.errors import public_text
from wrappers.options import GenerationOptions
from wrappers.results import Usage
from wrappers.stops import StopScanner

TITLE = "transformers flavor (llm/v1/chat)"
STREAMING_NOTE = (
    "Streams from the flavor's own predict(): a token streamer is attached to the logged "
    "pipeline, since the transformers flavor has no predict_stream."
)


def log_transformers_model(checkpoint: str, pip_requirements: list[str], dtype: str = "float32") -> str:
    """Log `checkpoint` as an llm/v1/chat pipeline in `dtype` in the active run; return its URI.

    The weights are saved in `dtype`, and the flavor records it, so the model loads back in it.
    Run it through `wrappers.child.run_step`: it holds the whole checkpoint in memory.
    """
    import torch
    import transformers

    pipeline = transformers.pipeline(
        task="text-generation", model=checkpoint, device="cpu", dtype=getattr(torch, dtype)
    )
    info = mlflow.transformers.log_model(
        transformers_model=pipeline,
        name="model",
        task="llm/v1/chat",
        model_config={"do_sample": True},
        pip_requirements=pip_requirements,
    )
    return info.model_uri


def chat_request(messages: list[dict[str, str]], options: GenerationOptions) -> dict[str, Any]:
    """The llm/v1/chat input for `options` (stops are handled by the stream).

    >>> chat_request([{"role": "user", "content": "Hi"}], GenerationOptions(max_tokens=8))
    {'messages': [{'role': 'user', 'content': 'Hi'}], 'max_tokens': 8, 'top_k': 1}
    """
    request: dict[str, Any] = {"messages": messages, "max_tokens": options.max_tokens}
    if options.greedy:
        request["top_k"] = 1
    else:
        request |= {"temperature": options.temperature, "top_p": options.top_p}
    return request


def stream_predict(
    pyfunc, messages: list[dict[str, str]], options: GenerationOptions, report
) -> Iterator[str]:
    """Run the flavor's predict, yielding one piece of released text per token."""
    pipeline = pyfunc.get_raw_model()
    report.admit_prompt(prompt_ids(pipeline.tokenizer, messages))
    lockstep = _Lockstep(pipeline.tokenizer, options)
    attached = {"streamer": lockstep, "stopping_criteria": [lockstep.should_stop]}
    worker = threading.Thread(
        target=lockstep.run, args=(pyfunc, chat_request(messages, options)), daemon=True
    )
    pipeline._forward_params.update(attached)
    try:
        worker.start()
        for piece in lockstep.pieces():
            report.completion_ids = tuple(lockstep.generated)  # so far: a stopped answer's are known
            yield piece
    finally:
        lockstep.cancel()
        worker.join()
        for key in attached:
            pipeline._forward_params.pop(key, None)
    report.prompt_ids = lockstep.prompt_ids  # as generate() received them
    report.raw = lockstep.result  # a list with one chat-completion dict per input
    completion = report.raw[0]
    # The flavor names the checkpoint folder it was logged from; a visitor sees only its name.
    completion["model"] = public_text(str(completion.get("model")))
    report.response_id = completion["id"]
    prompt_tokens = completion["usage"]["prompt_tokens"]
    report.usage = Usage(prompt_tokens, lockstep.streamed, prompt_tokens + lockstep.streamed)
    report.finish_reason = "stop" if lockstep.scanner.stopped else completion["choices"][0]["finish_reason"]


def count_prompt(pyfunc, messages: list[dict[str, str]]) -> int:
    """The prompt's length in tokens, as `stream_predict` feeds it."""
    return len(prompt_ids(pyfunc.get_raw_model().tokenizer, messages))


def prompt_ids(tokenizer, messages: list[dict[str, str]]) -> list[int]:
    """The ids the flavor will feed for `messages`: its chat template, no extra special tokens."""
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(prompt, add_special_tokens=False)["input_ids"]


class _Cancelled(Exception):
    """Raised inside generate() to abandon a request nobody is reading any more."""


class _Lockstep:
    """A transformers streamer that hands over one token and waits to be asked again."""

    def __init__(self, tokenizer, options: GenerationOptions) -> None:
        self.tokenizer = tokenizer
        self.scanner = StopScanner(options.stop)
        self.max_tokens = options.max_tokens
        self.result: Any = None
        self._tokens: list[int] = []
        self.generated: list[int] = []  # every id generate() produced, special ones included
        self._decoded = ""
        self._pending: str | None = None  # the piece should_stop released, for put to hand over
        self.streamed = 0  # tokens handed to the consumer
        self.prompt_ids: tuple[int, ...] | None = None
        self._cancelled = False
        self._outbox: queue.Queue = queue.Queue()
        self._resume = threading.Semaphore(0)

    def run(self, pyfunc, request: dict[str, Any]) -> None:
        """Thread body: the real MLflow predict call.

        Under inference_mode, which skips autograd's bookkeeping on every tensor; the
        pipeline's own no_grad leaves it on. Grad modes are per thread, so it is set here.
        """
        import torch

        try:
            with torch.inference_mode():
                self._outbox.put(("done", pyfunc.predict(request)))
        except _Cancelled:
            self._outbox.put(("cancelled", None))
        except Exception as exc:  # handed to the consumer, which raises it
            self._outbox.put(("error", exc))

    def put(self, value) -> None:  # called by generate() on its thread, after should_stop
        if self.prompt_ids is None:  # the first call carries the prompt
            self.prompt_ids = tuple(int(i) for i in value.reshape(-1))
            return
        token = int(value.reshape(-1)[0])
        self.generated.append(token)
        piece = self._release(token) if self._pending is None else self._pending
        self._pending = None
        self._outbox.put(("token", piece))
        self._resume.acquire()
        if self._cancelled:
            raise _Cancelled()

    def end(self) -> None:
        pass

    def should_stop(self, input_ids, scores, **kwargs) -> bool:
        """Decode the token just chosen and stop at it if it completes a stop sequence.

        generate() asks its stopping criteria before it hands the token to the streamer, so the
        text is cut here: waiting for the streamer would let generate() add one token past the stop.
        """
        self._pending = self._release(int(input_ids[0, -1]))
        return self.scanner.stopped

    def pieces(self) -> Iterator[str]:
        """Consumer side: one released piece per generated token."""
        while True:
            kind, value = self._outbox.get()
            if kind == "token":
                self.streamed += 1
                yield value
                self._resume.release()
            elif kind == "done":
                self.result = value
                return
            elif kind == "error":
                raise value
            else:
                return

    def cancel(self) -> None:
        self._cancelled = True
        self._resume.release()

    def _release(self, token: int) -> str:
        if token in self.tokenizer.all_special_ids:  # the end token
            return self.scanner.flush()
        self._tokens.append(token)
        text = self.tokenizer.decode(self._tokens, skip_special_tokens=True)
        last = len(self._tokens) >= self.max_tokens
        if text.endswith("\ufffd") and not last:  # an incomplete character: wait for the rest
            return ""
        piece, self._decoded = text[len(self._decoded) :], text
        released = self.scanner.feed(piece)
        return released + self.scanner.flush() if last else released
