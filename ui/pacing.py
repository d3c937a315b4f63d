"""How often a stream reaches the page: the first update at once, then a few a second, and the last.

An update where a pane starts or ends is never held back: the next update may come only after
the other side's long step (a prefill of a minute at full size), and a pane whose answer was
complete would show it as still streaming all that while.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Iterator, Mapping
from typing import TypeVar

T = TypeVar("T")
_NONE = object()  # no update held back


def paced(updates: Iterator[T], interval_s: float) -> Iterator[T]:
    """The first update at once, then at most one per `interval_s` (an update where a pane starts
    or ends at once: `milestones`), and always the last.

    Each update Gradio sends costs 0.15 to 0.8 ms here, while the generation waits (streams
    stay in lockstep so that a model's time is its own work; see docs/benchmarks.md). Nobody
    reads 100 updates a second.

    >>> list(paced(iter(range(5)), interval_s=3600))
    [0, 4]
    >>> list(paced(iter(range(3)), interval_s=0))
    [0, 1, 2]
    """
    sent_at, pending, stage = None, _NONE, None
    for update in updates:
        now, reached = time.monotonic(), milestones(update)
        if sent_at is None or now - sent_at >= interval_s or reached != stage:
            sent_at, pending, stage = now, _NONE, reached
            yield update
        else:
            pending = update
    if pending is not _NONE:
        yield pending


def milestones(update: object) -> Hashable:
    """Which panes of an update (a side's result, or every side's) have started and ended.

    >>> from wrappers.results import Result
    >>> milestones({"a": Result(pieces=("The",)), "b": Result(done=True)})
    ((True, False), (False, True))
    >>> milestones(3) == milestones(4)  # anything else: never a milestone
    True
    """
    results = update.values() if isinstance(update, Mapping) else (update,)
    return tuple((bool(getattr(r, "pieces", ())), bool(getattr(r, "done", False))) for r in results)
