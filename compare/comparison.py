"""One request to both backends, interleaved token by token, and the verdict.

Interleaving on one thread means both panes stream at once while never
competing for the CPU: each backend's clock runs only during its own step,
so its figures match what it measures when run alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass

from wrappers.backend import Backend, Messages, stream_result
from wrappers.options import GenerationOptions
from wrappers.results import Result


@dataclass(frozen=True)
class Verdict:
    identical: bool
    diverged_at_token: int | None  # index of the first differing token
    left_token: str | None
    right_token: str | None
    speed_ratio: float | None  # right decode tokens/s over left decode tokens/s
    summary: str

    def to_dict(self) -> dict:
        return asdict(self)


def compare_stream(
    backends: Mapping[str, Backend],
    conversations: Mapping[str, Messages],
    options: GenerationOptions,
    time_limit_s: float | None = None,
) -> Iterator[dict[str, Result]]:
    """Yield every side's latest `Result` after each step of either side."""
    deadline = None if time_limit_s is None else time.monotonic() + time_limit_s
    streams = {
        side: stream_result(backend, conversations[side], options, deadline)
        for side, backend in backends.items()
    }
    latest = {side: Result() for side in backends}
    try:
        while streams:
            for side, stream in list(streams.items()):
                result = next(stream, None)
                if result is None:
                    del streams[side]
                    continue
                latest[side] = result
                yield dict(latest)
    finally:
        for stream in streams.values():
            stream.close()


def judge(left: Result, right: Result, names: tuple[str, str] = ("left", "right")) -> Verdict:
    """Compare two finished results token by token, and their decode speeds."""
    index = first_difference(left.pieces, right.pieces)
    ratio = _ratio(right.latency.tokens_per_s, left.latency.tokens_per_s)
    if left.error or right.error:
        return Verdict(False, None, None, None, ratio, "Not compared: a model reported an error.")
    if index is None:
        summary = f"Identical completions ({len(left.pieces)} tokens)."
        return Verdict(True, None, None, None, ratio, summary + _speed(ratio, names))
    lt, rt = _at(left.pieces, index), _at(right.pieces, index)
    summary = f"Completions diverge at token {index}: {lt!r} vs {rt!r}."
    return Verdict(False, index, lt, rt, ratio, summary + _speed(ratio, names))


def first_difference(a: tuple[str, ...], b: tuple[str, ...]) -> int | None:
    """The first index where two token sequences differ, or None if equal.

    >>> first_difference(("The", " cat"), ("The", " dog")), first_difference(("a",), ("a",))
    (1, None)
    """
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def _at(pieces: tuple[str, ...], index: int) -> str | None:
    return pieces[index] if index < len(pieces) else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _speed(ratio: float | None, names: tuple[str, str]) -> str:
    if ratio is None:
        return ""
    faster, factor = (names[1], ratio) if ratio >= 1 else (names[0], 1 / ratio)
    return f" {faster} decodes {factor:.2f}x faster."
