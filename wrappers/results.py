"""Plain result dataclasses that the UI, the API, the tests and benchmarks read.

A count or time that is unknown is `None`, never a guess.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from wrappers.options import GenerationOptions


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


@dataclass(frozen=True)
class Latency:
    """Seconds of the model's own work: time spent waiting on it, nothing else."""

    total_s: float | None = None
    ttft_s: float | None = None
    tokens_per_s: float | None = None  # decode speed, after the first token
    network_s: float | None = None  # a remote endpoint's network round trip, part of total_s


@dataclass(frozen=True)
class ModelRef:
    name: str | None = None
    version: str | None = None
    uri: str | None = None


@dataclass(frozen=True)
class Result:
    """One model's answer to one request, as it stands (partial while streaming)."""

    text: str = ""
    response: dict[str, Any] | None = None  # OpenAI chat-completion object
    raw: Any = None  # exactly what the model's predict returned
    usage: Usage = field(default_factory=Usage)
    latency: Latency = field(default_factory=Latency)
    model: ModelRef = field(default_factory=ModelRef)
    error: str | None = None
    pieces: tuple[str, ...] = ()  # released text per generated token
    prompt_ids: tuple[int, ...] = ()  # the token ids the model was fed
    completion_ids: tuple[int, ...] = ()  # the ids it generated (end token included), where known
    done: bool = False
    options: GenerationOptions | None = None  # what it was asked with (sides differ after a regenerate)

    def to_dict(self) -> dict[str, Any]:
        """The public API shape of one side."""
        return {
            "response": self.response,
            "raw": self.raw,
            "usage": asdict(self.usage),
            "latency": _known_network(asdict(self.latency)),
            "model": asdict(self.model),
            "error": self.error,
        }


def _known_network(latency: dict[str, Any]) -> dict[str, Any]:
    """The API's latency object; `network_s` only appears for remote endpoints."""
    return {k: v for k, v in latency.items() if k != "network_s" or v is not None}
