"""Time limits that fit the machine: each side's measured speed, and a refusal up front.

On the real tiny models. The estimate is checked against itself (what it says fits is
accepted, one token more is refused), never against a wall clock: timing belongs in
benchmarks (benchmarks/pane_speed.py).
"""

from __future__ import annotations

import re

import pytest

from compare.budget import over_time
from wrappers import GenerationOptions, build_backends
from wrappers.pace import Pace, Speed
from wrappers.results import Latency, Result, Usage
from wrappers.startup import measure_pace, warm_up_answers

QUESTION = [{"role": "user", "content": "What is the capital of Spain?"}]


@pytest.fixture(scope="module")
def measured(backends):
    """Both tiny models with their speed measured, as the app does before it serves."""
    return {side: measure_pace(backend) for side, backend in backends.items()}


def answer(prompt: int, tokens: int, ttft: float, total: float, **changes) -> Result:
    fields = {"usage": Usage(prompt, tokens, prompt + tokens), "latency": Latency(total, ttft), "done": True}
    return Result(**(fields | changes))


def test_the_warm_up_measures_each_side_and_says_what_it_measured(backends, measured):
    for side, line in measured.items():
        speed = backends[side].pace.speed()
        assert speed is not None and speed.prefill_s > 0 and speed.decode_s > 0, side
        assert re.fullmatch(
            r"prefill [\d,.]+ tokens/s( \+ [\d.e-]+ s a prompt)?, decode [\d,.]+ tokens/s "
            r"\(warm-up requests: \d+- and \d+-token prompts, 8 and 2 new tokens, [\d.]+ s\)",
            line,
        ), line


def test_the_estimate_is_seconds_over_tokens_weighted_toward_the_latest_answers():
    pace = Pace(decay=0.5)
    assert pace.speed() is None  # nothing seen yet: the check waits, it does not guess
    pace.observe(answer(100, 11, ttft=1.0, total=2.0))  # 0.01 s per prompt token, 0.1 s per token after
    assert pace.speed() == Speed(0.01, 0.1)
    pace.observe(answer(100, 11, ttft=4.0, total=8.0))  # the machine got 4x slower
    assert pace.speed() == pytest.approx(Speed((0.5 * 1 + 4) / 150, (0.5 * 1 + 4) / 15))
    for ignored in (
        answer(100, 11, ttft=50.0, total=90.0, error="Stopped: the request ran past its time limit."),
        answer(100, 11, ttft=50.0, total=90.0, done=False),  # stopped, or the client went away
    ):
        pace.observe(ignored)
    assert pace.speed() == pytest.approx(Speed((0.5 * 1 + 4) / 150, (0.5 * 1 + 4) / 15))


def test_prefill_is_a_base_and_a_time_per_token_from_two_prompt_lengths():
    """Priced per token from one short prompt, a base every prompt pays was spread over its few
    tokens, and a long prompt was priced far too high (full size, 7 December)."""
    pace = Pace(decay=0.5)
    # 1.5 s, then 15.6 ms a token:
    short, long = answer(64, 8, ttft=2.5, total=3.2), answer(256, 2, ttft=5.5, total=5.6)
    pace.calibrate([short, long])
    speed = pace.speed()
    assert speed.prefill_base_s == pytest.approx(1.5)
    assert speed.seconds(1600, 1) == pytest.approx(1.5 + 1600 * 3.0 / 192)  # the line through both: 26.5 s
    assert speed.seconds(1600, 1) < 1600 * 2.5 / 64 / 2  # priced per token from the short one: 62.5 s
    pace.observe(answer(1000, 11, ttft=21.5, total=22.5))  # the machine got slower: the slope follows
    assert pace.speed().prefill_base_s == pytest.approx(1.5)
    beyond_base = (0.25 * 1.0 + 0.5 * 4.0 + 20.0) / (0.25 * 64 + 0.5 * 256 + 1000)
    assert pace.speed().prefill_s == pytest.approx(beyond_base)
    # slower per token as the prompt grows:
    pace.calibrate([answer(64, 8, ttft=1.0, total=2.0), answer(256, 2, ttft=5.0, total=5.1)])
    speed = pace.speed()
    expected = ((0.5 * 1.0 + 5.0) / (0.5 * 64 + 256), (0.5 * 1.0 + 0.1) / (0.5 * 7 + 1), 0.0)
    assert (speed.prefill_s, speed.decode_s, speed.prefill_base_s) == pytest.approx(expected)
    # no base where the time per token grows with the prompt: the ratio, as from one length


def test_the_first_warm_up_request_is_left_out_of_the_estimate(config):
    """Freshly loaded, each side's first request pays its library's one-off costs; it runs the
    warm-up's largest shapes, and the estimate is what the two timed answers alone give."""
    for side, backend in build_backends(config, progress=lambda message: None).items():
        first, timed = warm_up_answers(backend)
        assert first.done and not first.error, side
        short, long = (r.usage.prompt_tokens for r in timed)
        assert first.usage.prompt_tokens == long > short, side
        backend.pace.calibrate(timed)
        alone = Pace()
        alone.calibrate(timed)
        assert backend.pace.speed() == alone.speed(), side


def test_every_finished_answer_updates_the_estimate(backends, measured):
    from wrappers import run

    before = backends["onnx"].pace.speed()
    long = [{"role": "user", "content": "Tell me about Spain. " * 40}]
    run(backends["onnx"], long, GenerationOptions(max_tokens=32))
    assert backends["onnx"].pace.speed() != before


def test_a_request_that_cannot_finish_in_time_is_refused_with_what_fits(backends, measured):
    conversations = {side: QUESTION for side in backends}
    options = GenerationOptions(max_tokens=200)
    speeds = {side: backends[side].pace.speed() for side in backends}
    expected = sum(s.seconds(backends[side].prompt_tokens(QUESTION), 200) for side, s in speeds.items())
    limit = expected / 3
    message = over_time(backends, conversations, options, limit)
    assert message is not None
    tokens = max(backend.prompt_tokens(QUESTION) for backend in backends.values())
    assert message.startswith(f"This prompt of {tokens} tokens, with up to 200 new tokens, would take about ")
    assert ": the two share the CPU); the time limit is " in message
    fewer = int(re.search(r"[Tt]his prompt fits at (\d+) new tokens or fewer", message).group(1))
    assert 1 <= fewer < 200
    assert over_time(backends, conversations, GenerationOptions(max_tokens=fewer), limit) is None
    assert over_time(backends, conversations, GenerationOptions(max_tokens=fewer + 1), limit) is not None
    assert over_time(backends, conversations, options, expected * 2) is None
    assert over_time(backends, conversations, options, None) is None  # no limit: nothing to check


def test_one_side_alone_is_checked_on_its_own_time(backends, measured):
    """A regenerated pane runs one side: the other side's time is not counted."""
    speeds = {side: backends[side].pace.speed() for side in backends}
    tokens = backends["onnx"].prompt_tokens(QUESTION)
    onnx_alone = speeds["onnx"].seconds(tokens, 200)
    both = onnx_alone + speeds["transformers"].seconds(tokens, 200)
    limit = (onnx_alone + both) / 2
    options = GenerationOptions(max_tokens=200)
    assert over_time(backends, {"onnx": QUESTION}, options, limit) is None
    message = over_time(backends, {"onnx": QUESTION, "transformers": QUESTION}, options, limit)
    assert message is not None and "the two share the CPU" in message
