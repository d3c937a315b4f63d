"""One request to both backends, interleaved step by step on one thread, and the verdict.

Interleaving on one thread means both panes stream at once while never
competing for the CPU: each backend's clock runs only during its own step,
so its figures match what it measures when run alone.

Which side steps next is processor sharing, step by step: the side whose next
step would end soonest on its own clock (its compute so far, read from its latest
`Result`, plus what that step is expected to take) steps next; ties in the
backends' order. This is fair queuing by finish time: each side gets an equal
share of the CPU, so the faster side's tokens arrive sooner and it finishes first
in the page, as it would on a machine of its own; and since a step cannot be cut
short, a side's long step (its first reads the whole prompt) waits until the
other side has used as much compute, rather than holding it up from the start.
The expected step comes from the side's measured speed (`wrappers/pace.py`) and
its prompt's length; a side whose speed is unknown expects 0 s, which is plain
least-compute-first. The clocks measure exactly what they measured before: a
side's clock runs only during its own steps.
Blind battles ask for `TURNS` (one token each in turn), so that the finishing
order does not tell which engine is which.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass

from compare.settings import differing_note
from wrappers.backend import Backend, Messages, stream_result
from wrappers.options import GenerationOptions
from wrappers.pace import measured_speed
from wrappers.results import Result

MIN_TIMED_TOKENS = 8  # decode steps below which a tokens/s figure is mostly noise


@dataclass(frozen=True)
class Verdict:
    identical: bool
    diverged_at_token: int | None  # index of the first differing token
    left_token: str | None  # the first side's token there (None: its answer had ended)
    right_token: str | None
    speed_ratio: float | None  # right decode tokens/s over left decode tokens/s
    summary: str
    same_conversation: bool = True  # False: the two models were sent different histories
    names: tuple[str, str] = ("left", "right")

    def to_dict(self) -> dict:
        """The API's verdict: side-named token fields, with left_/right_ kept as aliases."""
        named = {
            f"{name}_token": token
            for name, token in zip(self.names, (self.left_token, self.right_token), strict=True)
        }
        return {k: v for k, v in asdict(self).items() if k != "names"} | named


SHARED = "shared"  # processor sharing, step by step: the step that would end soonest on its own clock
TURNS = "turns"  # round-robin: one step each in turn, whatever each step costs
SCHEDULES = (SHARED, TURNS)


def compare_stream(
    backends: Mapping[str, Backend],
    conversations: Mapping[str, Messages],
    options: GenerationOptions,
    time_limit_s: float | None = None,
    schedule: str = SHARED,
) -> Iterator[dict[str, Result]]:
    """Yield every side's latest `Result` after each step of either side."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}.")
    deadline = None if time_limit_s is None else time.monotonic() + time_limit_s
    streams = {
        side: stream_result(backend, conversations[side], options, deadline)
        for side, backend in backends.items()
    }
    latest = {side: Result() for side in backends}
    steps = dict.fromkeys(backends, 0)
    expected = {side: expected_steps(backend, conversations[side]) for side, backend in backends.items()}
    try:
        while streams:
            upcoming = {side: next_step(latest[side], *expected[side]) for side in streams}
            side = next_side(list(streams), latest, steps, schedule, upcoming)
            result = next(streams[side], None)
            if result is None:
                del streams[side]
                continue
            latest[side], steps[side] = result, steps[side] + 1
            yield dict(latest)
    finally:
        for stream in streams.values():
            stream.close()


def next_side(
    running: list[str],
    latest: Mapping[str, Result],
    steps: Mapping[str, int],
    schedule: str,
    upcoming: Mapping[str, float] | None = None,
) -> str:
    """The side to step next: its next step ending soonest on its own clock (SHARED: compute so
    far plus the step's expected seconds, `upcoming`) or fewest steps (TURNS); ties in order.

    >>> from wrappers.results import Latency
    >>> latest = {"slow": Result(latency=Latency(total_s=0.8)), "fast": Result(latency=Latency(total_s=0.1))}
    >>> next_side(["slow", "fast"], latest, {"slow": 1, "fast": 5}, SHARED)
    'fast'
    >>> next_side(["slow", "fast"], latest, {"slow": 1, "fast": 5}, TURNS)
    'slow'

    Before either has run, the side whose first step (reading the prompt) is shorter goes first:

    >>> fresh, first_steps = {"onnx": Result(), "transformers": Result()}, {"onnx": 52.6, "transformers": 8.6}
    >>> next_side(["onnx", "transformers"], fresh, dict.fromkeys(fresh, 0), SHARED, first_steps)
    'transformers'
    """
    if schedule == TURNS:
        return min(running, key=lambda side: steps[side])  # min keeps the first of equals
    upcoming = upcoming or {}
    return min(running, key=lambda side: own_compute(latest[side]) + upcoming.get(side, 0.0))


def expected_steps(backend: Backend, messages: Messages) -> tuple[float, float]:
    """Seconds a side's first step (the prompt, then its first token) and each decode step are
    expected to take here, from its measured speed; 0 where that is not known (a remote endpoint,
    no warm-up yet)."""
    speed = measured_speed(backend)
    if speed is None:
        return 0.0, 0.0
    try:
        tokens = backend.prompt_tokens(messages) or 0
    except Exception:  # noqa: BLE001 - a prompt it cannot count fails in its own step, with its message
        tokens = 0
    return speed.seconds(tokens, 1), speed.decode_s


def next_step(latest: Result, first_s: float, decode_s: float) -> float:
    """Seconds a side's next step is expected to take: its first before its first token, then one
    decode step (its own mean so far, else its measured speed's `decode_s`)."""
    if not latest.pieces:
        return first_s
    decoded = timed_steps(latest)
    if decoded and latest.latency.total_s and latest.latency.ttft_s is not None:
        return (latest.latency.total_s - latest.latency.ttft_s) / decoded
    return decode_s


def own_compute(result: Result) -> float:
    """Seconds a side has spent in its own steps so far (0 before its first)."""
    return result.latency.total_s or 0.0


def judge(
    left: Result, right: Result, names: tuple[str, str] = ("left", "right"), same_conversation: bool = True
) -> Verdict:
    """Compare two finished results token by token, and their decode speeds."""
    index = first_difference(left.pieces, right.pieces)
    ratio = speed_ratio(left, right)
    context = ("" if same_conversation else DIFFERENT_HISTORIES) + _settings_context(left, right, names)
    if left.error or right.error:
        summary = "Not compared: a model reported an error."
        return Verdict(False, None, None, None, ratio, summary + context, same_conversation, names)
    if index is None:
        summary = f"Identical completions ({_tokens(len(left.pieces))})."
        verdict = (True, None, None, None)
    else:
        lt, rt = _at(left.pieces, index), _at(right.pieces, index)
        summary = f"Completions diverge at token {index + 1}: {_shown(lt)} vs {_shown(rt)}."
        verdict = (False, index, lt, rt)
    speed = speed_sentence(left, right, names)
    return Verdict(*verdict, ratio, f"{summary} {speed}{context}", same_conversation, names)


DIFFERENT_HISTORIES = (
    " ⚠️ The two models were sent different conversations (their earlier answers differ), "
    "so this turn is not a like-for-like comparison."
)


def _settings_context(left: Result, right: Result, names: tuple[str, str]) -> str:
    note = differing_note(dict(zip(names, (left, right), strict=True)))
    return f" ⚠️ {note}" if note else ""


def timed_steps(result: Result) -> int:
    """Decode steps behind a result's tokens/s: its tokens after the first.

    >>> from wrappers.results import Usage
    >>> timed_steps(Result(usage=Usage(5, 9, 14))), timed_steps(Result())
    (8, 0)
    """
    return max((result.usage.completion_tokens or 0) - 1, 0)


def decode_timed(result: Result) -> bool:
    """Whether a result's decode speed rests on enough tokens to be shown and compared."""
    return timed_steps(result) >= MIN_TIMED_TOKENS and result.latency.tokens_per_s is not None


def speed_ratio(left: Result, right: Result) -> float | None:
    """Right decode tokens/s over left's, when both are timed (`decode_timed`), else None."""
    if not (decode_timed(left) and decode_timed(right)):
        return None
    return _ratio(right.latency.tokens_per_s, left.latency.tokens_per_s)


def speed_sentence(left: Result, right: Result, names: tuple[str, str]) -> str:
    """Which side decodes faster, rounded to what the sample supports.

    >>> from wrappers.results import Latency, Usage
    >>> a = Result(usage=Usage(5, 40, 45), latency=Latency(1.0, 0.1, 43.3))
    >>> b = Result(usage=Usage(5, 40, 45), latency=Latency(0.1, 0.01, 433.0))
    >>> speed_sentence(a, b, ("transformers", "onnx"))
    'onnx decodes about 10× faster (39 timed tokens each side).'
    >>> speed_sentence(a, Result(usage=Usage(5, 3, 8)), ("transformers", "onnx"))
    'Too short to compare decoding speeds: onnx has 2 tokens after the first, 8 needed.'
    """
    steps = {n: timed_steps(r) for n, r in zip(names, (left, right), strict=True)}
    short = [f"{n} has {_tokens(k)}" for n, k in steps.items() if k < MIN_TIMED_TOKENS]
    if len(short) == len(steps) and len(set(steps.values())) == 1:
        short = [f"both have {_tokens(steps[names[0]])}"]
    if short:
        return (
            f"Too short to compare decoding speeds: {' and '.join(short)} after the first, "
            f"{MIN_TIMED_TOKENS} needed."
        )
    ratio = speed_ratio(left, right)
    if ratio is None:
        return ""
    sample = (
        f"({min(steps.values())} timed tokens each side)"
        if len(set(steps.values())) == 1
        else (f"({' and '.join(str(k) for k in steps.values())} timed tokens)")
    )
    if 1 / 1.1 <= ratio <= 1.1:
        return f"Both decode at about the same speed {sample}."
    faster, factor = (names[1], ratio) if ratio >= 1 else (names[0], 1 / ratio)
    return f"{faster} decodes about {_two_figures(factor)}× faster {sample}."


def _two_figures(x: float) -> str:
    """Two significant figures: a ratio of two timings is rarely known better.

    >>> _two_figures(155.12), _two_figures(1.234), _two_figures(12.6)
    ('160', '1.2', '13')
    """
    return f"{float(f'{x:.2g}'):g}"


def _tokens(n: int) -> str:
    return f"{n} token" if n == 1 else f"{n} tokens"


def _shown(token: str | None) -> str:
    """A token as the verdict prints it; None means that answer had already ended."""
    return "(end of answer)" if token is None else repr(token)


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
