"""The comparison service: both models under the configured limits, and every comparison recorded.

`Comparer` streams a comparison (or one side, or one side again), refuses a
conversation that cannot fit before any model runs, scores fidelity once the
answers are final, records every answer (an abandoned one too, marked as such)
and stores votes. The UI and the API call it; it answers with return values
and raises `compare.errors` exceptions, which the UI shows as Gradio errors.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from compare.comparison import compare_stream
from compare.conversation import AnswerMemory
from compare.errors import RequestError, StoreError
from compare.fidelity import Scored, score
from compare.lanes import ModelSlot
from compare.owners import Asker
from compare.recorder import Recorder
from compare.traces import Request
from compare.votes import canonical_choice, log_vote
from wrappers import GenerationOptions, Result, stream_result
from wrappers.backend import Backend, Messages
from wrappers.chat import check_length
from wrappers.config import Limits
from wrappers.errors import public_text
from wrappers.startup import Startup

COMPARISON_ID = re.compile(r"[0-9a-f]{32}")
ABANDONED = "Abandoned: the client went away"


def new_comparison_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Comparer:
    """The two backends under the configured limits, as the UI and the API use them."""

    backends: Mapping[str, Backend]
    limits: Limits
    recorder: Recorder | None = None  # None: nothing is traced (tests of the UI alone)
    fidelity: bool = True  # score each comparison's answers through both models (the switch)
    startup: Startup | None = None  # None: the models were loaded before the app was built
    answers: AnswerMemory = field(default_factory=AnswerMemory)  # recent answers' figures, for exports
    slot: ModelSlot = field(init=False)  # chat requests generate before batch rows

    def __post_init__(self) -> None:
        object.__setattr__(self, "slot", ModelSlot(self.limits.concurrency))

    def ready(self) -> tuple[bool, int]:
        """(whether every model has finished loading, how many are ready); a failed one counts as done."""
        if self.startup is None:
            return True, len(self.backends)
        states, _ = self.startup.snapshot()
        return self.startup.finished, sum(state.startswith("ready") for state in states.values())

    def require_ready(self) -> None:
        ready, count = self.ready()
        if not ready:
            raise RequestError(
                f"The models are still loading ({count} of {len(self.backends)} ready). "
                "Try again in a moment."
            )

    def options(self, max_tokens: Any, temperature: Any, top_p: Any, stop: Any) -> GenerationOptions:
        if not isinstance(stop, str):
            raise RequestError(f"stop must be a string with one stop sequence per line, got {stop!r}.")
        try:
            return GenerationOptions.from_text(
                max_tokens, temperature, top_p, stop, max_tokens_limit=self.limits.max_new_tokens
            )
        except ValueError as exc:
            raise RequestError(str(exc)) from exc

    def compare(
        self,
        conversations: Mapping[str, Messages],
        options: GenerationOptions,
        comparison_id: str,
        asker: Asker | None = None,
        lane: str = "chat",
        tags: Mapping[str, str] | None = None,
    ) -> Iterator[dict[str, Result]]:
        """Stream both sides; once both are done, record them as a linked pair of traces.

        Refused at once if the conversation cannot fit the token limit; `lane` "batch" waits
        for every chat request that is waiting.
        """
        for messages in conversations.values():
            self.check_length(messages)
        started, latest = time.time_ns(), {}
        try:
            with self.slot.take(lane), self._generating():
                for latest in compare_stream(
                    self.backends, conversations, options, self.limits.request_timeout_s
                ):
                    yield latest
        except GeneratorExit:  # the client went away: generation stopped and the slot is free
            self._record_abandoned(comparison_id, conversations, options, latest, started, asker, tags)
            raise
        self._record(comparison_id, conversations, options, latest, started, asker, tags)

    def score(
        self,
        results: Mapping[str, Result],
        options: GenerationOptions,
        wanted: bool = True,
        same_conversation: bool = True,
    ) -> Scored:
        """Fidelity of a finished (or stopped) comparison; the panes are final, so neither side waits.

        Runs as a generation would (traces wait, batch rows too), so its time is its own.
        `same_conversation` False: the sides were sent different histories (see `score`).
        """
        if not (self.fidelity and wanted):
            return Scored(reason="Fidelity scoring is switched off.")
        with self.slot.take("chat"), self._generating():
            return score(self.backends, results, options, same_conversation)

    def one(
        self, side: str, messages: Messages, options: GenerationOptions, comparison_id: str, asker: Asker
    ):
        """Stream one side only; recorded like a comparison with one trace."""
        yield from self.regenerate(side, {side: messages}, options, {}, comparison_id, asker)

    def regenerate(
        self,
        side: str,
        conversations: Mapping[str, Messages],
        options: GenerationOptions,
        kept: Mapping[str, Result],
        comparison_id: str,
        asker: Asker | None = None,
    ) -> Iterator[Result]:
        """Stream `side` again; record it with the `kept` answers of the other sides, as one comparison."""
        self.check_length(conversations[side])
        started, deadline, result = time.time_ns(), time.monotonic() + self.limits.request_timeout_s, None
        try:
            with self.slot.take("chat"), self._generating():
                for result in stream_result(self.backends[side], conversations[side], options, deadline):
                    yield result
        except GeneratorExit:
            latest = {side: result} if result is not None else {}
            self._record_abandoned(comparison_id, conversations, options, latest, started, asker)
            raise
        others = {s: r for s, r in kept.items() if s != side}
        self._record(comparison_id, conversations, options, {side: result, **others}, started, asker)

    def check_length(self, messages: Messages) -> None:
        try:
            check_length(messages, self.limits.max_prompt_tokens)
        except ValueError as exc:
            raise RequestError(str(exc)) from exc

    def _generating(self):
        return self.recorder.generating() if self.recorder else contextlib.nullcontext()

    def _record(self, comparison_id, conversations, options, results, started_ns, asker, tags=None) -> None:
        for side, result in results.items():
            self.answers.remember(side, conversations[side], result)
        if self.recorder is None:
            return
        asker = asker or Asker.of(None, None)  # nobody's: e.g. a blind battle, whose vote goes by /arena_vote
        pair = {side: f"{r.model.name}/{r.model.version}" for side, r in results.items()}
        for side, result in results.items():
            request = Request(
                comparison_id,
                side,
                conversations[side],
                options,
                result,
                started_ns,
                pair,
                asker.owner,
                asker.user,
                dict(tags or {}),
            )
            self.recorder.record(request)

    def _record_abandoned(self, comparison_id, conversations, options, partial, started_ns, asker, tags=None):
        """Record what was generated before the client went away, marked as abandoned.

        Runs as Gradio closes the stream, on its event loop: the recorder only spools (milliseconds).
        """
        partial = {side: result for side, result in partial.items() if result.model.name}  # started
        if not partial:
            return  # nothing was generated yet
        cut = {
            side: result
            if result.done
            else replace(result, error=f"{ABANDONED} after {len(result.pieces)} tokens.", done=True)
            for side, result in partial.items()
        }
        marked = dict(tags or {}) | {"abandoned": "true"}
        self._record(comparison_id, conversations, options, cut, started_ns, asker, marked)

    @property
    def notice(self) -> str | None:
        return self.recorder.notice if self.recorder else None

    def vote(
        self, comparison_id: Any, choice: Any, comment: Any, asker: Asker
    ) -> tuple[list[str], str | None]:
        """Store the asker's vote on their own comparison as MLflow feedback.

        Returns the trace ids and the vote it replaced (None for a first vote).
        """
        if not isinstance(comparison_id, str) or not COMPARISON_ID.fullmatch(comparison_id):
            raise RequestError("comparison_id must be an id returned by /compare.")
        try:
            choice = canonical_choice(choice)
        except ValueError as exc:
            raise RequestError(str(exc)) from exc
        return self.store_vote(comparison_id, choice, comment, owner=asker.owner)

    def store_vote(
        self, comparison_id: str, choice: str, comment: Any, metadata=None, owner: str | None = None
    ) -> tuple[list[str], str | None]:
        """Store a checked vote (blind votes carry `metadata`); return the trace ids and the earlier vote.

        With `owner`, only a comparison of that owner; anyone else's, or an unknown id, gets
        the same answer, so ids cannot be probed. (A blind battle's vote is checked by its battle.)
        """
        if not isinstance(comment, str) or len(comment) > 2000:
            raise RequestError("comment must be a string of at most 2000 characters.")
        if self.recorder is None:
            raise RequestError("Votes need tracing, which is off in this app.")
        try:
            found, trace_ids = self.recorder.comparison(comparison_id)
        except Exception as exc:
            raise StoreError(public_text(f"The comparison could not be read from MLflow: {exc}")) from exc
        if owner is not None and found != owner:
            trace_ids = []
        try:
            previous = log_vote(trace_ids, choice, comment, metadata)
        except ValueError as exc:
            raise RequestError(str(exc)) from exc
        except Exception as exc:
            raise StoreError(public_text(f"The vote could not be stored in MLflow: {exc}")) from exc
        return trace_ids, previous
