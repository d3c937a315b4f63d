"""Streams run ahead of Gradio: the model never waits while an update is being sent."""

from __future__ import annotations

import threading

import pytest

from api import SIDES, run_ahead, streamed
from wrappers import GenerationOptions, run, stream_result

SPAIN = [{"role": "user", "content": "What is the capital of Spain?"}]


def test_the_model_never_waits_for_a_slow_reader():
    finished = threading.Event()

    def steps():
        yield from range(5)
        finished.set()

    stream = run_ahead(steps())
    first = next(stream)
    # Stepped by its reader, the generator could not finish while the reader holds an update.
    assert finished.wait(timeout=10)
    rest = list(stream)
    assert len(rest) <= 1 and [first, *rest][-1] == 4  # updates sent meanwhile merge into the newest


def test_closing_the_stream_stops_the_steps_and_closes_the_generator():
    taken, closed = [], threading.Event()

    def endless():
        try:
            while True:
                taken.append(len(taken))
                yield taken[-1]
        finally:
            closed.set()

    stream = run_ahead(endless())
    next(stream)
    stream.close()
    assert closed.is_set()  # closed on its own thread before close() returned
    count = len(taken)
    assert not any(t.name == "run-ahead" and t.is_alive() for t in threading.enumerate())
    assert len(taken) == count


def test_an_error_in_a_step_reaches_the_reader_after_the_updates_before_it():
    def failing():
        yield "partial"
        raise ValueError("the model failed")

    stream = run_ahead(failing())
    assert next(stream) == "partial"
    with pytest.raises(ValueError, match="the model failed"):
        next(stream)


def test_paced_streams_always_end_with_the_last_update():
    assert list(streamed(iter(range(100)), interval_s=3600))[-1] == 99


@pytest.mark.parametrize("side", SIDES)
def test_a_stream_closed_early_leaves_the_model_ready_for_the_next_request(backends, side):
    options = GenerationOptions(max_tokens=48)
    stream = run_ahead(stream_result(backends[side], SPAIN, options))
    assert next(stream).model.uri  # may already be the last update: ONNX is quick here
    stream.close()
    answer = run(backends[side], SPAIN, options)
    assert answer.error is None and "Madrid" in answer.text


@pytest.mark.parametrize("side", SIDES)
def test_a_run_ahead_stream_gives_the_same_answer_and_counts(backends, side):
    options = GenerationOptions(max_tokens=48)
    direct = run(backends[side], SPAIN, options)
    *_, ahead = run_ahead(stream_result(backends[side], SPAIN, options))
    assert ahead.done and ahead.text == direct.text
    assert ahead.usage == direct.usage
    assert 0 < ahead.latency.ttft_s <= ahead.latency.total_s
