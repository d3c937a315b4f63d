"""What each side was asked with, in words: the verdict and the fidelity note say it.

Both sides normally share one `GenerationOptions`. Regenerating one side with other settings
leaves the other side's answer as it was, so a turn can hold two answers made with different
settings; each `Result` keeps its own options, and these sentences read them from there.
"""

from __future__ import annotations

from collections.abc import Mapping

from wrappers.options import GenerationOptions
from wrappers.results import Result


def describe(options: GenerationOptions) -> str:
    """The sampling settings in a few words.

    >>> describe(GenerationOptions()), describe(GenerationOptions(temperature=1.5, top_p=0.9))
    ('greedy', 'sampled at temperature 1.5, top_p 0.9')
    """
    if options.greedy:
        return "greedy"
    return f"sampled at temperature {options.temperature:g}, top_p {options.top_p:g}"


def limits(options: GenerationOptions) -> str:
    """Max tokens and stop sequences, in words.

    >>> limits(GenerationOptions(max_tokens=8, stop=("END",)))
    "max 8 tokens, stop ['END']"
    """
    stops = f", stop {list(options.stop)}" if options.stop else ""
    return f"max {options.max_tokens} tokens{stops}"


def per_side(results: Mapping[str, Result]) -> dict[str, GenerationOptions]:
    """Each side's options, where its result knows them."""
    return {side: r.options for side, r in results.items() if r.options is not None}


def differing_note(results: Mapping[str, Result]) -> str:
    """A sentence when the sides were asked with different settings, else "".

    >>> a = Result(options=GenerationOptions())
    >>> b = Result(options=GenerationOptions(temperature=1.5))
    >>> print(differing_note({"transformers": a, "onnx": b}))
    The two answers used different settings: transformers greedy, max 128 tokens; onnx sampled at
    temperature 1.5, top_p 1, max 128 tokens.
    >>> differing_note({"transformers": a, "onnx": a})
    ''
    """
    options = per_side(results)
    if len(options) < 2 or len(set(options.values())) == 1:
        return ""
    parts = [f"{side} {describe(o)}, {limits(o)}" for side, o in options.items()]
    return "The two answers used different settings: " + "; ".join(parts) + "."
