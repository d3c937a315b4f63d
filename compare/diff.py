"""Where two answers part: the first divergent token in context, and a word-level diff.

Pure functions over a `Result`'s per-token pieces and texts; the UI turns them
into HTML. Words are compared with the standard library's `difflib`.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from compare.comparison import first_difference

CONTEXT_TOKENS = 6  # tokens shown before and after the first divergence
MAX_CHANGED_SHARE = 0.5  # a word diff helps only while most words are shared


@dataclass(frozen=True)
class Divergence:
    """Both answers around their first differing token (index `at`, 0-based)."""

    at: int | None  # None: the answers are identical
    before: tuple[str, ...]  # shared tokens just before it
    left: tuple[str, ...]  # each side's tokens from there on, the first one being the divergent one
    right: tuple[str, ...]
    skipped: int  # shared tokens not shown before `before`


@dataclass(frozen=True)
class WordOp:
    """One run of the word diff: "equal", "replace", "delete" (left only) or "insert" (right only)."""

    op: str
    left: str
    right: str


def divergence(left: tuple[str, ...], right: tuple[str, ...], context: int = CONTEXT_TOKENS) -> Divergence:
    """The first differing token of two token sequences, with `context` tokens around it.

    >>> d = divergence(("The", " capital", " is", " Madrid"), ("The", " capital", " is", " Paris"), 2)
    >>> d.at, d.before, d.left, d.right, d.skipped
    (3, (' capital', ' is'), (' Madrid',), (' Paris',), 1)
    """
    at = first_difference(left, right)
    if at is None:
        return Divergence(None, (), (), (), 0)
    start = max(at - context, 0)
    return Divergence(at, left[start:at], left[at : at + context + 1], right[at : at + context + 1], start)


def word_diff(left: str, right: str) -> list[WordOp]:
    """Runs of equal and differing words (whitespace kept with the words).

    >>> [(o.op, o.left, o.right) for o in word_diff("Paris is big", "Madrid is big")]
    [('replace', 'Paris', 'Madrid'), ('equal', ' is big', ' is big')]
    """
    a, b = _words(left), _words(right)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return [WordOp(op, "".join(a[i1:i2]), "".join(b[j1:j2])) for op, i1, i2, j1, j2 in matcher.get_opcodes()]


def changed_share(ops: list[WordOp]) -> float:
    """The share of words (of both answers) that the diff marks as changed.

    >>> changed_share(word_diff("Paris is big", "Madrid is big"))
    0.3333333333333333
    >>> changed_share(word_diff("Yes", "No way"))
    1.0
    """
    total = changed = 0
    for op in ops:
        count = len(op.left.split()) + len(op.right.split())
        total += count
        changed += 0 if op.op == "equal" else count
    return changed / total if total else 0.0


def _words(text: str) -> list[str]:
    """Words and the whitespace between them, as separate items, so nothing is lost."""
    return [w for w in re.split(r"(\s+)", text) if w]
