"""Votes: a person's preference stored as MLflow feedback on both traces of a comparison.

`log_vote` stores one, `previous_vote` reads the latest, and `vote_table` is
every comparison's latest vote, the table `compare.leaderboard` rates.
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.entities import AssessmentSource

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
    """The latest vote already stored on a trace, by side name."""
    trace = mlflow.get_trace(trace_id)
    votes = [a for a in (trace.info.assessments if trace else []) if a.name == VOTE and a.valid is not False]
    if not votes:
        return None
    latest = max(votes, key=lambda a: a.create_time_ms or 0).value
    return ALIASES.get(latest, latest)


def vote_table() -> pd.DataFrame:
    """Every comparison's latest vote, as the table `compare.leaderboard` rates.

    Columns: `comparison_id`, `model_a`, `model_b` ("name/version"), `outcome` (`a`, `b`,
    `tie`, `both_bad`), `blind`. A named vote has the transformers side as Model A; a
    blind one, the side that was shown as Model A.
    """
    rows = [_vote_row(trace) for trace in _voted_traces()]
    columns = ["comparison_id", "model_a", "model_b", "outcome", "blind"]
    return pd.DataFrame([row for row in rows if row], columns=columns)


def _voted_traces():
    """Every voted comparison's transformers trace, however old (no window of recent traces)."""
    return search(f"tags.side = 'transformers' AND feedback.{VOTE} IS NOT NULL", include_spans=False)


def _vote_row(trace) -> list | None:
    votes = [a for a in trace.info.assessments if a.name == VOTE]
    if not votes:
        return None
    vote, tags = votes[-1], trace.info.tags  # the latest vote counts
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
    return [tags.get("comparison_id"), models[order[0]], models[order[1]], outcome, blind]
