"""Each pane at its own speed, on a Phi-3-shaped checkpoint: the faster side finishes first.

The cheapest shaped model on which transformers is clearly slower than the int4 export:
the narrow 2-layer shape of the CI rehearsal (tests/test_fullscale.py), logged into its
own MLflow store as the app logs any checkpoint. The order is read from the stream
(how far the slower side had got when the faster one finished), never from a wall
clock; `python -m benchmarks.pane_speed` prints the times on the 4-layer model.
"""

from __future__ import annotations

import pytest

from benchmarks.fullscale.rehearsal import NARROW
from benchmarks.pane_speed import arrivals, prompt_messages, shaped_backends, table
from benchmarks.shaped_model import build_shaped_model
from compare.comparison import SHARED, TURNS, compare_stream
from wrappers import GenerationOptions

NEW_TOKENS = 16


@pytest.fixture(scope="module")
def shaped(tmp_path_factory):
    checkpoint = build_shaped_model(2, tmp_path_factory.mktemp("shaped") / "shaped-2-narrow", NARROW)
    return shaped_backends(checkpoint), prompt_messages(checkpoint, 64)


def streamed_when_done(updates, side: str) -> dict[str, int]:
    """Each side's tokens so far in the update where `side` finished."""
    finished = next(update for update in updates if update[side].done)
    return {s: len(r.pieces) for s, r in finished.items()}


def test_on_a_shaped_model_the_faster_side_finishes_before_the_slower_is_half_done(shaped):
    backends, messages = shaped
    options = GenerationOptions(max_tokens=NEW_TOKENS)
    updates = list(compare_stream(backends, {side: messages for side in backends}, options, schedule=SHARED))
    final = updates[-1]
    assert all(len(r.pieces) == NEW_TOKENS for r in final.values())  # a shaped model runs to its length
    assert final["onnx"].latency.total_s * 2 < final["transformers"].latency.total_s  # the premise
    assert streamed_when_done(updates, "onnx")["transformers"] < NEW_TOKENS / 2
    turns = list(compare_stream(backends, {side: messages for side in backends}, options, schedule=TURNS))
    assert streamed_when_done(turns, "onnx")["transformers"] >= NEW_TOKENS - 1  # taking turns: together


def test_the_benchmark_prints_both_schedules_for_both_panes(shaped):
    backends, messages = shaped
    runs = {
        schedule: [arrivals(backends, messages, GenerationOptions(max_tokens=4), schedule)]
        for schedule in (SHARED, TURNS)
    }
    for repeats in runs.values():
        for arrival in repeats[0].values():
            assert 0 < arrival.first_s <= arrival.last_s and arrival.tokens == 4
            assert 0 < arrival.own_ttft_s <= arrival.own_total_s
    printed = table(runs)
    assert printed.count("| shared |") == 2 and printed.count("| turns |") == 2
