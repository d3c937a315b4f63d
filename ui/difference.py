"""The difference view under the verdict: both answers aligned at their first differing token, then
a word-level diff. Pure functions, no Gradio.

The diff itself is computed in `compare/diff.py`; this module only lays it out as HTML. Every piece
of an answer goes through `html.escape`, so a model's output never becomes markup.
"""

from __future__ import annotations

import html

from compare.diff import MAX_CHANGED_SHARE, WordOp, changed_share, divergence, word_diff
from wrappers import Result


def difference_html(left: Result, right: Result, names: tuple[str, str]) -> str:
    """Both answers aligned at their first differing token, then a word-level diff."""
    if not left.pieces and not right.pieces:
        return ""
    if left.error or right.error:
        return "<p>No difference view: a model reported an error.</p>"
    split = divergence(left.pieces, right.pieces)
    if split.at is None:
        count = len(left.pieces)
        return f"<p class='diff-same'>The two answers are identical, token for token ({count} tokens).</p>"
    rows = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{_aligned(split.skipped, split.before, tail)}</td></tr>"
        for name, tail in zip(names, (split.left, split.right), strict=True)
    )
    head = f"<p>First difference at token {split.at + 1} (highlighted), with the tokens around it:</p>"
    words = _words_view(left, right, names)
    return f"<div class='diff-view'>{head}<table class='diff-tokens'>{rows}</table>{words}</div>"


def _words_view(left: Result, right: Result, names: tuple[str, str]) -> str:
    """The word diff while it helps (most words shared); else both answers side by side."""
    ops = word_diff(left.text, right.text)
    share = changed_share(ops)
    if share >= MAX_CHANGED_SHARE:
        cells = "".join(
            f"<td><b>{html.escape(name)}</b><br>{html.escape(r.text)}</td>"
            for name, r in zip(names, (left, right), strict=True)
        )
        return (
            f"<p class='diff-apart'>The answers differ entirely ({share:.0%} of their words differ), "
            f"so there is no word diff; side by side:</p><table class='diff-side'><tr>{cells}</tr></table>"
        )
    return (
        f"<p>Word by word (<del>{html.escape(names[0])} only</del>, "
        f"<ins>{html.escape(names[1])} only</ins>):</p>"
        f"<p class='diff-words'>{_words_html(ops)}</p>"
    )


def _aligned(skipped: int, before: tuple[str, ...], tail: tuple[str, ...]) -> str:
    lead = "<span class='diff-skip'>…</span>" if skipped else ""
    shared = "".join(_token(t) for t in before)
    if not tail:
        return f"{lead}{shared}<mark class='diff-first'>(end of answer)</mark>"
    first, rest = tail[0], tail[1:]
    return f"{lead}{shared}<mark class='diff-first'>{_visible(first)}</mark>" + "".join(
        _token(t) for t in rest
    )


def _token(piece: str) -> str:
    return f"<span class='diff-token'>{_visible(piece)}</span>"


def _visible(piece: str) -> str:
    """A token's text with its spaces and line breaks made visible."""
    return html.escape(piece).replace(" ", "·").replace("\n", "↵") or "∅"


def _words_html(ops: list[WordOp]) -> str:
    parts = []
    for op in ops:
        if op.op == "equal":
            parts.append(html.escape(op.left))
            continue
        parts.append(f"<del>{html.escape(op.left)}</del>" if op.left else "")
        parts.append(f"<ins>{html.escape(op.right)}</ins>" if op.right else "")
    return "".join(parts)
