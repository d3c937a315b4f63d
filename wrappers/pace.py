"""How fast a backend runs on this machine: its prefill and decode speed, a running estimate.

Measured when the model loads (`startup.measure_pace`), then updated from every answer it
finishes (`stream_result` feeds it). Both figures are read from the same clocks as the
panes' figures: prefill from the time to the first token, decode from the time after it
over the tokens after the first.

Prefill is taken as `base + prompt tokens x per token`. The warm-up finds both from two
prompts of different lengths, after a first request that pays each library's one-time
costs (allocations, the first run of each graph) and is then forgotten: priced per token
from one short prompt, that cost, or the part of a prompt's time that does not grow with
its length, was spread over its few tokens and priced a long prompt far too high (at full
size, 7 December: 67 ms a token for ONNX where a 1000-token prompt took 55). The base stays
as the warm-up found it; each answer then updates the per-token figure and the decode
figure, each a ratio of decayed sums (seconds over tokens), so a long request weighs as
much as its tokens, and the machine's present load outweighs its past within a few
requests. Concessions: attention's quadratic share is not modelled (it makes a 2,048-token
Phi-3-mini prompt some 10% slower per token than a short one, until such a prompt has been
answered here); the base is not re-fitted from answers, since their lengths seldom differ
enough to tell it from the per-token figure; an answer stopped, cut or failed teaches nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from wrappers.results import Result

DECAY = 0.7  # each new answer keeps 70% of the weight of those before it
WARM_UP_PROMPT = " ".join(["hello"] * 60)  # about 64 tokens with the chat template
WARM_UP_LONG_PROMPT = " ".join(["hello"] * 250)  # about 256: four times as long, to tell base from slope
WARM_UP_TOKENS = 8


@dataclass(frozen=True)
class Speed:
    """Seconds of own compute per prompt token (prefill, after a base every prompt pays) and per
    generated token (decode)."""

    prefill_s: float
    decode_s: float
    prefill_base_s: float = 0.0

    def seconds(self, prompt_tokens: int, max_tokens: int) -> float:
        """Expected own compute: the prompt to the first token, then max_tokens - 1 decode steps.

        >>> Speed(prefill_s=0.02, decode_s=0.5).seconds(1000, 11)
        25.0
        >>> Speed(prefill_s=0.02, decode_s=0.5, prefill_base_s=1.5).seconds(1000, 11)
        26.5
        """
        return self.prefill_base_s + prompt_tokens * self.prefill_s + max(max_tokens - 1, 0) * self.decode_s

    def describe(self) -> str:
        """>>> Speed(0.002, 0.04).describe()
        'prefill 500 tokens/s, decode 25 tokens/s'
        >>> Speed(0.00077, 1.5, 0.25).describe()
        'prefill 1,299 tokens/s + 0.25 s a prompt, decode 0.667 tokens/s'
        """
        base = f" + {self.prefill_base_s:.2g} s a prompt" if self.prefill_base_s else ""
        return f"prefill {_rate(self.prefill_s)} tokens/s{base}, decode {_rate(self.decode_s)} tokens/s"


def _rate(seconds_per_token: float) -> str:
    if seconds_per_token <= 0:  # every prompt since took no longer than the base
        return "over a million"
    rate = 1 / seconds_per_token
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.3g}"


def prefill_base(points: list[tuple[int, float]]) -> float:
    """The time every prompt pays whatever its length: the intercept of the line through two
    (prompt tokens, seconds) points, or 0 where it would be negative (a prefill slower per token
    as the prompt grows) or the lengths are the same.

    >>> prefill_base([(64, 1.5), (256, 4.5)]), prefill_base([(64, 1.0), (256, 5.0)])
    (0.5, 0.0)
    """
    (short, short_s), (long, long_s) = sorted(points)
    if long <= short or long_s <= short_s:
        return 0.0  # no length effect seen: no way to tell a base from noise
    slope = (long_s - short_s) / (long - short)
    return max(0.0, short_s - slope * short)


class Pace:
    """One side's running speed estimate; thread-safe, empty until its first finished answer."""

    def __init__(self, decay: float = DECAY) -> None:
        self._lock = threading.Lock()
        self._decay = decay
        self._base = 0.0  # seconds every prefill pays, from the warm-up
        self._prefill = (0.0, 0.0)  # decayed (seconds beyond the base, prompt tokens)
        self._decode = (0.0, 0.0)  # decayed (seconds, tokens after the first)

    def observe(self, result: Result) -> None:
        """Learn from a finished answer; stopped, cut or failed ones are ignored."""
        prompt, tokens = result.usage.prompt_tokens, result.usage.completion_tokens
        ttft, total = result.latency.ttft_s, result.latency.total_s
        if result.error or not result.done or not prompt or not tokens or ttft is None or total is None:
            return
        with self._lock:
            self._prefill = self._add(self._prefill, max(ttft - self._base, 0.0), prompt)
            if tokens >= 2 and total > ttft:
                self._decode = self._add(self._decode, total - ttft, tokens - 1)

    def calibrate(self, results: list[Result]) -> None:
        """Start again from warm-up answers to two prompt lengths: the base from their times
        to the first token, then each observed as an answer."""
        timed = [(r.usage.prompt_tokens, r.latency.ttft_s) for r in results]
        base = prefill_base(timed) if len(timed) == 2 and all(n and s for n, s in timed) else 0.0
        self.forget()
        with self._lock:
            self._base = base
        for result in results:
            self.observe(result)

    def speed(self) -> Speed | None:
        """The estimate so far; None until both prefill and decode have been seen."""
        with self._lock:
            (prefill_s, prompt), (decode_s, decoded), base = self._prefill, self._decode, self._base
        if not prompt or not decoded:
            return None
        return Speed(prefill_s / prompt, decode_s / decoded, base)

    def forget(self) -> None:
        with self._lock:
            self._prefill = self._decode = (0.0, 0.0)
            self._base = 0.0

    def _add(self, sums: tuple[float, float], seconds: float, tokens: int) -> tuple[float, float]:
        return (sums[0] * self._decay + seconds, sums[1] * self._decay + tokens)


def measured_speed(backend: object) -> Speed | None:
    """A backend's measured speed here; None where it keeps none (a remote endpoint) or has not
    measured one yet."""
    pace = getattr(backend, "pace", None)
    return pace.speed() if pace is not None else None
