"""Refuse, before any model runs, a request that cannot finish within its time limit here.

The expected time of a request is each side's own compute, from its measured speed on
this machine (`wrappers/pace.py`): its prompt's prefill (a base every prompt pays, then a
time per token), then `max_tokens` of decode,
summed over the sides, since they share the CPU (processor sharing, one thread). A
request expected to run past the limit is refused with the expected time and what would
fit: the longest prompt at these max tokens, and the most max tokens for this prompt.

Why refuse rather than cap `max_tokens` to what fits: a cap changes what is compared
(the traces, the votes and a batch's rows would hold answers cut at different lengths
without anyone having asked for it), and a note saying so is easily missed; a refusal
costs one resubmission, and says exactly what to resubmit. The estimate is central, with
no margin: a request that fits only just may still be stopped by the time limit itself,
which keeps the text so far. `max_tokens` is the worst case: an answer that ends sooner
takes less. A side whose speed is not known (a remote endpoint, a failed warm-up) adds
nothing, so the check only refuses what is sure not to fit on the sides it knows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from wrappers.backend import Backend, Messages
from wrappers.options import GenerationOptions
from wrappers.pace import Speed, measured_speed
from wrappers.results import Result


def over_time(
    backends: Mapping[str, Backend],
    conversations: Mapping[str, Messages],
    options: GenerationOptions,
    time_limit_s: float | None,
) -> str | None:
    """Why this request cannot finish within `time_limit_s` on this machine, or None if it can.

    Only the sides in `conversations` run (one, for a regenerated pane).
    """
    if time_limit_s is None:
        return None
    speeds, tokens = {}, {}
    for side, messages in conversations.items():
        speed = measured_speed(backends[side])
        count = speed and backends[side].prompt_tokens(messages)
        if speed and count:
            speeds[side], tokens[side] = speed, count
    if not speeds or any(_too_long(backends[side], tokens[side]) for side in tokens):
        return None  # nothing known, or the token limit's own refusal is the one that helps
    expected = {side: speeds[side].seconds(tokens[side], options.max_tokens) for side in speeds}
    if sum(expected.values()) <= time_limit_s:
        return None
    return refusal(speeds, tokens, expected, options.max_tokens, time_limit_s)


def refusal(
    speeds: Mapping[str, Speed],
    tokens: Mapping[str, int],
    expected: Mapping[str, float],
    max_tokens: int,
    limit_s: float,
) -> str:
    r"""The message: the expected time, each side's share, the limit, and what would fit.

    >>> speeds = {"transformers": Speed(0.026, 0.6), "onnx": Speed(0.032, 0.146)}  # s per token
    >>> tokens = {"transformers": 2048, "onnx": 2048}
    >>> expected = {s: speeds[s].seconds(tokens[s], 16) for s in speeds}
    >>> print(refusal(speeds, tokens, expected, 16, 120.0).replace(" (", "\n(").replace("; ", ";\n"))
    This prompt of 2,048 tokens, with up to 16 new tokens, would take about 2 min 10 s here
    (transformers 1 min 2 s, onnx 1 min 8 s: the two share the CPU);
    the time limit is 2 min. Prompts up to about 1,800 tokens fit at 16 new tokens;
    this prompt fits at 2 new tokens or fewer.
    """
    total = sum(expected.values())
    shares = ", ".join(f"{side} {duration(s)}" for side, s in expected.items())
    shared = ": the two share the CPU" if len(expected) > 1 else ""
    prompt = max(tokens.values())
    head = (
        f"This prompt of {prompt:,} tokens, with up to {max_tokens:,} new tokens, would take about "
        f"{duration(total)} here ({shares}{shared}); the time limit is {duration(limit_s)}."
    )
    base = sum(speeds[side].prefill_base_s for side in speeds)  # what any prompt costs, however short
    prefill = sum(speeds[side].prefill_s for side in speeds)
    decode = sum(speeds[side].decode_s for side in speeds)
    room = limit_s - base
    decoding = max(max_tokens - 1, 0) * decode
    shorter = math.floor((room - decoding) / max(prefill, 1e-9))  # the prompt that fits
    fewer = math.floor(1 + (room - prompt * prefill) / decode)  # the max tokens that fit this prompt
    fits = []
    if shorter >= 1:
        fits.append(f"prompts up to about {rounded(shorter):,} tokens fit at {max_tokens:,} new tokens")
    if fewer >= 1:
        fits.append(f"this prompt fits at {fewer:,} new tokens or fewer")
    if not fits:
        return f"{head} Shorten the prompt and lower max tokens."
    advice = "; ".join(fits)
    return f"{head} {advice[0].upper()}{advice[1:]}."


def refused(backends: Mapping[str, Backend], message: str) -> dict[str, Result]:
    """Every side's answer to a refused request: the reason, and nothing generated."""
    return {
        side: Result(model=backend.model_ref(), error=message, done=True)
        for side, backend in backends.items()
    }


def _too_long(backend: Backend, tokens: int) -> bool:
    limit = getattr(backend, "max_prompt_tokens", None)
    return limit is not None and tokens > limit


def rounded(tokens: int) -> int:
    """Down to two significant figures: the estimate is not known better.

    >>> rounded(1437), rounded(87), rounded(7)
    (1400, 87, 7)
    """
    if tokens < 100:
        return tokens
    step = 10 ** (len(str(tokens)) - 2)
    return tokens // step * step


def duration(seconds: float) -> str:
    """A time as a person reads it.

    >>> duration(130.4), duration(120), duration(42.4), duration(2.345), duration(0.0421)
    ('2 min 10 s', '2 min', '42 s', '2.3 s', '0.042 s')
    """
    if seconds < 10:
        return f"{seconds:.2g} s"
    whole = round(seconds)
    minutes, rest = divmod(whole, 60)
    if not minutes:
        return f"{rest} s"
    return f"{minutes} min" + (f" {rest} s" if rest else "")
