"""The tuning knobs, each measured on the raw engine; and the app's start-up times.

Knobs: onnxruntime-genai intra-op threads and thread spinning, the int4
export (block size, accuracy level, LM head pruning), torch threads, torch
inference_mode, and whether the two models run interleaved token by token (as
the app does) or one after the other. Each variant runs the suite's middle
prompt with its shortest answer.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from benchmarks import served
from benchmarks.engines import OnnxEngine, TransformersEngine
from benchmarks.exports import onnx_export
from benchmarks.machine import quick_probe
from benchmarks.suite.int4_quality import corpus_accuracy, random_sequences, teacher_forced_kl, tiny_chat_ids
from benchmarks.suite.model_cost import Shape, onnx_bytes_per_token
from benchmarks.suite.report import bandwidth_share
from compare.comparison import compare_stream
from wrappers import AppConfig, GenerationOptions, build_backends, run
from wrappers.config import TINY_CHECKPOINT
from wrappers.onnx_backend import EXPORT_OPTIONS, builder_options

PRUNED = "LM head on the last prompt token"
INT4_VARIANTS = {  # setting -> the builder's options; accuracy level 4 computes in int8, 1 in fp32
    f"block 32, accuracy level 4, {PRUNED} (the app's default)": builder_options("int4"),
    f"block 64, accuracy level 4, {PRUNED}": builder_options("int4", 64),
    f"block 128, accuracy level 4, {PRUNED}": builder_options("int4", 128),
    f"block 32, accuracy level 1, {PRUNED}": EXPORT_OPTIONS + ["block_size=32", "accuracy_level=1"],
    "block 32, accuracy level 4, LM head on every prompt token": ["block_size=32", "accuracy_level=4"],
}
BLOCK_SIZES = (32, 64, 128)  # compared for what they give up, on the tiny model too


def session_overlay(**options) -> dict:
    return {"model": {"decoder": {"session_options": options}}}


def measure_tuning(checkpoint: Path, store: Path, prompts, settings, progress) -> list[dict]:
    """One row per knob setting: median time to first token and decode speed."""
    prompt = prompts[settings.prompt_tokens[min(1, len(settings.prompt_tokens) - 1)]]
    new = settings.new_tokens[0]
    cores = os.cpu_count() or 1
    rows = []

    def measure(knob: str, setting: str, generate) -> None:
        runs = [generate() for _ in range(1 + settings.repeats)][1:]
        rows.append(_row(knob, setting, runs))
        progress(f"tuning: {knob} = {setting}: {rows[-1]}")

    int4 = onnx_export(checkpoint, "int4", settings.cache)
    for threads in sorted({1, cores}):
        engine = OnnxEngine(int4, session_overlay(intra_op_num_threads=threads))
        measure("onnx intra-op threads", str(threads), lambda e=engine: e.generate(prompt, new))
    for spinning in ("1", "0"):
        engine = OnnxEngine(int4, session_overlay(**{"session.intra_op.allow_spinning": spinning}))
        measure(
            "onnx thread spinning",
            "on" if spinning == "1" else "off",
            lambda e=engine: e.generate(prompt, new),
        )
    rows += _int4_rows(checkpoint, prompt, new, settings)
    rows += _tiny_block_size_rows(settings.cache)
    torch_engine = _measure_torch(checkpoint, prompt, new, cores, measure)
    rows += _spinning_rows(torch_engine, int4, prompt, new, settings.repeats)
    del torch_engine
    rows += _interleaving_rows(checkpoint, store, prompt, new, settings.repeats)
    return rows


def _int4_rows(checkpoint: Path, prompt, new: int, settings) -> list[dict]:
    """Each int4 export: speed, share of the bandwidth bound (probed before each run), distance from fp32."""
    fp32 = onnx_export(checkpoint, "fp32", settings.cache)
    sequences = random_sequences(Shape.of(checkpoint).vocab)
    rows = []
    for setting, options in INT4_VARIANTS.items():
        folder = onnx_export(checkpoint, "int4", settings.cache, options)
        engine, weight_bytes, runs = OnnxEngine(folder), onnx_bytes_per_token(folder / "model.onnx"), []
        for _ in range(1 + settings.repeats):
            bandwidth = quick_probe(settings.probe_mb)
            runs.append(replace(engine.generate(prompt, new), bandwidth_gbs=bandwidth))
        del engine
        row = _row("int4 export", setting, runs[1:])
        row["bandwidth_bound_pct"] = statistics.median(bandwidth_share(weight_bytes, r, 0) for r in runs[1:])
        row |= {f"{k}_from_fp32": v for k, v in teacher_forced_kl(fp32, folder, sequences).items()}
        rows.append(row)
    return rows


def _tiny_block_size_rows(cache: Path) -> list[dict]:
    """What each block size gives up on a model that has learned something: the tiny one's corpus."""
    knob, fp32 = "int4 block size, tiny model", onnx_export(TINY_CHECKPOINT, "fp32", cache)
    sequences = [ids[:160] for ids in tiny_chat_ids()]
    rows = [{"knob": knob, "setting": "fp32 export", "corpus_right": corpus_accuracy(fp32)}]
    for size in BLOCK_SIZES:
        folder = onnx_export(TINY_CHECKPOINT, "int4", cache, builder_options("int4", size))
        row = {"knob": knob, "setting": f"block {size}", "corpus_right": corpus_accuracy(folder)}
        row |= {f"{k}_from_fp32": v for k, v in teacher_forced_kl(fp32, folder, sequences).items()}
        rows.append(row)
    return rows


def _measure_torch(checkpoint, prompt, new, cores, measure) -> TransformersEngine:
    import torch

    engine, default = TransformersEngine(checkpoint), torch.get_num_threads()
    for threads in sorted({1, cores}):
        torch.set_num_threads(threads)
        measure("torch threads", str(threads), lambda: engine.generate(prompt, new))
    torch.set_num_threads(default)
    for inference in (False, True):
        name = "inference_mode" if inference else "no_grad"
        measure("torch grad mode", name, lambda i=inference: engine.generate(prompt, new, inference_mode=i))
    return engine


def _spinning_rows(torch_engine, int4: Path, prompt, new: int, repeats: int) -> list[dict]:
    """Both raw engines stepped in turn, token by token as the app does, with ONNX spinning on or off."""
    rows = []
    for spinning in ("1", "0"):
        onnx_engine = OnnxEngine(int4, session_overlay(**{"session.intra_op.allow_spinning": spinning}))
        runs = range(1 + repeats)
        speeds = [interleaved_decode(torch_engine, onnx_engine, prompt.ids, new) for _ in runs][1:]
        row = {"knob": "onnx spinning, models interleaved", "setting": "on" if spinning == "1" else "off"}
        for side in ("transformers", "onnx"):
            row[f"{side}_tokens_per_s"] = statistics.median(s[side] for s in speeds)
        rows.append(row)
    return rows


def interleaved_decode(torch_engine, onnx_engine, ids: list[int], new: int) -> dict[str, float]:
    """Decode tokens/s of each engine when one ONNX step and one torch step alternate."""
    import onnxruntime_genai as og
    import torch

    params = og.GeneratorParams(onnx_engine.model)
    params.set_search_options(max_length=len(ids) + new + 1, do_sample=False)
    generator = og.Generator(onnx_engine.model, params)
    generator.append_tokens(ids)
    generator.generate_next_token()  # the prefill, left out of the decode time
    model, spent = torch_engine.pipeline.model, {"transformers": 0.0, "onnx": 0.0}
    with torch.inference_mode():
        out = model(torch.tensor([ids]), use_cache=True)
        for _ in range(new):
            started = time.perf_counter()
            generator.generate_next_token()
            generator.get_next_tokens()
            middle = time.perf_counter()
            token = out.logits[:, -1:].argmax(-1)
            out = model(token, past_key_values=out.past_key_values, use_cache=True)
            spent["onnx"] += middle - started
            spent["transformers"] += time.perf_counter() - middle
    return {side: new / seconds for side, seconds in spent.items()}


def _interleaving_rows(checkpoint, store, prompt, new, repeats) -> list[dict]:
    """Wall time for both answers, interleaved token by token vs one after the other."""
    config = AppConfig(checkpoint=checkpoint, model_prefix=checkpoint.name, data_dir=store)
    backends = build_backends(config, progress=lambda message: None)
    options = GenerationOptions(max_tokens=new)
    conversations = {side: prompt.messages for side in backends}
    walls = {"interleaved": [], "one after the other": []}
    for repeat in range(1 + repeats):
        started = time.perf_counter()
        *_, last = compare_stream(backends, conversations, options)
        interleaved = time.perf_counter() - started
        started = time.perf_counter()
        alone = {side: run(backend, prompt.messages, options) for side, backend in backends.items()}
        sequential = time.perf_counter() - started
        for result in (*last.values(), *alone.values()):
            if result.latency.tokens_per_s is None:
                raise RuntimeError(f"no decode speed: {result.error or result.latency} ({result.usage})")
        if repeat > 0:
            walls["interleaved"].append((interleaved, last))
            walls["one after the other"].append((sequential, alone))
    rows = []
    for mode, samples in walls.items():
        row = {"knob": "two models", "setting": mode, "wall_s": statistics.median(w for w, _ in samples)}
        for side in backends:
            row[f"{side}_tokens_per_s"] = statistics.median(r[side].latency.tokens_per_s for _, r in samples)
        rows.append(row)
    return rows


def _row(knob: str, setting: str, runs) -> dict:
    return {
        "knob": knob,
        "setting": setting,
        "ttft_s": statistics.median(r.ttft_s for r in runs),
        "tokens_per_s": statistics.median(r.tokens_per_s for r in runs),
    }


def measure_startup(logs: Path) -> dict:
    """Seconds from launching app.py on the tiny model to its first answer: fresh store, then again."""
    times = {}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as data_dir:
        for start in ("cold", "warm"):
            app_log = logs / f"{start}-start.log"
            with served.serve(served.app_args(TINY_CHECKPOINT), app_log, Path(data_dir)) as app:
                times[f"{start}_s"] = served.first_answer(app)
    return times
