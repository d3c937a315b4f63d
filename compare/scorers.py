"""What each batch row's trace carries, and the code scorers of the GenAI evaluation that read it.

`row_attributes` writes a row's fidelity and agreement onto its trace's root span; each scorer
reads one of them back (`mlflow.genai.evaluate` hands a scorer the trace), so the two halves of
that contract live together. The reference side gets no fidelity scorers: against itself it
scores 0 and 100% by definition.
"""

from __future__ import annotations

from mlflow.entities import Feedback
from mlflow.genai.scorers import scorer

from compare.fidelity import Scored
from wrappers.results import Result


def row_attributes(result: Result, other: Result, scored: Scored) -> dict:
    """The span attributes the scorers read: whether both sides agree, and this row's fidelity."""
    f = scored.fidelity
    attributes = {
        "phi3.answers_agree": result.text == other.text and not (result.error or other.error),
        "phi3.fidelity.reason": scored.reason,
    }
    if f is not None:
        attributes |= {
            "phi3.fidelity.mean_kl": f.mean_kl,
            "phi3.fidelity.top1_agreement": f.top1_agreement,
            "phi3.fidelity.tokens": f.tokens,
            "phi3.fidelity.worst_token": f.worst.token if f.worst else None,
        }
    return attributes


def _attribute(trace, key: str):
    return trace.data.spans[0].attributes.get(key)


@scorer
def correct(outputs: str, expectations: dict | None) -> Feedback:
    """The expected answer appears in the output (case-insensitive), as in the batch table."""
    expected = (expectations or {}).get("expected")
    if not expected:
        return Feedback(value=None, rationale="No expected answer for this prompt.")
    return Feedback(value=expected.lower() in outputs.lower(), rationale=f"expected {expected!r}")


@scorer
def answers_agree(trace) -> bool:
    """Both packagings gave the same text."""
    return bool(_attribute(trace, "phi3.answers_agree"))


@scorer
def mean_kl(trace) -> Feedback:
    """Mean KL(reference || ONNX) per answer token, in nats."""
    value = _attribute(trace, "phi3.fidelity.mean_kl")
    if value is None:
        return Feedback(value=None, rationale=_attribute(trace, "phi3.fidelity.reason"))
    tokens, worst = _attribute(trace, "phi3.fidelity.tokens"), _attribute(trace, "phi3.fidelity.worst_token")
    return Feedback(value=value, rationale=f"{tokens} tokens; worst {worst!r}")


@scorer
def top1_agreement(trace) -> Feedback:
    """Share of answer tokens where both models' most likely next token is the same."""
    value = _attribute(trace, "phi3.fidelity.top1_agreement")
    return Feedback(
        value=value, rationale=None if value is not None else _attribute(trace, "phi3.fidelity.reason")
    )


@scorer
def ttft_s(trace) -> float | None:
    """Time to the first token, seconds (this model's own work only)."""
    return _attribute(trace, "ttft_s")


@scorer
def decode_tokens_per_s(trace) -> float | None:
    """Decode speed after the first token."""
    return _attribute(trace, "tokens_per_s")


def scorers_for(side: str, has_expected: bool) -> list:
    """The scorers of `side`'s evaluation run; `correct` only when the batch has expected answers."""
    chosen = [answers_agree, ttft_s, decode_tokens_per_s]
    chosen += [mean_kl, top1_agreement] if side == "onnx" else []  # the reference is 0 and 100% by definition
    return chosen + ([correct] if has_expected else [])
