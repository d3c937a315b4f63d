"""The full-size rehearsal's small version: the same phases and refusals, on a narrow 2-layer model.

`python -m benchmarks.fullscale` runs it at full size (docs/fullscale.md); here
it runs for real on a small model inside a memory cgroup, as a Space's
container would hold the app.
"""

from __future__ import annotations

import pytest

from benchmarks.fullscale import cgroup
from benchmarks.fullscale import rehearsal as fullscale
from benchmarks.fullscale.report import markdown
from benchmarks.fullscale.visitor import shorter
from compare.budget import refusal
from wrappers.pace import Speed

GiB = 2**30
pytestmark = pytest.mark.skipif(not cgroup.available(), reason="needs root and a writable memory cgroup")


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    root = tmp_path_factory.mktemp("fullscale")
    settings = fullscale.Settings(
        layers=2, shape=fullscale.NARROW, memory_limit=4 * GiB, refuse_limit=int(0.9 * GiB),
        prompt_tokens=64, new_tokens=8, speed_prompts=(64,), cache=root / "cache", work=root,
    )  # fmt: skip
    return fullscale.rehearse(settings, progress=lambda message: None)


def test_log_only_logs_builds_and_registers_inside_the_limit(rehearsal):
    logged = rehearsal["log_only"]
    assert logged["exit"] == 0 and logged["oom_kills"] == 0
    lines = " ".join(step["line"] for step in logged["steps"])
    assert "Logging" in lines and "Building the int4 ONNX export" in lines and lines.count(": ready: ") == 2
    assert 0 < logged["peak_rss"] < 4 * GiB
    assert logged["disk_peak_added"] >= logged["disk_added"] > 0
    assert rehearsal["store"]["mlflow_store"] > 0 and rehearsal["store"]["onnx_builds"] > 0


def test_both_sides_load_and_answer_together_each_pane_timed(rehearsal):
    served = rehearsal["serve"]
    assert served["oom_kills"] == 0 and served["compare"]["ended"] == "finished"
    for side in ("transformers", "onnx"):
        figures = served["compare"][side]
        assert figures["prompt_tokens"] == 64 and not figures["error"], side
        assert figures["completion_tokens"] == 8, side  # the shaped model never picks the end token
        assert 0 < figures["ttft_s"] < figures["total_s"] and figures["tokens_per_s"] > 0, side
        assert 0 < figures["pane_first_s"] <= figures["pane_last_s"] <= served["compare"]["wall_s"], side
    assert served["compare"]["transformers"]["model"]["name"].endswith("-transformers")
    assert 0 < served["rss_ready"] <= served["peak_rss"]
    assert served["limits"] == {"prompt": 2048, "new": 512, "lowered": None}  # 4 GiB holds the narrow model
    assert sorted(served["load"]) == ["compare", "end", "longest", "speed"]


def test_the_longest_prompt_the_limits_allow_is_answered_by_both_sides(rehearsal):
    longest = rehearsal["serve"]["longest"]
    assert [t["prompt_tokens"] for t in longest["tries"]] == [2048]  # the narrow model is fast: no refusal
    answered = longest["answered"]
    assert answered["ended"] == "finished"
    for side in ("transformers", "onnx"):
        assert answered[side]["prompt_tokens"] == 2048 and answered[side]["completion_tokens"] == 16, side


def test_each_side_alone_is_timed_at_each_prompt_length(rehearsal):
    rows = rehearsal["serve"]["speed"]
    assert [(r["side"], r["prompt_tokens"]) for r in rows] == [("transformers", 64), ("onnx", 64)]
    assert all(r["ttft_s"] > 0 and r["tokens_per_s"] > 0 and not r["error"] for r in rows)


def test_the_next_try_after_a_time_refusal_is_the_prompt_its_message_says_fits():
    speeds = {"transformers": Speed(0.026, 0.6), "onnx": Speed(0.032, 0.146)}  # s per token
    tokens = {"transformers": 2048, "onnx": 2048}
    expected = {side: speeds[side].seconds(tokens[side], 16) for side in speeds}
    message = refusal(speeds, tokens, expected, 16, 120.0)  # the app's own message, as a client gets it
    assert shorter(message, 2048) == 1800
    assert sum(s.seconds(1800, 16) for s in speeds.values()) <= 120.0  # which the budget accepts


def test_a_container_too_small_is_refused_up_front_not_oom_killed(rehearsal):
    refused = rehearsal["refused"]
    assert refused["exit"] == 1 and refused["oom_kills"] == 0
    assert refused["refusals"] and all("under its container's memory limit" in r for r in refused["refusals"])


def test_the_markdown_quotes_the_measured_figures(rehearsal):
    text = markdown(rehearsal)
    assert f"{rehearsal['log_only']['peak_rss'] / GiB:.1f} GiB" in text
    assert "| short prompt | transformers |" in text and "| 2048 tokens | onnx |" in text
    assert "| onnx | 64 |" in text and "Load average" in text
    assert "needs about" in text
