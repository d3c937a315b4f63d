"""Stop-sequence handling for streamed text, shared by both wrappers.

onnxruntime-genai only stops at end-of-sequence tokens, and the MLflow
transformers flavor resolves `stop` by reloading a tokenizer by name at
predict time, so both wrappers cut text here instead, identically.
Semantics follow OpenAI: the stop sequence itself is not returned.
"""

from __future__ import annotations


class StopScanner:
    """Feed decoded pieces; get back the text that is safe to show.

    Text that could be the start of a stop sequence is held back until the
    next piece decides it.

    >>> s = StopScanner(["\\nUser:"])
    >>> s.feed("Hi\\n"), s.feed("Use"), s.feed("r: x"), s.stopped
    ('Hi', '', '', True)
    """

    def __init__(self, stops: list[str] | tuple[str, ...]) -> None:
        self.stops = [s for s in stops if s]
        self.text = ""  # everything fed so far
        self.shown = 0  # how much of `text` has been released
        self.stopped = False

    def feed(self, piece: str) -> str:
        """Add a decoded piece and return the newly releasable text."""
        if self.stopped:
            return ""
        self.text += piece
        cut = self._first_stop()
        if cut is not None:
            self.stopped = True
            return self._release(cut)
        return self._release(len(self.text) - self._held_back())

    def flush(self) -> str:
        """Release whatever is held back, at the end of generation."""
        return "" if self.stopped else self._release(len(self.text))

    @property
    def visible(self) -> str:
        return self.text[: self.shown]

    def _release(self, upto: int) -> str:
        upto = max(upto, self.shown)
        chunk, self.shown = self.text[self.shown : upto], upto
        return chunk

    def _first_stop(self) -> int | None:
        # Released text never holds the start of a stop, so search after it.
        hits = [i for i in (self.text.find(s, self.shown) for s in self.stops) if i >= 0]
        return min(hits) if hits else None

    def _held_back(self) -> int:
        """Length of the longest tail of `text` that begins some stop sequence."""
        longest = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(self.text)), longest, -1):
                if self.text.endswith(stop[:size]):
                    longest = size
                    break
        return longest
