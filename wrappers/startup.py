"""Start-up progress: what each model is doing while it is logged or loaded.

Both the terminal and the UI read this, so a first start (which logs, builds
and registers the models) is never a silent wait.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from wrappers.backend import Backend


class Startup:
    """A thread-safe log of start-up progress, per side."""

    def __init__(self, sides: list[str], echo: bool = True) -> None:
        self._lock = threading.Lock()
        self._states = {side: "waiting" for side in sides}
        self._lines: list[str] = []
        self._notices: list[str] = []  # what a visitor should know all along, e.g. lowered limits
        self._started = time.monotonic()
        self._echo = echo

    def log(self, message: str) -> None:
        line = f"[{time.monotonic() - self._started:6.1f}s] {message}"
        with self._lock:
            self._lines.append(line)
        if self._echo:
            print(line, flush=True)

    def notice(self, message: str) -> None:
        """Log `message`, and keep it for the page after start-up too."""
        with self._lock:
            self._notices.append(message)
        self.log(message)

    @property
    def notices(self) -> list[str]:
        with self._lock:
            return list(self._notices)

    def set_state(self, side: str, state: str) -> None:
        with self._lock:
            self._states[side] = state
        self.log(f"{side}: {state}")

    def snapshot(self) -> tuple[dict[str, str], list[str]]:
        with self._lock:
            return dict(self._states), list(self._lines)

    @property
    def finished(self) -> bool:
        states, _ = self.snapshot()
        return all(s.startswith(("ready", "failed")) for s in states.values())


def warm_up(backends: Mapping[str, Backend], startup: Startup) -> threading.Thread:
    """Log or load every model in the background, one after the other."""
    thread = threading.Thread(target=load_all, args=(backends, startup), name="warm-up", daemon=True)
    thread.start()
    return thread


def load_all(backends: Mapping[str, Backend], startup: Startup) -> bool:
    """Log or load every model, one after the other; True if all are ready."""
    ready = True
    for side, backend in backends.items():
        startup.set_state(side, "logging or loading")
        try:
            ref = backend.model_ref()
            startup.set_state(side, f"ready: {ref.uri}")
        except Exception as exc:  # shown in that pane; the other still loads
            startup.set_state(side, f"failed: {exc}")
            ready = False
    return ready
