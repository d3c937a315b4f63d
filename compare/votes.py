"""Votes: a person's preference stored as MLflow feedback on both traces of a comparison.

`log_vote` stores one, `previous_vote` reads the one that stands, and `vote_table`
is the vote that stands on every finished comparison, the table `compare.leaderboard`
rates, each with its voter.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import AssessmentSource

from compare.endings import Ending, recorded_ending
from compare.traces import sanitized, search

CHOICES = ("transformers", "onnx", "tie", "both_bad")  # a side's name means that side is better
ALIASES = {"left": "transformers", "right": "onnx"}  # the older names, still accepted and read
SIDES = ("transformers", "onnx")
WINNERS = {"left": "transformers", "right": "onnx", "transformers": "transformers", "onnx": "onnx"}
VOTE = "preference"  # the feedback's name on both traces of a comparison


def canonical_choice(choice: object) -> str:
    """A vote's choice by side name; `left`/`right` are aliases of the first/second side.

    >>> canonical_choice("left"), canonical_choice("onnx")
    ('transformers', 'onnx')
    """
    choice = ALIASES.get(choice, choice) if isinstance(choice, str) else choice
    if choice not in CHOICES:
        names = ", ".join([*CHOICES, *ALIASES])
        raise ValueError(f"choice must be one of {names}, got {choice!r}.")
    return choice


def log_vote(
    trace_ids: list[str], choice: str, comment: str = "", metadata: dict[str, str] | None = None
) -> str | None:
    """Store a human vote as feedback on both traces of a comparison; return the earlier vote, if any.

    `metadata` says how the vote was cast: a blind vote carries `blind: "true"` and the
    sides shown as Model A and Model B (`model_a`, `model_b`).
    """
    choice = canonical_choice(choice)
    if not trace_ids:
        raise ValueError("No comparison of yours has that id.")
    blind = (metadata or {}).get("blind") == "true"
    if not blind and mlflow.get_trace(trace_ids[0]).info.tags.get("arena") == "true":
        raise ValueError("That comparison was blind: its vote goes through /arena_vote, once.")
    previous = previous_vote(trace_ids[0])
    source = AssessmentSource(source_type="HUMAN", source_id="phi3-compare-app")
    for trace_id in trace_ids:
        mlflow.log_feedback(
            trace_id=trace_id,
            name=VOTE,
            value=choice,
            rationale=sanitized(comment) or None,
            source=source,
            metadata=metadata,
        )
    return previous


def previous_vote(trace_id: str) -> str | None:
    """The vote that stands on a trace, by side name."""
    trace = mlflow.get_trace(trace_id)
    vote = standing_vote(trace.info.assessments if trace else [])
    return None if vote is None else ALIASES.get(vote.value, vote.value)


def vote_table() -> pd.DataFrame:
    """The vote that stands on every finished comparison, as the table `compare.leaderboard` rates.

    Columns: `comparison_id`, `model_a`, `model_b` ("name/version"), `outcome` (`a`, `b`,
    `tie`, `both_bad`), `blind`, `voter`, `at` (ms). A named vote has the transformers side
    as Model A; a blind one, the side that was shown as Model A. A named comparison's latest
    vote stands, a blind one's first (the only one it accepts). Comparisons that did not
    finish are left out, with any vote an older version stored on them.
    """
    unfinished = _unfinished_voted()
    rows = [_vote_row(t) for t in _voted_traces() if t.info.tags.get("comparison_id") not in unfinished]
    columns = ["comparison_id", "model_a", "model_b", "outcome", "blind", "voter", "at"]
    return pd.DataFrame([row for row in rows if row], columns=columns)


def _voted_traces():
    """Every voted comparison's transformers trace, however old (no window of recent traces)."""
    return search(f"tags.side = 'transformers' AND feedback.{VOTE} IS NOT NULL", include_spans=False)


def _unfinished_voted() -> set[str]:
    """Voted comparisons where either trace says it did not finish (an older store's too)."""
    traces = search(f"feedback.{VOTE} IS NOT NULL", include_spans=False)
    ended = (recorded_ending(t.info.tags, t.info.state) for t in traces)
    return {
        t.info.tags.get("comparison_id") for t, e in zip(traces, ended, strict=True) if e != Ending.FINISHED
    }


def standing_vote(assessments) -> Any:
    """The vote that stands among a trace's assessments: a blind comparison's first, else the latest."""
    votes = [a for a in assessments if a.name == VOTE and a.valid is not False]
    if not votes:
        return None
    blind = any((a.metadata or {}).get("blind") == "true" for a in votes)
    pick = min if blind else max
    return pick(votes, key=lambda a: a.create_time_ms or 0)


def _vote_row(trace) -> list | None:
    vote, tags = standing_vote(trace.info.assessments), trace.info.tags
    if vote is None:
        return None
    models = {side: tags.get(f"model.{side}") for side in SIDES}
    if not all(models.values()) or any(m.startswith("None/") for m in models.values()):
        return None  # a side that never loaded has no version to rate
    metadata = vote.metadata or {}
    blind = metadata.get("blind") == "true"
    order = (metadata.get("model_a"), metadata.get("model_b")) if blind else SIDES
    if set(order) != set(SIDES):
        return None
    winner = WINNERS.get(vote.value)
    outcome = vote.value if winner is None else ("a" if winner == order[0] else "b")
    voter = metadata.get("voter") or tags.get("owner", "")  # older votes: the comparison's owner voted
    return [
        tags.get("comparison_id"),
        models[order[0]],
        models[order[1]],
        outcome,
        blind,
        voter,
        vote.create_time_ms,
    ]
