"""Start-up progress: what each model is doing while it is logged or loaded.

Both the terminal and the UI read this, so a first start (which logs, builds
and registers the models) is never a silent wait. Before the app serves, each
model answers warm-up requests of known size, which measure its speed here
(see `pace.py`); the log says so, and what it measured.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from wrappers.backend import Backend, run
from wrappers.options import GenerationOptions
from wrappers.pace import WARM_UP_LONG_PROMPT, WARM_UP_PROMPT, WARM_UP_TOKENS
from wrappers.results import Result


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
    """Log or load every model in the background, one after the other, and measure its speed."""
    thread = threading.Thread(target=load_all, args=(backends, startup, True), name="warm-up", daemon=True)
    thread.start()
    return thread


def load_all(backends: Mapping[str, Backend], startup: Startup, measure: bool = False) -> bool:
    """Log or load every model, one after the other; True if all are ready.

    With `measure`, each model then answers warm-up requests that measure its speed.
    """
    ready = True
    for side, backend in backends.items():
        startup.set_state(side, "logging or loading")
        try:
            ref = backend.model_ref()
        except Exception as exc:  # shown in that pane; the other still loads
            startup.set_state(side, f"failed: {exc}")
            ready = False
            continue
        if measure and hasattr(backend, "pace"):  # a remote endpoint's speed is not ours to measure
            startup.set_state(side, "measuring its speed on warm-up requests")
            startup.log(f"{side}: {_measured(backend)}")
        startup.set_state(side, f"ready: {ref.uri}")
    return ready


def _measured(backend: Backend) -> str:
    try:
        return measure_pace(backend)
    except Exception as exc:  # the model still serves; only the up-front time check waits for an answer
        return f"speed not measured: a warm-up request failed ({exc})"


def measure_pace(backend) -> str:
    """Time warm-up requests of known size on `backend`, which its `Pace` starts from; say what it found."""
    _, timed = warm_up_answers(backend)
    backend.pace.calibrate(timed)
    short, long = timed
    size = (
        f"{short.usage.prompt_tokens}- and {long.usage.prompt_tokens}-token prompts, "
        f"{short.usage.completion_tokens} and {long.usage.completion_tokens} new tokens"
    )
    speed = backend.pace.speed()
    if speed is None:
        reason = short.error or long.error or "its answer was too short to time decoding"
        return f"speed not measured on the warm-up requests ({size}): {reason}"
    spent = sum(r.latency.total_s or 0.0 for r in timed)
    return f"{speed.describe()} (warm-up requests: {size}, {spent:.2f} s)"


def warm_up_answers(backend) -> tuple[Result, list[Result]]:
    """The warm-up's answers: the first, which pays the one-off costs and is not timed, then the
    two timed ones, a short prompt and one four times as long.

    The first runs the long prompt and one decode step, so the allocations and first runs
    of each graph at the warm-up's largest shapes are behind it; its time would price
    every later prompt too high.
    """
    short = [{"role": "user", "content": WARM_UP_PROMPT}]
    long = [{"role": "user", "content": WARM_UP_LONG_PROMPT}]
    first = run(backend, long, GenerationOptions(max_tokens=2))
    timed = [
        run(backend, short, GenerationOptions(max_tokens=WARM_UP_TOKENS)),
        run(backend, long, GenerationOptions(max_tokens=2)),
    ]
    return first, timed
