"""Accept or reject the ONNX packaging: pooled fidelity and accuracy against thresholds.

The verdict is tagged on the ONNX model version in the registry (`fidelity.verdict`,
`fidelity.mean_kl`, `fidelity.top1_agreement`, the dataset, ...), where a deployment
pipeline can read it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pandas as pd
from mlflow import MlflowClient

from wrappers.results import Result


@dataclass(frozen=True)
class Thresholds:
    """What the ONNX packaging must reach to be accepted; None: not checked."""

    max_kl: float | None = 0.05  # mean KL(reference || ONNX) per answer token, in nats
    min_agreement: float | None = 0.9  # share of answer tokens whose top-1 choices agree
    min_accuracy: float | None = None  # share of prompts with `expected` answered correctly


@dataclass(frozen=True)
class Acceptance:
    accepted: bool
    mean_kl: float | None
    top1_agreement: float | None
    accuracy: float | None
    tokens: int  # answer tokens scored
    unscored: int  # prompts without a fidelity (an error, say)
    reasons: tuple[str, ...]  # why it was rejected; empty when accepted

    @property
    def verdict(self) -> str:
        return "accept" if self.accepted else "reject"

    def summary(self) -> str:
        """One line with the numbers, e.g. for a CI log."""
        figures = (
            f"mean KL {_fmt(self.mean_kl, '.4g')} nats/token, top-1 agreement {_fmt(self.top1_agreement)}"
        )
        accuracy = f", accuracy {_fmt(self.accuracy)}" if self.accuracy is not None else ""
        why = f": {'; '.join(self.reasons)}" if self.reasons else ""
        return f"{self.verdict.upper()} the ONNX packaging ({figures}{accuracy}, {self.tokens} tokens){why}"


def accept(table: pd.DataFrame, thresholds: Thresholds) -> Acceptance:
    """Pool the per-prompt fidelity (token-weighted) and check it against `thresholds`."""
    scored = table[table["fidelity_tokens"].fillna(0) > 0]
    tokens = int(scored["fidelity_tokens"].sum())
    mean_kl = float((scored["mean_kl"] * scored["fidelity_tokens"]).sum() / tokens) if tokens else None
    agreement = (
        float((scored["top1_agreement"] * scored["fidelity_tokens"]).sum() / tokens) if tokens else None
    )
    answered = table["onnx_correct"].dropna()
    accuracy = float(answered.astype(float).mean()) if len(answered) else None
    reasons = []
    if not tokens:
        reasons.append("no answer could be scored")
    if thresholds.max_kl is not None and mean_kl is not None and mean_kl > thresholds.max_kl:
        reasons.append(f"mean KL {mean_kl:.4g} > {thresholds.max_kl:g}")
    if (
        thresholds.min_agreement is not None
        and agreement is not None
        and agreement < thresholds.min_agreement
    ):
        reasons.append(f"top-1 agreement {agreement:.1%} < {thresholds.min_agreement:.1%}")
    if thresholds.min_accuracy is not None:
        if accuracy is None:
            reasons.append("an accuracy threshold needs `expected` answers in the dataset")
        elif accuracy < thresholds.min_accuracy:
            reasons.append(f"accuracy {accuracy:.1%} < {thresholds.min_accuracy:.1%}")
    unscored = len(table) - len(scored)
    return Acceptance(not reasons, mean_kl, agreement, accuracy, tokens, unscored, tuple(reasons))


def tag_export(onnx: Result, reference: Result, acceptance: Acceptance, dataset: str, run_id: str) -> None:
    """Write the verdict on the ONNX model version, where a deployment pipeline reads it."""
    name, version = onnx.model.name, onnx.model.version
    if not (name and version):
        return  # a remote pane has no registered version here
    tags = {
        "fidelity.verdict": acceptance.verdict,
        "fidelity.mean_kl": _fmt(acceptance.mean_kl, ".6g"),
        "fidelity.top1_agreement": _fmt(acceptance.top1_agreement, ".6g"),
        "fidelity.accuracy": _fmt(acceptance.accuracy, ".6g"),
        "fidelity.tokens": str(acceptance.tokens),
        "fidelity.dataset": dataset,
        "fidelity.reference": f"{reference.model.name}/{reference.model.version}",
        "fidelity.run_id": run_id,
        "fidelity.reasons": "; ".join(acceptance.reasons) or "-",
    }
    client = MlflowClient()
    with _TAGGING:
        for key, value in tags.items():
            _set_tag(client, name, version, key, value)


# Two batches ending together wrote the same new keys at once, and SQLite refused one of the two
# inserts ("UNIQUE constraint failed: model_version_tags"): one writer at a time in this process.
_TAGGING = threading.Lock()


def _set_tag(client: MlflowClient, name: str, version: str, key: str, value: str, attempts: int = 3) -> None:
    """Set one tag; another app on the same store may insert the same key at the same moment, and
    then writing it again (an update, now) is what the later of the two meant."""
    for attempt in range(attempts):
        try:
            client.set_model_version_tag(name, version, key, value)
            return
        except Exception as exc:
            if attempt == attempts - 1 or "UNIQUE constraint" not in str(exc):
                raise
            time.sleep(0.1 * (attempt + 1))


def _fmt(value: float | None, spec: str = ".1%") -> str:
    return "n/a" if value is None else format(value, spec)
