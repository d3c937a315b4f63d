"""How fast a backend runs on this machine: its prefill and decode speed, a running estimate.

Measured once when the model loads (`startup.measure_pace`: a warm-up request of known
size, named in the start-up log), then updated from every answer it finishes (`stream_result`
feeds it). Both figures are seconds of the side's own compute per token, read from the
same clocks as the panes' figures: prefill from the time to the first token over the
prompt's tokens, decode from the time after it over the tokens after the first.

Each figure is a ratio of decayed sums (seconds over tokens), so a long request weighs
as much as its tokens, and the machine's present load outweighs its past within a few
requests. Concessions: prefill is taken as linear in the prompt's length (attention's
quadratic share makes a 2,048-token Phi-3-mini prompt some 10% slower per token than a
64-token one, until such a prompt has been answered here once); an answer stopped,
cut or failed teaches nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from wrappers.results import Result

DECAY = 0.7  # each new answer keeps 70% of the weight of those before it
WARM_UP_PROMPT = " ".join(["hello"] * 60)  # about 64 tokens with the chat template
WARM_UP_TOKENS = 8


@dataclass(frozen=True)
class Speed:
    """Seconds of own compute per prompt token (prefill) and per generated token (decode)."""

    prefill_s: float
    decode_s: float

    def seconds(self, prompt_tokens: int, max_tokens: int) -> float:
        """Expected own compute: the prompt to the first token, then max_tokens - 1 decode steps.

        >>> Speed(prefill_s=0.02, decode_s=0.5).seconds(1000, 11)
        25.0
        """
        return prompt_tokens * self.prefill_s + max(max_tokens - 1, 0) * self.decode_s

    def describe(self) -> str:
        """>>> Speed(0.002, 0.04).describe(), Speed(0.00077, 1.5).describe()
        ('prefill 500 tokens/s, decode 25 tokens/s', 'prefill 1,299 tokens/s, decode 0.667 tokens/s')
        """
        return f"prefill {_rate(self.prefill_s)} tokens/s, decode {_rate(self.decode_s)} tokens/s"


def _rate(seconds_per_token: float) -> str:
    rate = 1 / seconds_per_token
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.3g}"


class Pace:
    """One side's running speed estimate; thread-safe, empty until its first finished answer."""

    def __init__(self, decay: float = DECAY) -> None:
        self._lock = threading.Lock()
        self._decay = decay
        self._prefill = (0.0, 0.0)  # decayed (seconds, prompt tokens)
        self._decode = (0.0, 0.0)  # decayed (seconds, tokens after the first)

    def observe(self, result: Result) -> None:
        """Learn from a finished answer; stopped, cut or failed ones are ignored."""
        prompt, tokens = result.usage.prompt_tokens, result.usage.completion_tokens
        ttft, total = result.latency.ttft_s, result.latency.total_s
        if result.error or not result.done or not prompt or not tokens or ttft is None or total is None:
            return
        with self._lock:
            self._prefill = self._add(self._prefill, ttft, prompt)
            if tokens >= 2 and total > ttft:
                self._decode = self._add(self._decode, total - ttft, tokens - 1)

    def speed(self) -> Speed | None:
        """The estimate so far; None until both prefill and decode have been seen."""
        with self._lock:
            (prefill_s, prompt), (decode_s, decoded) = self._prefill, self._decode
        if not prompt or not decoded:
            return None
        return Speed(prefill_s / prompt, decode_s / decoded)

    def forget(self) -> None:
        with self._lock:
            self._prefill = self._decode = (0.0, 0.0)

    def _add(self, sums: tuple[float, float], seconds: float, tokens: int) -> tuple[float, float]:
        return (sums[0] * self._decay + seconds, sums[1] * self._decay + tokens)
