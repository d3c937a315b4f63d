"""Long work (a batch) on a thread of its own, stopped between steps when its client goes away.

Gradio notices a client that went away only when the handler yields, and then closes the
handler's generator on its event loop. So the handler yields after every step, and closing
only sets a flag: the work stops before its next step and finishes on its own thread
(logging what it did), never on the event loop.
"""

from __future__ import annotations

import queue
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

Step = Callable[[int, int], None]  # (steps done, steps in all)
Work = Callable[[Path, Step, threading.Event], Any]  # (work folder, report a step, client gone) -> result


def run_in_background(work: Work) -> Iterator[tuple[int, int] | Any]:
    """Yield (done, total) after each step of `work`, then its result; its errors are raised here.

    `work` gets a temporary folder, kept until this generator ends (so a file in the result
    can still be served), and an event set once this generator is closed.
    """
    updates: queue.Queue = queue.Queue()
    closed = threading.Event()

    def work_then_clean() -> None:
        with tempfile.TemporaryDirectory(prefix="batch-") as folder:
            try:
                updates.put(("done", work(Path(folder), lambda *step: updates.put(("step", step)), closed)))
            except Exception as exc:  # handed to the caller, which raises it
                updates.put(("error", exc))
            closed.wait()  # the caller is done with the folder's files, or gone

    threading.Thread(target=work_then_clean, name="batch", daemon=True).start()
    try:
        while True:
            kind, value = updates.get()
            if kind == "error":
                raise value
            yield value
            if kind == "done":
                return
    finally:
        closed.set()
