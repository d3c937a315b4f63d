"""Each wrapper at the two in-process depths: the raw engine, and the MLflow pyfunc.

Every call returns a `Run`: prompt and completion token counts, time to first
token and total time. The raw engines are fed exactly the token ids the
pyfunc path feeds its model (the chat template applied to the same message),
and use the same decoding (greedy, as the app sends it), so that the gap
between the two depths is the wrapper's own cost.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow

from wrappers import GenerationOptions, run
from wrappers.backend import MlflowBackend, decode_speed


@dataclass(frozen=True)
class Run:
    prompt_tokens: int
    new_tokens: int
    ttft_s: float
    total_s: float
    server_s: float | None = None  # through the app: the model time the app reported
    noop_s: float | None = None  # through the app: a no-op request's time beyond its waiting, just after
    updates: int | None = None  # through the app: how many updates it streamed (it paces them)
    bandwidth_gbs: float | None = None  # the machine's read bandwidth, probed just before this run

    @property
    def tokens_per_s(self) -> float | None:
        return decode_speed(self.new_tokens, self.total_s, self.ttft_s)


@dataclass(frozen=True)
class Prompt:
    """One user message and the exact ids the chat template turns it into."""

    messages: list[dict[str, str]]
    ids: list[int]


def prompt_of_length(tokenizer, length: int, fillers: tuple[str, ...] = ("the", "a", "hello", "x")) -> Prompt:
    """A user message whose chat-templated prompt is exactly `length` tokens.

    Repeats a filler word until the count is reached; tries the next filler
    if one word is not exactly one token.
    """
    for filler in fillers:
        for words in range(length):
            messages = [{"role": "user", "content": " ".join([filler] * words)}]
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            if len(ids) == length:
                return Prompt(messages, ids)
            if len(ids) > length:
                break
    raise ValueError(f"No prompt of exactly {length} tokens from fillers {fillers}")


class TransformersEngine:
    """`generate` on a text-generation pipeline loaded as the MLflow flavor logs it."""

    name = "transformers generate"

    def __init__(self, checkpoint: Path) -> None:
        import torch
        import transformers

        started = time.perf_counter()
        self.pipeline = transformers.pipeline(
            task="text-generation", model=str(checkpoint), device="cpu", dtype=torch.float32
        )
        self.load_s = time.perf_counter() - started

    def generate(self, prompt: Prompt, max_new: int, inference_mode: bool = True) -> Run:
        import torch

        clock = _TokenClock()
        ids = torch.tensor([prompt.ids])
        started = time.perf_counter()
        grad_off = torch.inference_mode() if inference_mode else torch.no_grad()
        with grad_off:  # what the app sends: sampling restricted to the top token
            out = self.pipeline.model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new,
                do_sample=True,
                top_k=1,
                streamer=clock,
            )
        total = time.perf_counter() - started
        return Run(len(prompt.ids), out.shape[1] - ids.shape[1], clock.first - started, total)


class _TokenClock:
    """A transformers streamer that only notes when the first new token arrived."""

    def __init__(self) -> None:
        self.calls, self.first = 0, 0.0

    def put(self, value) -> None:
        self.calls += 1
        if self.calls == 2:  # the first call carries the prompt
            self.first = time.perf_counter()

    def end(self) -> None:
        pass


class OnnxEngine:
    """The onnxruntime-genai Generator loop on an export folder, with the pyfunc's session options.

    `overlay` (a genai_config fragment) is applied after them: the tuning runs vary it.
    """

    name = "onnxruntime-genai Generator"

    def __init__(self, folder: Path, overlay: dict | None = None) -> None:
        import onnxruntime_genai as og

        from wrappers.onnx_model import session_options

        started = time.perf_counter()
        config = og.Config(str(folder))
        for fragment in ({"model": {"decoder": {"session_options": session_options()}}}, overlay):
            if fragment:
                config.overlay(json.dumps(fragment))
        self.model = og.Model(config)
        self.load_s = time.perf_counter() - started

    def generate(self, prompt: Prompt, max_new: int) -> Run:
        import onnxruntime_genai as og

        started = time.perf_counter()
        params = og.GeneratorParams(self.model)
        params.set_search_options(max_length=len(prompt.ids) + max_new, do_sample=False)
        generator = og.Generator(self.model, params)
        generator.append_tokens(prompt.ids)
        generator.generate_next_token()
        generator.get_next_tokens()
        first, count = time.perf_counter(), 1
        while not generator.is_done():
            generator.generate_next_token()
            generator.get_next_tokens()
            count += 1
        return Run(len(prompt.ids), count, first - started, time.perf_counter() - started)


class PyfuncPath:
    """The app's own backend: the registered MLflow pyfunc, streamed and timed by `wrappers.run`."""

    name = "MLflow pyfunc"

    def __init__(self, backend: MlflowBackend) -> None:
        started = time.perf_counter()
        loaded = backend.model.get()  # logs and registers on first use, then loads
        self.load_s = time.perf_counter() - started
        if loaded.logged_now:  # time a plain load of the registered version instead
            started = time.perf_counter()
            mlflow.pyfunc.load_model(loaded.ref.uri)
            self.load_s = time.perf_counter() - started
        self.backend = backend

    def generate(self, prompt: Prompt, max_new: int) -> Run:
        result = run(self.backend, prompt.messages, GenerationOptions(max_tokens=max_new))
        if result.error:
            raise RuntimeError(result.error)
        latency, usage = result.latency, result.usage
        return Run(usage.prompt_tokens, usage.completion_tokens, latency.ttft_s, latency.total_s)
