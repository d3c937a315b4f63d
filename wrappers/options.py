"""Validated generation options, shared by both wrappers.

One dataclass so that both panes always get identical settings. Values out
of range are rejected here with a message a person can act on, rather than
deep inside transformers or onnxruntime-genai.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

MAX_STOP_SEQUENCES = 16
MAX_NEW_TOKENS_LIMIT = 4096
MIN_SAMPLING_TEMPERATURE = 0.01  # below it, logits / temperature overflow float32: treated as greedy


@dataclass(frozen=True)
class GenerationOptions:
    """Sampling settings; `temperature == 0` means greedy decoding.

    A temperature between 0 and `MIN_SAMPLING_TEMPERATURE` becomes 0 (greedy) for both sides:
    sampling that cold picks the likeliest token anyway, and 1e-40 would divide the logits into
    infinities (transformers then fails with "probability tensor contains inf").

    >>> GenerationOptions(temperature=1e-40).temperature, GenerationOptions(temperature=0.5).greedy
    (0.0, False)
    """

    max_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stop", tuple(s for s in self.stop if s))
        _check_int("max_tokens", self.max_tokens, 1, MAX_NEW_TOKENS_LIMIT)
        _check_float("temperature", self.temperature, 0.0, 2.0)
        if self.temperature < MIN_SAMPLING_TEMPERATURE:
            object.__setattr__(self, "temperature", 0.0)
        _check_float("top_p", self.top_p, 0.0, 1.0, low_open=True)
        if len(self.stop) > MAX_STOP_SEQUENCES:
            raise ValueError(
                f"At most {MAX_STOP_SEQUENCES} stop sequences are allowed, got {len(self.stop)}."
            )

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @classmethod
    def from_text(
        cls,
        max_tokens: int,
        temperature: float,
        top_p: float,
        stop_text: str,
        max_tokens_limit: int = MAX_NEW_TOKENS_LIMIT,
    ) -> GenerationOptions:
        """Build from UI/API values, where stop sequences are one per line.

        >>> GenerationOptions.from_text(8, 0, 1, "###\\n\\nEND").stop
        ('###', 'END')
        """
        _check_int("max_tokens", max_tokens, 1, max_tokens_limit)
        stops = tuple(line for line in (stop_text or "").splitlines() if line)
        return cls(max_tokens=max_tokens, temperature=_real(temperature), top_p=_real(top_p), stop=stops)


def _real(value: object) -> object:
    """A whole number as a float (the transformers flavor's schema refuses an int temperature).

    >>> _real(2), _real(0.5), _real(True)
    (2.0, 0.5, True)
    """
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, got {value!r}.")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}.")


def _check_float(name: str, value: object, low: float, high: float, low_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}.")
    too_low = value <= low if low_open else value < low
    if math.isnan(value) or too_low or value > high:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must be in {bracket}{low}, {high}], got {value}.")
