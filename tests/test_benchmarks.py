"""The benchmark suite, run for real on the tiny model with tiny settings.

Speed targets are not asserted (the suite reports them); these tests check
that every depth is measured and that the figures are positive, add up, and
agree across the JSON, the Markdown and the plot.
"""

from __future__ import annotations

import json
import statistics

import pytest

from benchmarks.exports import onnx_export
from benchmarks.shaped_model import build_shaped_model
from benchmarks.suite.model_cost import Shape, onnx_bytes_per_token
from benchmarks.suite.report import write_outputs
from benchmarks.suite.run import Settings, run_suite
from wrappers.config import TINY_CHECKPOINT

PROMPTS, NEW = (16, 40), (8, 12)


@pytest.fixture(scope="module")
def suite(tmp_path_factory, export_cache, store_dir, backends):
    """One tiny run of the whole suite, outputs written; returns (summary as saved, out folder).

    On the session's store, where both models are registered already, and with its exports.
    """
    settings = Settings(
        checkpoint=TINY_CHECKPOINT, fit_layers=None, prompt_tokens=PROMPTS, new_tokens=NEW, repeats=2,
        startup=False, cache=export_cache, out=tmp_path_factory.mktemp("bench") / "out", store=store_dir,
        gemm_size=1024, probe_mb=64,
    )  # fmt: skip
    summary = run_suite(settings, progress=lambda message: None)
    write_outputs(summary, settings.out)
    return json.loads((settings.out / "results.json").read_text()), settings.out


def test_every_path_is_measured_at_every_depth(suite):
    summary, _ = suite
    measured = {(row["path"], row["depth"]) for row in summary["rows"]}
    assert measured == {
        ("transformers fp32", "engine"), ("onnx int4", "engine"), ("onnx fp32", "engine"),
        ("transformers fp32", "pyfunc"), ("onnx int4", "pyfunc"),
        ("transformers fp32", "gradio"), ("onnx int4", "gradio"),
    }  # fmt: skip
    assert summary["noop_beyond_wait_s"] > 0


def test_figures_are_positive_and_add_up(suite):
    summary, _ = suite
    for row in summary["rows"]:
        assert row["load_s"] > 0 and row["peak_rss_mb"] >= 0, row["path"]
        if row["depth"] == "gradio":  # a whole process; in-process, the tiny model's few MB can fit in
            assert row["peak_rss_mb"] > 100, row["path"]  # memory the allocator already holds
        assert row["prompt_tokens_seen"] == list(PROMPTS)  # prompts of exactly the asked length
        for case, runs in row["samples"].items():
            asked = int(case.split("+")[1])
            assert len(runs) == 2
            for run in runs:
                assert 0 < run["ttft_s"] <= run["total_s"]
                assert 1 <= run["new_tokens"] <= asked
        for prompt in map(str, PROMPTS):
            assert row["total_s"][prompt] >= row["ttft_s"][prompt] > 0


def test_api_time_splits_into_model_app_and_noop(suite):
    summary, _ = suite
    for row in (r for r in summary["rows"] if r["depth"] == "gradio"):
        for run in (run for runs in row["samples"].values() for run in runs):
            assert 0 < run["server_s"] < run["total_s"]  # the model's own time is part of the request
            assert run["noop_s"] > 0
        assert row["api_overhead_s"] > 0
        assert row["api_overhead_over_noop_s"] < row["api_overhead_s"]


def test_decode_speed_is_tokens_over_time_after_the_first(suite):
    summary, _ = suite
    for row in summary["rows"]:
        for new in map(str, NEW):
            runs = row["samples"][f"{PROMPTS[0]}+{new}"]
            speeds = [
                (r["new_tokens"] - 1) / (r["total_s"] - r["ttft_s"]) for r in runs if r["new_tokens"] > 1
            ]
            if speeds:
                assert row["tokens_per_s"][new] == pytest.approx(statistics.median(speeds))


def test_limits_follow_from_the_machine_and_the_model(suite):
    summary, _ = suite
    machine, weights = summary["machine"], summary["model"]["weight_bytes_per_token"]
    assert machine["memory_bandwidth_gbs"] > 0 and machine["matmul_peak_gflops"] > 0 and machine["cores"] >= 1
    assert weights["onnx int4"] < weights["onnx fp32"]  # 4-bit weights read fewer bytes
    for row in (r for r in summary["rows"] if r["depth"] != "gradio"):
        runs = row["samples"][f"{PROMPTS[0]}+{NEW[0]}"]
        assert all(run["bandwidth_gbs"] > 0 for run in runs)  # each run has its own probe
        shares = [
            100
            * weights[row["path"]]
            * (run["new_tokens"] - 1)
            / (run["total_s"] - run["ttft_s"])
            / (run["bandwidth_gbs"] * 1e9)
            for run in runs
            if run["new_tokens"] > 1
        ]
        if shares:
            assert row["bandwidth_bound_pct"][str(NEW[0])] == pytest.approx(statistics.median(shares))
    assert len(machine["bandwidth_probes_gbs"]) > len(summary["rows"])
    probes = machine["bandwidth_probes_gbs"]
    assert machine["memory_bandwidth_gbs"] == pytest.approx(statistics.median(probes))


def test_targets_and_tuning_are_reported(suite):
    summary, _ = suite
    names = " ".join(t["target"] for t in summary["targets"])
    for phrase in ("pyfunc adds", "Gradio API adds", "decode /", "prefill", "bandwidth bound"):
        assert phrase in names
    assert all(t["measured"] is not None for t in summary["targets"])
    knobs = {t["knob"] for t in summary["tuning"]}
    assert {
        "onnx intra-op threads",
        "onnx spinning, models interleaved",
        "torch threads",
        "two models",
    } <= knobs


def test_each_int4_export_reports_its_speed_share_of_the_bound_and_distance_from_fp32(suite):
    summary, out = suite
    exports = [t for t in summary["tuning"] if t["knob"] == "int4 export"]
    assert len(exports) == 5
    for row in exports:
        assert row["tokens_per_s"] > 0 and row["bandwidth_bound_pct"] > 0
        assert row["kl_from_fp32"] > 0 and 0 < row["top1_agreement_from_fp32"] <= 1
    tiny = {t["setting"]: t for t in summary["tuning"] if t["knob"] == "int4 block size, tiny model"}
    assert set(tiny) == {"fp32 export", "block 32", "block 64", "block 128"}
    assert tiny["fp32 export"]["corpus_right"] > 0.95  # it has learned its corpus
    assert all(0 < t["corpus_right"] <= 1 for t in tiny.values())
    # Coarser blocks move further from fp32: the measure can tell them apart.
    assert tiny["block 128"]["kl_from_fp32"] > tiny["block 32"]["kl_from_fp32"]
    assert "of the bandwidth bound" in (out / "results.md").read_text()


def test_markdown_and_plot_show_the_json(suite):
    summary, out = suite
    table = (out / "results.md").read_text()
    for row in summary["rows"]:
        ttft = row["ttft_s"][str(PROMPTS[0])]
        assert f"| {row['path']} | {row['depth']} |" in table
        assert f"{ttft:.3f}" in table
    assert (out / "results.png").read_bytes().startswith(b"\x89PNG")


def test_shaped_model_decodes_every_id_and_keeps_special_tokens(tmp_path):
    import transformers

    shape = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 4}
    folder = build_shaped_model(1, tmp_path / "shaped", shape | {"vocab_size": 2048})
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    tiny = transformers.AutoTokenizer.from_pretrained(str(TINY_CHECKPOINT))
    assert len(tokenizer) == 2048
    assert tokenizer.convert_tokens_to_ids("<|end|>") == tiny.convert_tokens_to_ids("<|end|>")
    assert tokenizer.decode([2047]) == "w2047"
    assert Shape.of(folder).layers == 1
    export = onnx_export(folder, "int4", tmp_path / "cache")
    assert onnx_bytes_per_token(export / "model.onnx") > 0
