"""Interleaved comparison: fair per-model clocks, and the verdict.

The fake backend here only exercises the shared measuring code; the real
models are compared in test_wrappers.py and test_app.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from compare.comparison import compare_stream, judge
from wrappers import GenerationOptions, Result, run
from wrappers.backend import Report
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
    fast, slow = Sleeper(0.01), Sleeper(0.08)
    alone = run(fast, [], GenerationOptions())
    *_, both = compare_stream({"fast": fast, "slow": slow}, {"fast": [], "slow": []}, GenerationOptions())
    assert both["fast"].done and both["slow"].done
    # Beside a model 8x slower, the fast one's own clock still reads about its own 5 steps.
    assert both["fast"].latency.total_s < 0.3 < both["slow"].latency.total_s
    assert abs(both["fast"].latency.total_s - alone.latency.total_s) < 0.1


def test_both_sides_stream_at_once():
    seen = [
        tuple(len(r.pieces) for r in step.values())
        for step in compare_stream(
            {"a": Sleeper(0), "b": Sleeper(0)}, {"a": [], "b": []}, GenerationOptions()
        )
    ]
    assert seen[:4] == [(1, 0), (1, 1), (2, 1), (2, 2)]


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
    return Result(text="".join(pieces), pieces=tuple(pieces), latency=Latency(1.0, 0.1, tps), done=True)


def test_verdict_names_the_first_diverging_token_and_the_speed_ratio():
    verdict = judge(
        result(["The", " capital", " is"], 10.0), result(["The", " city", " is"], 25.0), ("t", "o")
    )
    assert (verdict.identical, verdict.diverged_at_token) == (False, 1)
    assert (verdict.left_token, verdict.right_token) == (" capital", " city")
    assert verdict.speed_ratio == 2.5
    assert verdict.summary == "Completions diverge at token 1: ' capital' vs ' city'. o decodes 2.50x faster."


def test_verdict_for_identical_completions():
    verdict = judge(result(["a", "b"], 20.0), result(["a", "b"], 10.0), ("t", "o"))
    assert verdict.identical and verdict.diverged_at_token is None
    assert verdict.summary == "Identical completions (2 tokens). t decodes 2.00x faster."
