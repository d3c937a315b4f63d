"""Who generates next: chat requests before batch rows.

Both models share the CPU, so one generation runs at a time (`capacity`).
A batch takes the models one row at a time, and only when no chat request is
waiting, so a running batch delays a chat request by at most the row in
progress, never by the whole batch.
"""

from __future__ import annotations

import contextlib
import threading


class ModelSlot:
    """A lock with two lanes: `chat` always goes before `batch`."""

    def __init__(self, capacity: int = 1) -> None:
        self._capacity = capacity
        self._busy = 0
        self._chats_waiting = 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def take(self, lane: str):
        """Hold one generation slot for the block; `lane` is "chat" or "batch"."""
        with self._changed:
            if lane == "chat":
                self._chats_waiting += 1
                try:
                    self._changed.wait_for(lambda: self._busy < self._capacity)
                finally:
                    self._chats_waiting -= 1
            else:
                self._changed.wait_for(lambda: self._busy < self._capacity and not self._chats_waiting)
            self._busy += 1
        try:
            yield
        finally:
            with self._changed:
                self._busy -= 1
                self._changed.notify_all()
