"""Limits that fit the memory: at start-up, lower the prompt and answer limits to what both sides
can hold while answering, instead of refusing a side.

A side's serving need grows with the tokens one request holds, by its KV cache's exact size per
token (`memory.serving`); its weights and working memory do not. So the longest request that fits
follows in one step: what both sides need at the configured limits, less what this process may
use, divided by their KV bytes per token together. The limits are then cut in proportion (prompt
and answer keep their ratio) and rounded down to a multiple of 64 tokens. Below a useful floor
nothing is lowered, and a side that does not fit is refused when it loads, as before: the weights
alone do not fit there, and no limit helps.

Only sides whose model is on this machine already are planned (a local folder, a Hub snapshot in
the cache, the checkpoint a build starts from): planning never downloads. A first start from the
Hub is checked as each side loads.
"""

from __future__ import annotations

from dataclasses import replace

from wrappers.config import AppConfig
from wrappers.host import available_memory
from wrappers.limits import Limits
from wrappers.memory import GiB, ServingLine

STEP = 64  # lowered limits are multiples of this many tokens
MIN_PROMPT, MIN_NEW = 256, 64  # below these, lowering would leave an app nobody can use


def longest_request(lines: list[ServingLine], tokens: int, available: int) -> int:
    """The most tokens (prompt and answer) one request may hold so that every side fits.

    >>> longest_request([ServingLine("a", 10_000, 2), ServingLine("b", 6_000, 4)], 1000, 13_000)
    500
    >>> longest_request([ServingLine("a", 10_000, 2)], 1000, 20_000)
    1000
    """
    excess = sum(line.need for line in lines) - available
    if excess <= 0:
        return tokens
    per_token = sum(line.per_token for line in lines)
    return max(tokens - -(-excess // per_token), 0) if per_token else 0


def lowered(limits: Limits, tokens: int) -> Limits | None:
    """`limits` cut to requests of at most `tokens`, prompt and answer in proportion; None if
    that leaves less than a useful prompt or answer.

    >>> cut = lowered(Limits(max_prompt_tokens=2048, max_new_tokens=512), 1300)
    >>> cut.max_prompt_tokens, cut.max_new_tokens
    (1024, 256)
    >>> lowered(Limits(max_prompt_tokens=2048, max_new_tokens=512), 200) is None
    True
    """
    total = limits.max_prompt_tokens + limits.max_new_tokens
    prompt = limits.max_prompt_tokens * tokens // total // STEP * STEP
    new = min(limits.max_new_tokens, (tokens - prompt) // STEP * STEP)
    if prompt < MIN_PROMPT or new < MIN_NEW:
        return None
    return replace(limits, max_prompt_tokens=prompt, max_new_tokens=new)


def fit_limits(config: AppConfig, notice=print) -> AppConfig:
    """`config`, with its token limits lowered if both sides answering would not fit in memory
    now; `notice` gets one sentence saying so (the start-up log and the page show it)."""
    from wrappers.models import serving_lines  # it imports the backends, which need MLflow

    lines = serving_lines(config)
    limits, available = config.limits, available_memory()
    tokens = limits.max_prompt_tokens + limits.max_new_tokens
    fits = longest_request(lines, tokens, available)
    cut = lowered(limits, fits) if fits < tokens else None
    if cut is None:
        return config
    need = sum(line.need for line in lines)
    notice(
        f"Memory: both models answering a {limits.max_prompt_tokens}-token prompt with a "
        f"{limits.max_new_tokens}-token answer need about {need / GiB:.1f} GiB, and this process may "
        f"use {available / GiB:.1f} GiB, so the limits are lowered to prompts of {cut.max_prompt_tokens} "
        f"tokens and answers of {cut.max_new_tokens} (PHI3_MAX_PROMPT_TOKENS and PHI3_MAX_NEW_TOKENS "
        "set them; see docs/fullscale.md)."
    )
    return replace(config, limits=cut)
