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

GiB = 2**30
pytestmark = pytest.mark.skipif(not cgroup.available(), reason="needs root and a writable memory cgroup")


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    root = tmp_path_factory.mktemp("fullscale")
    settings = fullscale.Settings(
        layers=2, shape=fullscale.NARROW, memory_limit=4 * GiB, refuse_limit=int(0.9 * GiB),
        prompt_tokens=64, new_tokens=8, cache=root / "cache", work=root,
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


def test_both_sides_load_and_answer_together(rehearsal):
    served = rehearsal["serve"]
    assert served["both_answered"] and served["oom_kills"] == 0
    for side, figures in served["sides"].items():
        assert figures["prompt_tokens"] == 64, side
        assert figures["completion_tokens"] == 8, side  # the shaped model never picks the end token
        assert 0 < figures["ttft_s"] < figures["total_s"] and figures["tokens_per_s"] > 0, side
    assert served["sides"]["transformers"]["model"]["name"].endswith("-transformers")
    assert 0 < served["rss_ready"] <= served["peak_rss"]
    longest = served["longest"]["sides"]["onnx"]
    assert longest["prompt_tokens"] == 2048 and longest["completion_tokens"] == 16  # the limit's worst case


def test_a_container_too_small_is_refused_up_front_not_oom_killed(rehearsal):
    refused = rehearsal["refused"]
    assert refused["exit"] == 1 and refused["oom_kills"] == 0
    assert refused["refusals"] and all("under its container's memory limit" in r for r in refused["refusals"])


def test_the_markdown_quotes_the_measured_figures(rehearsal):
    text = markdown(rehearsal)
    assert f"{rehearsal['log_only']['peak_rss'] / GiB:.1f} GiB" in text
    assert "| transformers |" in text and "| onnx |" in text
    assert "needs about" in text
