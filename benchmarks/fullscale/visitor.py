"""What a visitor asks of the running app, through gradio_client, and what the benchmark notes of it.

Shared by the rehearsal (`rehearsal.py`) and the serving benchmark (`serve.py`):

- the token limits the app really runs with: its own, or the lower ones its start-up log
  announces when memory is short (`wrappers/limits_fit.py`);
- one streamed `/compare`: when each pane showed its first and last token, beside each side's
  own clocks; a request the app refuses up front is a result too, with the app's message;
- the longest prompt the app accepts and answers: the token limit first; if the time budget
  (`compare/budget.py`) refuses it, the shorter prompt its message says fits, else a step down;
- each side alone at several prompt lengths: time to first token and decode speed.
"""

from __future__ import annotations

import re
import time

from benchmarks.engines import prompt_of_length
from wrappers.config import Limits

LOWERED = re.compile(r"lowered to prompts of (\d+) tokens and answers of (\d+)")
FITS = re.compile(r"[Pp]rompts up to about ([\d,]+) tokens fit")
STEP = 64  # a step down without a figure to go by: a quarter less, in multiples of this
MIN_PROMPT = 128
ATTEMPTS = 4  # the longest prompt's tries at most: the limit, then what the refusals say fits


def app_limits(env: dict[str, str] | None, log_text: str) -> dict:
    """The token limits the app runs with: its own (`env`'s, else the defaults), lowered at
    start-up if its log says so, with the log's sentence.

    >>> app_limits({}, "")
    {'prompt': 2048, 'new': 512, 'lowered': None}
    >>> log = "[ 0.0s] Memory: ... lowered to prompts of 1600 tokens and answers of 384 (...)"
    >>> app_limits({}, log)["prompt"], app_limits({}, log)["lowered"][:17]
    (1600, '[ 0.0s] Memory: .')
    """
    lowered = LOWERED.search(log_text)
    if lowered:
        line = next(line for line in log_text.splitlines() if lowered[0] in line)
        return {"prompt": int(lowered[1]), "new": int(lowered[2]), "lowered": line.strip()}
    env, defaults = env or {}, Limits()
    return {
        "prompt": int(env.get("PHI3_MAX_PROMPT_TOKENS", defaults.max_prompt_tokens)),
        "new": int(env.get("PHI3_MAX_NEW_TOKENS", defaults.max_new_tokens)),
        "lowered": None,
    }


def stream_compare(client, prompt: str, new_tokens: int, deadline_s: float | None = None) -> dict:
    """One streamed /compare (no fidelity scoring): per side, the first and last moments its text
    changed, from the request's start, and its own clocks; how the comparison ended.

    A request refused up front (too long, or too slow to finish in time here) returns
    {"refused": the app's message}. Past `deadline_s` the request is cancelled, as a visitor's
    Stop would: the figures so far stand.
    """
    started = time.perf_counter()
    job = client.submit(prompt=prompt, max_tokens=new_tokens, fidelity=False, api_name="/compare")
    seen = {side: {"text": "", "first_s": None, "last_s": None} for side in ("transformers", "onnx")}
    last = None
    for update in job:
        now = time.perf_counter() - started
        if deadline_s is not None and now > deadline_s:
            job.cancel()
            break
        for side, mark in seen.items():
            text = _shown(update.get(side) or {})
            if text and text != mark["text"]:
                mark["first_s"] = mark["first_s"] or now
                mark["last_s"], mark["text"] = now, text
        last = update
    wall = time.perf_counter() - started
    if last is None:
        return {"refused": _failure(job), "wall_s": wall}
    sides = {side: side_figures(last[side]) | {"pane_first_s": mark["first_s"], "pane_last_s": mark["last_s"]}
             for side, mark in seen.items()}  # fmt: skip
    return sides | {"ended": last.get("ended"), "wall_s": wall}


def longest_answered(client, tokenizer, limits: dict, new_tokens: int, progress=print) -> dict:
    """The longest prompt the app accepts, answered by both sides: every try, refusals included.

    The first try is the token limit. The time budget refuses up front what cannot finish in
    time here and says which prompts fit; the next try is that length (or, with no figure,
    a quarter less), until one is accepted or `ATTEMPTS` are used.
    """
    tries, length = [], limits["prompt"]
    while len(tries) < ATTEMPTS and length >= MIN_PROMPT:
        prompt = prompt_of_length(tokenizer, length).messages[-1]["content"]
        asked = {"prompt_tokens": length, "new_tokens": new_tokens}
        figures = stream_compare(client, prompt, new_tokens) | asked
        tries.append(figures)
        progress(f"  longest, {length} tokens: {figures.get('refused') or figures.get('ended')}")
        if "refused" not in figures:
            break
        length = shorter(figures["refused"], length)
    answered = [t for t in tries if "refused" not in t]
    return {"tries": tries, "answered": answered[-1] if answered else None}


def shorter(refusal: str, length: int) -> int:
    """The next prompt length to try after `refusal` of a `length`-token prompt.

    >>> shorter("... Prompts up to about 1,800 tokens fit at 16 new tokens; ...", 2048)
    1800
    >>> shorter("This prompt has too many tokens", 2048)
    1536
    """
    fits = FITS.search(refusal)
    if fits:
        return min(int(fits[1].replace(",", "")), length - 1)
    return length * 3 // 4 // STEP * STEP


def speed(client, tokenizer, lengths, new_tokens: int = 16, progress=print) -> list[dict]:
    """Each side alone at each prompt length: time to first token and decode speed (its own clock).

    A length the app refuses (the time budget, alone on the CPU) is a row with its message."""
    rows = []
    for length in lengths:
        prompt = prompt_of_length(tokenizer, length).messages[-1]["content"]
        for side in ("transformers", "onnx"):
            try:
                answer = client.predict(prompt=prompt, max_tokens=new_tokens, api_name=f"/chat_{side}")
            except Exception as exc:  # noqa: BLE001 - the app's refusal, as a client receives it
                rows.append({"side": side, "prompt_tokens": length, "refused": _message(exc)})
            else:  # one refused for its length counts no prompt tokens: the asked length stands
                figures = side_figures(answer)
                rows.append({"side": side} | figures | {"prompt_tokens": figures["prompt_tokens"] or length})
            progress(f"  speed, {side}, {length} tokens: {rows[-1]}")
    return rows


def side_figures(side: dict) -> dict:
    """A side's answer as the benchmarks keep it: its own clocks, its tokens, its model and error."""
    latency, usage = side["latency"], side["usage"]
    return {
        "ttft_s": latency["ttft_s"], "tokens_per_s": latency["tokens_per_s"], "total_s": latency["total_s"],
        "prompt_tokens": usage["prompt_tokens"], "completion_tokens": usage["completion_tokens"],
        "model": side["model"], "error": side["error"],
    }  # fmt: skip


def _shown(side: dict) -> str:
    """What a pane shows so far: /compare streams each side's raw text and token count."""
    tokens = (side.get("usage") or {}).get("completion_tokens") or 0
    return f"{tokens}:{side.get('raw') or ''}" if tokens or side.get("raw") else ""


def _failure(job) -> str:
    """Why a request ended with no update: the app's message (a refusal arrives as an error)."""
    try:
        job.result()
    except Exception as exc:  # noqa: BLE001 - whatever the client raises carries the app's message
        return _message(exc)
    return "no update and no error"


def _message(exc: Exception) -> str:
    return str(getattr(exc, "message", None) or exc)
