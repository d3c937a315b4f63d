"""How a comparison ended, and the one rule that follows: only a finished comparison takes a vote.

Every comparison is recorded, however it ended, tagged `ended` with one of:

- `finished`: both sides answered to the end (an end token, a stop sequence or max tokens);
- `stopped`: the user pressed Stop (Chat tab or blind mode) before both were done;
- `abandoned`: an API client cancelled its job (`Job.cancel()`) or went away mid-stream.
  Gradio closes the stream the same way for both, so the record cannot tell them apart;
- `timed_out`: a side ran past the request's time limit;
- `failed`: a side reported an error (a model that did not load, a prompt too long, ...).

Only `finished` comparisons are listed as open to a vote, accept one, and count in the
leaderboard; the others stay on the record for the operator (MLflow, History), labelled.
Records of older versions carry no `ended` tag: `abandoned: true` (or a trace in the
ERROR state) reads as what it was, so votes already in a store follow the same rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from wrappers.backend import TIME_LIMIT_ERROR
from wrappers.results import Result

TAG = "ended"  # the trace tag that says how its comparison ended


class Ending(StrEnum):
    FINISHED = "finished"
    STOPPED = "stopped"
    ABANDONED = "abandoned"
    TIMED_OUT = "timed_out"
    FAILED = "failed"


# How History labels each ending, and why a vote on it is refused.
LABELS = {
    Ending.FINISHED: "finished",
    Ending.STOPPED: "⏹ stopped: no vote",
    Ending.ABANDONED: "client cancelled or went away: no vote",
    Ending.TIMED_OUT: "timed out: no vote",
    Ending.FAILED: "a side failed: no vote",
}
REFUSALS = {
    Ending.STOPPED: "This comparison was stopped before both answers were done",
    Ending.ABANDONED: "This comparison was abandoned (its client cancelled or went away) before it finished",
    Ending.TIMED_OUT: "A side of this comparison ran past the time limit",
    Ending.FAILED: "A side of this comparison reported an error",
}
NOT_VOTABLE = ": it is kept on the record, but only comparisons that finished can be voted on."
NOT_VOTABLE_NOTE = "It is kept on the record, but cannot be voted on: only comparisons that finished can be."


def ending_of(latest: Mapping[str, Result], stop_requested: bool = False) -> Ending:
    """How a comparison ended, from its last results and whether Stop was pressed.

    Stop counts only if it came before both sides were done (a Stop after the end changes nothing).

    >>> done = Result(text="Madrid", done=True)
    >>> ending_of({"a": done, "b": Result(text="Ma")}, stop_requested=True).value
    'stopped'
    >>> ending_of({"a": done, "b": done}, stop_requested=True).value
    'finished'
    >>> ending_of({"a": done, "b": Result(error=TIME_LIMIT_ERROR, done=True)}).value
    'timed_out'
    """
    if stop_requested and not all(result.done for result in latest.values()):
        return Ending.STOPPED
    errors = [result.error for result in latest.values() if result.error]
    if any(error.startswith(TIME_LIMIT_ERROR) for error in errors):
        return Ending.TIMED_OUT
    if errors or not latest:
        return Ending.FAILED
    return Ending.FINISHED


def recorded_ending(tags: Mapping[str, str], state: str | None = None) -> Ending:
    """How a recorded comparison ended, from one of its traces' tags and state (older stores too).

    >>> recorded_ending({"ended": "stopped"}).value, recorded_ending({"abandoned": "true"}).value
    ('stopped', 'abandoned')
    >>> recorded_ending({}, "ERROR").value, recorded_ending({}, "OK").value
    ('failed', 'finished')
    """
    if tags.get(TAG) in set(Ending):
        return Ending(tags[TAG])
    if tags.get("abandoned") == "true":
        return Ending.ABANDONED
    return Ending.FAILED if state == "ERROR" else Ending.FINISHED


def comparison_ending(infos) -> Ending:
    """How a recorded comparison ended, from its traces' infos: the first that did not finish, if any."""
    endings = [recorded_ending(info.tags, info.state) for info in infos]
    return next((ending for ending in endings if ending is not Ending.FINISHED), Ending.FINISHED)


def refusal(ending: Ending) -> str | None:
    """Why a vote on a comparison that ended so is refused; None if it may be voted on."""
    return None if ending is Ending.FINISHED else REFUSALS[ending] + NOT_VOTABLE
