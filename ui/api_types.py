"""The typed returns of the public API: what a `gradio_client` caller receives, field by field.

`gr.api` reads these TypedDicts from the endpoints' signatures (`ui/api.py`, `ui/arena.py`) for
the API page and `view_api`. A figure that is unknown is null, never a guess.
"""

from __future__ import annotations

from typing import Any, TypedDict


class UsageInfo(TypedDict):
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None


class LatencyInfo(TypedDict):
    """Seconds of the model's own work (a remote endpoint's also carry network_s)."""

    total_s: float | None
    ttft_s: float | None
    tokens_per_s: float | None


class ModelInfo(TypedDict):
    name: str | None
    version: str | None
    uri: str | None


class Side(TypedDict):
    """One model's answer: the chat completion, exactly what predict returned, and its figures."""

    response: dict | None  # OpenAI chat.completion object, once the answer is complete
    raw: Any
    usage: UsageInfo
    latency: LatencyInfo
    model: ModelInfo
    error: str | None


class TokenInfo(TypedDict):
    token: str  # the text the pane shows for this token (the end token: its special text)
    kl: float  # KL(transformers || onnx) of the next-token distributions, in nats
    p_reference: float  # each model's probability of the token emitted
    p_other: float
    agree: bool  # both models' most likely token is the same
    hidden: bool  # the pane shows none of it: the end token, or the token a stop sequence cut


class FidelityInfo(TypedDict):
    """The transformers answer teacher-forced through both models."""

    reference: str
    other: str
    tokens: int
    mean_kl: float
    max_kl: float
    top1_agreement: float
    per_token: list[TokenInfo]
    scoring_s: float  # charged to neither side's latency
    note: str | None


class JudgedInfo(TypedDict):
    """The verdict on two answers."""

    identical: bool
    diverged_at_token: int | None  # 0-based index of the first differing token
    transformers_token: str | None  # that token on each side (None: its answer had ended)
    onnx_token: str | None
    left_token: str | None  # aliases of transformers_token and onnx_token
    right_token: str | None
    speed_ratio: float | None  # onnx decode tokens/s over transformers'
    same_conversation: bool  # False: the models were sent different histories
    summary: str


class VerdictInfo(JudgedInfo):
    """The verdict, and the fidelity scored after it."""

    fidelity: FidelityInfo | None  # null while scoring, when switched off, or when it cannot be scored
    fidelity_reason: str | None  # why fidelity is null


class Comparison(TypedDict):
    """Each update of /compare; verdict and ended are null until the answers are final."""

    transformers: Side
    onnx: Side
    verdict: VerdictInfo | None
    comparison_id: str
    tracing_notice: str | None
    ended: str | None  # finished, timed_out or failed (a cancelled stream gets no last update)
    votable: bool  # true only once it finished: /vote refuses every other ending


class VoteReceipt(TypedDict):
    comparison_id: str
    choice: str
    trace_ids: list[str]
    previous_choice: str | None  # the vote this one replaced
