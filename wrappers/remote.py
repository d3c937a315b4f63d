"""A pane served by a remote MLflow scoring server (`mlflow models serve`, or the same image
on Kubernetes, Azure ML or Databricks), speaking MLflow's `/invocations` protocol.

MLflow's scoring server answers a request in one piece, so a remote pane does
not stream; it says so. Its latency is the round trip, with the network's
share measured apart by a `/ping` just before. Counts the server does not
report stay unknown (None). A request is retried only when the connection
could not be made (the server never saw it); once sent, a generation is
never repeated.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from wrappers import onnx_backend, transformers_backend
from wrappers.config import AppConfig
from wrappers.errors import GenerationError
from wrappers.options import GenerationOptions
from wrappers.results import ModelRef, Usage
from wrappers.sources import resolve
from wrappers.stops import StopScanner

STREAMING_NOTE = "Remote MLflow scoring server: it answers in one piece, so this pane does not stream."


@dataclass
class RemoteBackend:
    """One side, on an MLflow scoring endpoint; `kind` says which wrapper it serves."""

    title: str
    url: str  # the server's base URL, e.g. http://127.0.0.1:5001
    kind: str  # "transformers" (llm/v1/chat) or "onnx" ({"prompt"} -> str)
    timeout_s: float = 120.0
    chat_template: Any = None  # the checkpoint's tokenizer: formats prompts, counts prompt tokens
    streaming_note: str = STREAMING_NOTE
    max_prompt_tokens: int | None = None
    session: requests.Session = field(default_factory=lambda: _session())

    def model_ref(self) -> ModelRef:
        return ModelRef(name=f"{self.kind} @ {self.url}", version=None, uri=f"{self.url}/invocations")

    def signature(self) -> str:
        return f"served remotely at {self.url}/invocations (the signature is the registered model's)"

    def stream(self, messages, options: GenerationOptions, report) -> Iterator[str]:
        report.streamed = False
        prompt = self.chat_template.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        report.admit_prompt(self.chat_template(prompt, add_special_tokens=False)["input_ids"])
        report.network_s = self._ping()
        if self.kind == "transformers":
            body = transformers_backend.chat_request(messages, options)
        else:
            body = {"inputs": {"prompt": [prompt]}, "params": onnx_backend.predict_params(options)}
        answer = self._post(body)
        yield from _finish(self.kind, answer, options, report)

    def _ping(self) -> float:
        started = time.perf_counter()
        try:
            self.session.get(f"{self.url}/ping", timeout=5).raise_for_status()
        except requests.RequestException as exc:
            raise GenerationError(f"The {self.kind} endpoint at {self.url} is not reachable: {exc}") from exc
        return time.perf_counter() - started

    def _post(self, body: dict) -> Any:
        try:
            reply = self.session.post(f"{self.url}/invocations", json=body, timeout=self.timeout_s)
        except requests.Timeout as exc:
            raise GenerationError(
                f"The {self.kind} endpoint at {self.url} did not answer within {self.timeout_s:.0f} s."
            ) from exc
        except requests.RequestException as exc:
            raise GenerationError(f"The {self.kind} endpoint at {self.url} failed: {exc}") from exc
        if reply.status_code != 200:
            raise GenerationError(
                f"The {self.kind} endpoint answered {reply.status_code}: {reply.text[:300]}"
            )
        return reply.json()


def _finish(kind: str, answer: Any, options: GenerationOptions, report) -> Iterator[str]:
    """Record the server's raw answer and usage; yield its text, cut at any stop sequence."""
    report.raw = answer
    if kind == "transformers":
        completion = answer[0] if isinstance(answer, list) else answer
        text = completion["choices"][0]["message"]["content"]
        report.response_id = completion.get("id")
        report.usage = Usage(**completion["usage"])
        report.finish_reason = completion["choices"][0].get("finish_reason")
    else:
        predictions = answer.get("predictions") if isinstance(answer, dict) else answer
        text = predictions if isinstance(predictions, str) else predictions[0]
        prompt_tokens = len(report.prompt_ids) or None
        report.usage = Usage(prompt_tokens, None, None)  # the server does not say how many it generated
        report.finish_reason = "stop"
    scanner = StopScanner(options.stop)
    released = scanner.feed(text) + scanner.flush()
    if scanner.stopped:
        report.finish_reason = "stop"
    yield released


def _session() -> requests.Session:
    session = requests.Session()
    # Retry only failed connections: the request never reached the server, so it is safe.
    retry = Retry(total=2, connect=2, read=0, status=0, other=0, backoff_factor=0.2, allowed_methods=None)
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


def remote_backends(config: AppConfig) -> dict[str, RemoteBackend]:
    """The sides that `config` puts on remote endpoints (none by default)."""
    endpoints = {"transformers": config.transformers_endpoint, "onnx": config.onnx_endpoint}
    endpoints = {side: url for side, url in endpoints.items() if url}
    if not endpoints:
        return {}
    from transformers import AutoTokenizer

    # The checkpoint's tokenizer formats the ONNX prompt and counts prompt tokens, as in-process.
    template = AutoTokenizer.from_pretrained(resolve(config.sources[0], "config.json"))
    titles = {"transformers": transformers_backend.TITLE, "onnx": onnx_backend.TITLE}
    return {
        side: RemoteBackend(
            f"{titles[side]} · remote {url}",
            url,
            side,
            config.limits.request_timeout_s,
            template,
            max_prompt_tokens=config.limits.max_prompt_tokens,
        )
        for side, url in endpoints.items()
    }
