"""Fidelity: how far one packaging's next-token distributions are from the other's.

After both answers are final, the reference answer (the transformers side's, by default) is
teacher-forced through both models on exactly the same token ids: its prompt ids, then its
answer ids one position at a time. For each answer token we record KL(reference || other),
whether both models' top-1 tokens agree, and both models' probability of the token emitted.
So two answers that read the same can still show where, and how much, the models differ.

Each model is reached through the registered MLflow model the app already loaded: the
transformers pipeline's torch model (one forward pass over prompt + answer), and the ONNX
pyfunc's onnxruntime-genai model. Its export prunes the LM head, so it computes the logits of
the last appended token only: the answer is appended token by token, as when generating.

The tokens scored are the ones the reference pane shows and counts: generation stops at the token
that completes a stop sequence, and each token's text is its share of the pane's text
(`shown_parts`); the end token and a token a stop cut away are scored and marked `hidden`. When the
two sides hold different histories, both models are scored on the reference side's conversation.

Concessions: only the transformers side's answer can be the reference, because it is the one
whose generated ids the app sees (the ONNX pyfunc streams text, not ids). Sampled answers
(temperature > 0) are scored against the models' own distributions (temperature 1), not the
sampling ones; the result says so.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace

import numpy as np

from compare.settings import describe, differing_note
from wrappers.options import GenerationOptions
from wrappers.results import Result

REFERENCE = "transformers"


@dataclass(frozen=True)
class TokenFidelity:
    token: str  # the text the pane shows for this token (the end token: its special text)
    kl: float  # KL(reference || other) of the next-token distributions, in nats
    p_reference: float  # each model's probability of the token that was emitted
    p_other: float
    agree: bool  # both models' most likely token is the same
    hidden: bool = False  # the pane shows none of it: the end token, or text cut by a stop sequence


@dataclass(frozen=True)
class Fidelity:
    reference: str
    other: str
    tokens: int
    mean_kl: float
    max_kl: float
    top1_agreement: float
    per_token: tuple[TokenFidelity, ...]
    scoring_s: float  # charged to neither side's latency
    note: str | None = None  # e.g. the answers were sampled

    def to_dict(self) -> dict:
        return asdict(self) | {"per_token": [asdict(t) for t in self.per_token]}

    @property
    def worst(self) -> TokenFidelity | None:
        return max(self.per_token, key=lambda t: t.kl, default=None)


@dataclass(frozen=True)
class Scored:
    """A fidelity, or why there is none (`fidelity` is None and `reason` says why)."""

    fidelity: Fidelity | None = None
    reason: str | None = None

    def to_api(self) -> dict:
        """The keys `verdict` gains: `fidelity`, and `fidelity_reason` when it is null."""
        body = self.fidelity.to_dict() if self.fidelity else None
        return {"fidelity": body, "fidelity_reason": self.reason}


class FidelityError(ValueError):
    """Fidelity cannot be computed for this pair; the message says why."""


def score(
    backends: Mapping[str, object],
    results: Mapping[str, Result],
    options: GenerationOptions,
    same_conversation: bool = True,
) -> Scored:
    """Teacher-force the reference answer through both models; never raises.

    With `same_conversation` False (the sides' earlier answers differ), both models are scored
    on the reference side's conversation, and the note says so.
    """
    other = next((side for side in results if side != REFERENCE), None)
    if other is None or REFERENCE not in results:
        return Scored(reason="Fidelity needs both panes.")
    if results[REFERENCE].error or results[other].error:
        return Scored(reason="Not scored: a model reported an error.")
    try:
        started = time.perf_counter()
        reference, candidate = scorer_for(backends[REFERENCE], REFERENCE), scorer_for(backends[other], other)
        problem = _unscorable(results[REFERENCE], results[other], same_conversation)
        if problem:
            return Scored(reason=problem)
        fidelity = compare_answers(reference, candidate, results[REFERENCE], (REFERENCE, other))
    except FidelityError as exc:
        return Scored(reason=str(exc))
    except Exception as exc:  # a scoring failure must not hide the answers
        return Scored(reason=f"Fidelity could not be computed ({type(exc).__name__}: {exc}).")
    note = scoring_note(results, options, same_conversation)
    elapsed = time.perf_counter() - started
    return Scored(fidelity=replace(fidelity, scoring_s=elapsed, note=note))


def compare_answers(reference, candidate, answer: Result, names: tuple[str, str]) -> Fidelity:
    """Per-token fidelity of `candidate` against `reference` on `answer`'s ids."""
    prompt, completion = list(answer.prompt_ids), list(answer.completion_ids)
    expected, got = reference.log_probs(prompt, completion), candidate.log_probs(prompt, completion)
    if expected.shape != got.shape:
        raise FidelityError(f"The two models' vocabularies differ ({expected.shape[1]} vs {got.shape[1]}).")
    kl, agree = divergence(expected, got)
    rows = np.arange(len(completion))
    p_ref, p_other = np.exp(expected[rows, completion]), np.exp(got[rows, completion])
    texts, special = reference.token_texts(completion), reference.special(completion)
    shown = shown_parts(texts, special, answer.text)
    per_token = tuple(
        TokenFidelity(t if s else v, float(k), float(p), float(q), bool(a), s or not v)
        for t, v, s, k, p, q, a in zip(texts, shown, special, kl, p_ref, p_other, agree, strict=True)
    )
    return Fidelity(
        reference=names[0],
        other=names[1],
        tokens=len(completion),
        mean_kl=float(kl.mean()),
        max_kl=float(kl.max()),
        top1_agreement=float(agree.mean()),
        per_token=per_token,
        scoring_s=0.0,
    )


def shown_parts(texts: list[str], special: list[bool], shown: str) -> list[str]:
    """Each token's share of `shown`, the text the pane shows: a stop sequence cuts the rest.

    >>> shown_parts(["The", " cap", "ital", " Madrid"], [False] * 4, "The capital ")
    ['The', ' cap', 'ital', ' ']
    >>> shown_parts(["Hi", " is", "<|end|>"], [False, False, True], "Hi")
    ['Hi', '', '']
    """
    parts, at = [], 0
    for text, is_special in zip(texts, special, strict=True):
        part = "" if is_special else shown[at : at + len(text)]
        parts.append(part)
        at += len(part)
    return parts


def divergence(expected: np.ndarray, got: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row KL(expected || got) and top-1 agreement, from two [rows, vocab] log-prob arrays.

    >>> lp = log_softmax(np.array([[2.0, 0.0], [0.0, 1.0]]))
    >>> kl, agree = divergence(lp, lp[::-1])
    >>> np.round(kl, 3).tolist(), agree.tolist()
    ([0.829, 1.007], [False, False])
    """
    kl = (np.exp(expected) * (expected - got)).sum(-1)
    return np.maximum(kl, 0.0), expected.argmax(-1) == got.argmax(-1)  # round-off can dip below 0


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities from logits, in float64, row-wise."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


class TransformersScorer:
    """The transformers pipeline's torch model: one forward pass over prompt + answer."""

    def __init__(self, pipeline) -> None:
        self.model, self.tokenizer = pipeline.model, pipeline.tokenizer

    def log_probs(self, prompt: list[int], completion: list[int]) -> np.ndarray:
        """[len(completion), vocab]: the distribution each answer token was drawn from."""
        import torch

        ids = torch.tensor([prompt + completion[:-1]])
        with torch.inference_mode():
            logits = self.model(input_ids=ids).logits[0, len(prompt) - 1 :]
        return log_softmax(logits.float().numpy())

    def special(self, completion: list[int]) -> list[bool]:
        """Which tokens are special (the end token): they show as their own text."""
        return [token in self.tokenizer.all_special_ids for token in completion]

    def token_texts(self, completion: list[int]) -> list[str]:
        """Each token's share of the decoded answer; a special token shows as itself."""
        texts, before = [], ""
        for i in range(len(completion)):
            if completion[i] in self.tokenizer.all_special_ids:
                texts.append(self.tokenizer.convert_ids_to_tokens(completion[i]))
                continue
            now = self.tokenizer.decode(completion[: i + 1], skip_special_tokens=True)
            texts.append(now[len(before) :] if now.startswith(before) else now)
            before = now
        return texts


class OnnxScorer:
    """The ONNX pyfunc's onnxruntime-genai model, fed one token at a time (pruned LM head)."""

    def __init__(self, og_model) -> None:
        self.model = og_model

    def log_probs(self, prompt: list[int], completion: list[int]) -> np.ndarray:
        return onnx_log_probs(self.model, prompt, completion)


def onnx_log_probs(model, prompt: list[int], completion: list[int]) -> np.ndarray:
    """[len(completion), vocab] next-token log-probs after `prompt` and each answer prefix.

    The prompt goes in at once; its last position's logits are the first row. Then each
    answer token but the last is appended alone, since a pruned LM head scores only the last.
    """
    import onnxruntime_genai as og

    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(prompt) + len(completion), do_sample=False)
    generator, rows = og.Generator(model, params), []
    generator.append_tokens(prompt)
    rows.append(np.asarray(generator.get_logits(), dtype=np.float64).reshape(-1))
    for token in completion[:-1]:
        generator.append_tokens([int(token)])
        rows.append(np.asarray(generator.get_logits(), dtype=np.float64).reshape(-1))
    return log_softmax(np.stack(rows))


def scorer_for(backend, side: str):
    """The scorer for a loaded in-process MLflow backend; FidelityError for any other."""
    loaded = getattr(getattr(backend, "model", None), "get", None)
    if loaded is None:
        raise FidelityError(
            f"Not scored: the {side} pane is not an in-process MLflow model (a remote scoring "
            "server gives no logits), so its distributions cannot be read."
        )
    pyfunc = loaded().pyfunc
    if "transformers" in pyfunc.metadata.flavors:
        return TransformersScorer(pyfunc.get_raw_model())
    engine = pyfunc.unwrap_python_model()
    if not hasattr(engine, "model"):
        raise FidelityError(f"Not scored: {type(engine).__name__} exposes no model to score with.")
    return OnnxScorer(engine.model)


def _unscorable(reference: Result, other: Result, same_conversation: bool) -> str | None:
    if not reference.completion_ids or not reference.prompt_ids:
        return f"Not scored: the {REFERENCE} pane did not report its token ids."
    if same_conversation and other.prompt_ids and other.prompt_ids != reference.prompt_ids:
        return "Not scored: the two chat templates gave different prompt ids."
    return None


def scoring_note(
    results: Mapping[str, Result], options: GenerationOptions, same_conversation: bool
) -> str | None:
    """What the reader must know to read the numbers: other histories, other settings, sampling."""
    used = results[REFERENCE].options or options
    notes = [] if same_conversation else [DIFFERENT_HISTORIES]
    notes += [differing_note(results)] if differing_note(results) else []
    if not used.greedy:
        notes.append(
            f"The {REFERENCE} answer was {describe(used)}; KL and top-1 compare the models' own "
            "distributions (temperature 1)."
        )
    return " ".join(notes) or None


DIFFERENT_HISTORIES = (
    "The two sides hold different histories (their earlier answers differ): both models were "
    f"scored on the {REFERENCE} side's conversation and answer."
)
