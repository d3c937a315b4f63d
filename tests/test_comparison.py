"""Interleaved comparison: fair per-model clocks, processor sharing, and the verdict.

The fake backend here only exercises the shared measuring code; the real
models are compared in test_wrappers.py and test_app.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from compare.comparison import SHARED, TURNS, compare_stream, judge
from ui.pacing import paced
from wrappers import GenerationOptions, Result, run
from wrappers.backend import Report
from wrappers.pace import Speed
from wrappers.results import Latency, ModelRef, Usage


@dataclass
class Sleeper:
    """Spends `step_s` per token, like a model of known speed."""

    step_s: float
    tokens: tuple[str, ...] = ("The", " capital", " is", " Madrid", ".")
    title: str = "sleeper"
    streaming_note: str = ""

    def model_ref(self) -> ModelRef:
        return ModelRef("sleeper", "1", "models:/sleeper/1")

    def stream(self, messages, options, report: Report):
        for token in self.tokens:
            time.sleep(self.step_s)
            yield token
        report.usage = Usage(3, len(self.tokens), 3 + len(self.tokens))


def test_each_side_is_charged_only_for_its_own_steps():
    fast, slow = Sleeper(0.01), Sleeper(0.3)
    alone = run(fast, [], GenerationOptions())
    *_, both = compare_stream({"fast": fast, "slow": slow}, {"fast": [], "slow": []}, GenerationOptions())
    assert both["fast"].done and both["slow"].done
    # Beside a model 30x slower (1.5 s), the fast one's own clock still reads about its own 5 steps
    # (0.05 s); the margins leave room for a busy machine's scheduling.
    assert both["fast"].latency.total_s < 0.5 < 1.5 <= both["slow"].latency.total_s
    assert abs(both["fast"].latency.total_s - alone.latency.total_s) < 0.4


def test_taking_turns_steps_each_side_once_in_order():
    seen = [
        tuple(len(r.pieces) for r in step.values())
        for step in compare_stream(
            {"a": Sleeper(0), "b": Sleeper(0)}, {"a": [], "b": []}, GenerationOptions(), schedule=TURNS
        )
    ]
    assert seen[:4] == [(1, 0), (1, 1), (2, 1), (2, 2)]


def pieces_when_done(updates, side: str) -> dict[str, int]:
    """How many pieces each side had streamed in the update where `side` finished."""
    for update in updates:
        if update[side].done:
            return {s: len(r.pieces) for s, r in update.items()}
    raise AssertionError(f"{side} never finished")


@dataclass
class Measured(Sleeper):
    """A sleeper whose first step reads the prompt (`prefill_s`), with the speed the app measured
    for it at start-up (`pace`), as the local backends have."""

    prefill_s: float = 0.0
    known: bool = True

    @property
    def pace(self):
        return _Known(Speed(prefill_s=self.prefill_s / 10, decode_s=self.step_s)) if self.known else None

    def prompt_tokens(self, messages) -> int:
        return 10

    def stream(self, messages, options, report: Report):
        time.sleep(self.prefill_s)
        yield from super().stream(messages, options, report)


@dataclass(frozen=True)
class _Known:
    measured: Speed

    def speed(self) -> Speed:
        return self.measured

    def observe(self, result) -> None:
        """The app's pace learns from each answer; this one keeps its figures fixed."""


def test_the_side_with_the_shorter_prompt_reading_answers_before_the_other_reads_its_prompt():
    """The side listed first reads its prompt for 0.3 s; the other's whole answer takes 0.2 s of its
    own compute. Ending each step soonest first, it streams all of it before the first side's long
    step; least-compute-first alone (speeds not known) would start with the 0.3 s step, ties in order.
    """
    for known, first in ((True, "fast"), (False, "slow_start")):
        pair = {
            "slow_start": Measured(0.0, prefill_s=0.3, known=known),
            "fast": Measured(0.02, prefill_s=0.1, known=known),
        }
        updates = list(compare_stream(pair, {"slow_start": [], "fast": []}, GenerationOptions()))
        first_shown = next(side for side, r in updates[0].items() if r.pieces)
        assert first_shown == first, (known, first_shown)
        if known:
            assert pieces_when_done(updates, "fast") == {"slow_start": 0, "fast": 5}
        assert all(r.done and r.text == "The capital is Madrid." for r in updates[-1].values())


def test_sharing_the_processor_lets_the_faster_side_finish_first():
    """The slow side goes first (ties in order) and takes one 0.1 s step; the fast one then streams
    all five of its 0.01 s steps before the slow side has used more than its own second step."""
    pair, conversations = {"slow": Sleeper(0.1), "fast": Sleeper(0.01)}, {"slow": [], "fast": []}
    shared = list(compare_stream(pair, conversations, GenerationOptions()))
    when_fast_done = pieces_when_done(shared, "fast")
    assert when_fast_done["fast"] == 5
    assert when_fast_done["slow"] in (1, 2)  # 2: a busy machine stretched the fast sleeps past 0.1 s
    assert shared[-1]["slow"].done and shared[-1]["slow"].text == "The capital is Madrid."
    turns = list(compare_stream(pair, conversations, GenerationOptions(), schedule=TURNS))
    assert pieces_when_done(turns, "fast")["slow"] == 5  # round-robin: the panes finish together


def test_an_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="schedule must be one of"):
        next(compare_stream({"a": Sleeper(0)}, {"a": []}, GenerationOptions(), schedule="fifo"))


def test_on_the_real_models_the_faster_side_finishes_before_the_slower_is_half_done(backends):
    """On the tiny model ONNX int4 needs a fraction of transformers' time per token: under
    processor sharing its last token arrives while transformers is still early in its answer
    (taking turns, it arrived one step before transformers' last)."""
    options = GenerationOptions(max_tokens=16)
    question = [{"role": "user", "content": "Tell me about Spain."}]
    updates = list(compare_stream(backends, {side: question for side in backends}, options, schedule=SHARED))
    final = updates[-1]
    onnx, transformers = final["onnx"], final["transformers"]
    assert onnx.latency.total_s * 3 < transformers.latency.total_s  # the premise: ONNX is much faster
    assert len(transformers.pieces) >= 8
    assert pieces_when_done(updates, "onnx")["transformers"] < len(transformers.pieces) / 2


def test_a_failing_side_reports_its_error_and_the_other_finishes():
    class Broken(Sleeper):
        def stream(self, messages, options, report):
            yield "The"
            raise RuntimeError("the ONNX folder is corrupt")

    *_, last = compare_stream(
        {"ok": Sleeper(0), "bad": Broken(0)}, {"ok": [], "bad": []}, GenerationOptions()
    )
    assert last["bad"].error == "RuntimeError: the ONNX folder is corrupt"
    assert last["ok"].text == "The capital is Madrid." and last["ok"].error is None


def result(pieces, tps):
    usage = Usage(3, len(pieces), 3 + len(pieces))
    return Result(
        text="".join(pieces), pieces=tuple(pieces), usage=usage, latency=Latency(1.0, 0.1, tps), done=True
    )


TWELVE = ["The", " capital", " is", " Madrid", ",", " the", " largest", " city", " of", " Spain", ".", ""]


def test_verdict_names_the_first_diverging_token_and_the_speed_ratio():
    other = [*TWELVE[:1], " city", *TWELVE[2:]]
    verdict = judge(result(TWELVE, 10.0), result(other, 25.0), ("t", "o"))
    assert (verdict.identical, verdict.diverged_at_token) == (False, 1)
    assert (verdict.left_token, verdict.right_token) == (" capital", " city")
    assert verdict.to_dict()["t_token"] == " capital" and verdict.to_dict()["o_token"] == " city"
    assert verdict.speed_ratio == 2.5
    assert verdict.summary == (
        "Completions diverge at token 2: ' capital' vs ' city'. "
        "o decodes about 2.5× faster (11 timed tokens each side)."
    )


def test_verdict_for_identical_completions():
    verdict = judge(result(TWELVE, 20.0), result(TWELVE, 10.0), ("t", "o"))
    assert verdict.identical and verdict.diverged_at_token is None
    assert (
        verdict.summary
        == "Identical completions (12 tokens). t decodes about 2× faster (11 timed tokens each side)."
    )


def test_verdict_rounds_the_speed_ratio_to_two_figures_and_says_when_too_short_to_time():
    assert "about 160× faster" in judge(result(TWELVE, 10.0), result(TWELVE, 1551.2), ("t", "o")).summary
    assert "about the same speed" in judge(result(TWELVE, 10.0), result(TWELVE, 10.5), ("t", "o")).summary
    short = judge(result(["Hi", ""], 10.0), result(["Hi", ""], 2000.0), ("t", "o")).summary
    assert (
        short == "Identical completions (2 tokens). "
        "Too short to compare decoding speeds: both have 1 token after the first, 8 needed."
    )
    assert judge(result(["Hi", ""], 10.0), result(["Hi", ""], 2000.0), ("t", "o")).speed_ratio is None
    assert "x faster" not in short and "(1 tokens)" not in short


def test_verdict_says_when_the_models_were_sent_different_conversations():
    verdict = judge(result(TWELVE, 10.0), result(TWELVE, 10.0), ("t", "o"), same_conversation=False)
    assert not verdict.same_conversation and "sent different conversations" in verdict.summary


@pytest.mark.parametrize("stop", ["Madrid", "The", "Spain", "capital of"])
def test_a_stop_sequence_gives_both_sides_the_same_text_tokens_and_verdict(backends, stop):
    """Bug: transformers counted the token generate() makes after the stop, so the verdict said
    the identical texts diverged (at '' vs None) and the usage differed."""
    options = GenerationOptions.checked({"max_tokens": 64, "stop": stop}, 512)
    question = [{"role": "user", "content": "What is the capital of Spain?"}]
    *_, last = compare_stream(backends, {side: question for side in backends}, options)
    transformers, onnx = last["transformers"], last["onnx"]
    assert stop not in transformers.text and transformers.text == onnx.text
    assert transformers.pieces == onnx.pieces
    assert transformers.usage == onnx.usage
    assert transformers.usage.completion_tokens == len(onnx.pieces)
    for r in (transformers, onnx):
        assert r.response["usage"]["completion_tokens"] == r.usage.completion_tokens
        assert r.response["choices"][0]["finish_reason"] == "stop"
    verdict = judge(transformers, onnx, ("transformers", "onnx"))
    assert verdict.identical and verdict.summary.startswith("Identical completions")


def test_partial_results_carry_the_figures_so_far(backends):
    options = GenerationOptions(max_tokens=16)
    question = [{"role": "user", "content": "Tell me about Spain."}]
    updates = list(compare_stream(backends, {side: question for side in backends}, options))
    partial = [u["onnx"] for u in updates if u["onnx"].pieces and not u["onnx"].done]
    assert partial, "the ONNX side streamed"
    for r in partial:
        assert r.usage.completion_tokens == len(r.pieces) and r.usage.prompt_tokens
        assert r.latency.total_s > 0 and r.latency.ttft_s is not None


def test_the_page_learns_a_pane_has_ended_before_the_other_sides_long_step():
    """The stream to the page sends a few updates a second; the update where the fast side ends comes
    right after its last token, and was held back until the slow side's next step: at full size,
    the prefill of a minute. It is sent at once, as is the update where a pane starts."""
    pair = {"slow_start": Measured(0.0, prefill_s=0.3), "fast": Measured(0.0, prefill_s=0.0)}
    sent = list(paced(compare_stream(pair, {"slow_start": [], "fast": []}, GenerationOptions()), 3600))
    fast_done = next(n for n, update in enumerate(sent) if update["fast"].done)
    assert not sent[fast_done]["slow_start"].pieces  # the slow side had not started its long step
    assert [bool(update["slow_start"].pieces) for update in sent].count(True) == 2  # its start, its end
