"""The comparison service: both models under the configured limits, and every comparison recorded.

`Comparer` streams a comparison (or one side, or one side again), refuses a
conversation that cannot fit, or cannot finish within the time limit on this
machine (`compare/budget.py`), before any model runs, scores fidelity once the
answers are final, records every answer however the comparison ended (tagged
`ended`, see `compare/endings.py`), and holds the votes on them (`votes`, see
`compare/voting.py`). The UI and the API call it; it answers with return values
and raises `compare.errors` exceptions, which the UI shows as Gradio errors.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from compare.budget import over_time
from compare.comparison import SHARED, compare_stream
from compare.conversation import AnswerMemory
from compare.endings import TAG, Ending, ending_of
from compare.errors import RequestError
from compare.fidelity import Scored, score
from compare.lanes import ModelSlot
from compare.owners import Asker
from compare.recorder import Recorder
from compare.requests import Schemas, check_request, options_of, schemas
from compare.traces import Request
from compare.voting import Voting
from wrappers import GenerationOptions, Result, stream_result
from wrappers.backend import Backend, Messages
from wrappers.chat import check_length
from wrappers.limits import Limits
from wrappers.results import Usage
from wrappers.startup import Startup

CUT = {  # the reason a side cut short carries as its error, on the record
    Ending.STOPPED: "Stopped by the user",
    Ending.ABANDONED: "Abandoned: the client cancelled or went away",
}


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
    votes: Voting = field(init=False)  # votes on the recorded comparisons (compare/voting.py)

    def __post_init__(self) -> None:
        object.__setattr__(self, "slot", ModelSlot(self.limits.concurrency))
        object.__setattr__(self, "votes", Voting(self.recorder, self.limits))

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

    @property
    def requests(self) -> Schemas:
        """Every request's schema under this server's limits (`compare/requests.py`)."""
        return schemas(self.limits)

    def check(self, kind: str, values: Mapping[str, Any]) -> Any:
        """`values` checked as the `kind` of request ("prompt", "vote", ...), before anything runs."""
        return check_request(getattr(self.requests, kind), values)

    def options(self, max_tokens: Any, temperature: Any, top_p: Any, stop: Any) -> GenerationOptions:
        """Generation options from a request's settings (stop: text, one sequence per line)."""
        settings = {"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p, "stop": stop}
        return options_of(self.check("settings", settings))

    def compare(
        self,
        conversations: Mapping[str, Messages],
        options: GenerationOptions,
        comparison_id: str,
        asker: Asker | None = None,
        lane: str = "chat",
        tags: Mapping[str, str] | None = None,
        schedule: str = SHARED,
        stop: threading.Event | None = None,
    ) -> Iterator[dict[str, Result]]:
        """Stream both sides; once they end, record them as a linked pair of traces, tagged how they ended.

        Refused at once if the conversation cannot fit the token limit or the time limit;
        `lane` "batch" waits for every chat request that is waiting. `schedule`: see
        `compare_stream` (a blind battle takes turns). Once `stop` is set (the Stop button), the
        comparison ends at its next step, recorded as stopped; closing the stream (a client
        that cancels or goes away) records it as abandoned.
        """
        self.check_fits(conversations, options)
        started, latest = time.time_ns(), {}
        try:
            with self.slot.take(lane), self._generating():
                updates = compare_stream(
                    self.backends, conversations, options, self.limits.request_timeout_s, schedule
                )
                with contextlib.closing(updates):
                    for latest in updates:
                        yield latest
                        if stop is not None and stop.is_set():
                            break
        except GeneratorExit:  # the client went away: generation stopped and the slot is free
            self._record_cut(comparison_id, conversations, options, latest, started, asker, tags)
            raise
        ending = ending_of(latest, stop is not None and stop.is_set())
        if ending is Ending.STOPPED:
            self._record_cut(comparison_id, conversations, options, latest, started, asker, tags, ending)
        else:
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
        stop: threading.Event | None = None,
    ) -> Iterator[Result]:
        """Stream `side` again; record it with the `kept` answers of the other sides, as one comparison.

        `stop` and a closed stream end it as they end `compare`.
        """
        self.check_fits({side: conversations[side]}, options)
        started, deadline, result = time.time_ns(), time.monotonic() + self.limits.request_timeout_s, None
        try:
            with self.slot.take("chat"), self._generating():
                stream = stream_result(self.backends[side], conversations[side], options, deadline)
                with contextlib.closing(stream):
                    for result in stream:
                        yield result
                        if stop is not None and stop.is_set():
                            break
        except GeneratorExit:
            latest = {side: result} if result is not None else {}
            self._record_cut(comparison_id, conversations, options, latest, started, asker)
            raise
        others = {s: r for s, r in kept.items() if s != side}
        if stop is not None and stop.is_set() and not result.done:
            self._record_cut(
                comparison_id, conversations, options, {side: result}, started, asker, None, Ending.STOPPED
            )
            return
        self._record(comparison_id, conversations, options, {side: result, **others}, started, asker)

    def check_fits(self, conversations: Mapping[str, Messages], options: GenerationOptions) -> None:
        """Refuse, before any model runs, what cannot fit the token limit or finish in time here."""
        for messages in conversations.values():
            self.check_length(messages)
        refusal = over_time(self.backends, conversations, options, self.limits.request_timeout_s)
        if refusal:
            raise RequestError(refusal)

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
        tags = {TAG: ending_of(results).value} | dict(tags or {})  # a cut comparison says how it was cut
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

    def _record_cut(
        self,
        comparison_id,
        conversations,
        options,
        partial,
        started_ns,
        asker,
        tags=None,
        how=Ending.ABANDONED,
    ):
        """Record what was generated before Stop, or before the client went away, tagged how it ended.

        An abandoned one is recorded as Gradio closes the stream, on its event loop: the
        recorder only spools (milliseconds).
        """
        if not any(result.model.name for result in partial.values()):
            return  # nothing was generated yet
        reason = CUT[how]
        cut = {
            side: result if result.done else self._cut_side(side, result, reason, options)
            for side, result in partial.items()
        }
        marked = dict(tags or {}) | {TAG: how.value}
        self._record(comparison_id, conversations, options, cut, started_ns, asker, marked)

    def _cut_side(self, side: str, result: Result, reason: str, options: GenerationOptions) -> Result:
        """A side's answer cut short, as recorded; a side still waiting for its first step (the
        other side's steps were shorter) is cut at 0 tokens, so the pair stays a pair."""
        if not result.model.name:
            model = self.backends[side].model_ref()
            result = replace(result, model=model, options=options, usage=Usage(completion_tokens=0))
        return replace(result, error=f"{reason} after {len(result.pieces)} tokens.", done=True)

    def write_records(self) -> None:
        """Write the spooled records as traces now, so that what was answered can be read back."""
        if self.recorder is not None:
            self.recorder.write_spooled()

    @property
    def notice(self) -> str | None:
        return self.recorder.notice if self.recorder else None
