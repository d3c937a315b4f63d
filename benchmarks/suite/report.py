"""Turn the suite's measurements into medians, limits and targets; write JSON, Markdown and a plot.

Everything printed comes from the JSON summary, so the three outputs agree.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict
from pathlib import Path

from benchmarks.exports import onnx_export
from benchmarks.suite.model_cost import Shape, fp32_bytes_per_token, onnx_bytes_per_token

REAL_LAYERS = 32  # Phi-3-mini


def summarize(machine, checkpoint: Path, settings, measured, extra: dict) -> dict:
    shape = Shape.of(checkpoint)
    weight_bytes = {"transformers fp32": fp32_bytes_per_token(shape)}
    for precision in ("int4", "fp32"):
        export = onnx_export(checkpoint, precision, settings.cache)
        weight_bytes[f"onnx {precision}"] = onnx_bytes_per_token(export / "model.onnx")
    noop = next((m for m in measured if m.path == "no-op endpoint"), None)
    noop_s = _median([r.total_s for r in noop.all_runs]) if noop else None
    rows = [_row(m, settings, shape, machine, weight_bytes) for m in measured if m is not noop]
    by_depth = {(m.path, m.depth): m for m in measured}
    overheads = {
        path: pyfunc_overhead(by_depth[(path, "engine")], by_depth[(path, "pyfunc")], settings.new_tokens[0])
        for path in ("transformers fp32", "onnx int4")
        if (path, "engine") in by_depth and (path, "pyfunc") in by_depth
    }
    summary = {
        "machine": asdict(machine),
        "model": {
            "checkpoint": checkpoint.name,
            "shape": asdict(shape),
            "weight_bytes_per_token": weight_bytes,
        },
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()},
        "rows": rows,
        "noop_beyond_wait_s": noop_s,
        "pyfunc_overhead": overheads,
        "extrapolation": extrapolate(extra["fit"]) if extra.get("fit") else None,
        "tuning": extra.get("tuning") or [],
        "startup": extra.get("startup"),
    }
    summary["targets"] = targets(summary, settings)
    return summary


def _row(m, settings, shape: Shape, machine, weight_bytes: dict) -> dict:
    short = settings.new_tokens[0]
    first = settings.prompt_tokens[0]
    ttft = {p: _median([r.ttft_s for r in m.runs.get((p, short), [])]) for p in settings.prompt_tokens}
    total = {p: _median([r.total_s for r in m.runs.get((p, short), [])]) for p in settings.prompt_tokens}
    speed = {n: _median([r.tokens_per_s for r in m.runs.get((first, n), [])]) for n in settings.new_tokens}
    all_runs, engine_side = m.all_runs, m.depth != "gradio"
    peak_flops = machine.matmul_peak_gflops * 1e9
    row = {
        "path": m.path,
        "depth": m.depth,
        "load_s": m.load_s,
        "peak_rss_mb": m.peak_rss_mb,
        "ttft_s": ttft,
        "total_s": total,
        "tokens_per_s": speed,
        # Gradio rows are timed at the client (queue, batching of the first updates): no engine limit.
        "bandwidth_bound_pct": {
            n: _median(
                bandwidth_share(weight_bytes[m.path], r, machine.memory_bandwidth_gbs)
                for r in m.runs.get((first, n), [])
            )
            if engine_side
            else None
            for n in settings.new_tokens
        },
        "prefill_peak_pct": {
            p: 100 * shape.prefill_flops(p) / peak_flops / t if t and engine_side else None
            for p, t in ttft.items()
        },
        "samples": {f"{p}+{n}": [asdict(r) for r in runs] for (p, n), runs in m.runs.items()},
        "new_tokens_seen": sorted({r.new_tokens for r in all_runs}),
        "prompt_tokens_seen": sorted({r.prompt_tokens for r in all_runs}),
    }
    if m.depth == "gradio":
        # The app's time beyond its model's, beyond a no-op streaming as many updates just after.
        row["api_overhead_over_noop_s"] = _median(r.total_s - r.server_s - r.noop_s for r in all_runs)
        row["api_overhead_s"] = _median(r.total_s - r.server_s for r in all_runs)
    return row


def bandwidth_share(weight_bytes: int, run, fallback_gbs: float) -> float | None:
    """Percent of the bandwidth bound one run's decode reached, against the probe taken just before it.

    >>> from benchmarks.engines import Run
    >>> bandwidth_share(10**9, Run(1, 11, 1.0, 2.0, bandwidth_gbs=20.0), 50.0)  # 10 tok/s x 1 GB
    50.0
    """
    speed = run.tokens_per_s
    return 100 * weight_bytes * speed / ((run.bandwidth_gbs or fallback_gbs) * 1e9) if speed else None


def pyfunc_overhead(engine, pyfunc, new_tokens: int) -> float | None:
    """Median over paired runs (same case, same repeat) of pyfunc time / engine time - 1.

    Pairs are measured moments apart, so a slow spell of the machine hits both.
    """
    ratios = [
        b.total_s / a.total_s - 1
        for case, runs in engine.runs.items()
        if case[1] == new_tokens
        for a, b in zip(runs, pyfunc.runs.get(case, []), strict=False)
    ]
    return _median(ratios)


def extrapolate(fit: dict) -> dict:
    """Per-layer cost from two depths of the shaped model, stretched linearly to 32 layers.

    >>> extrapolate({"x": {1: [{"ttft_s": 1.0, "total_s": 2.0, "new_tokens": 11}],
    ...                    2: [{"ttft_s": 1.5, "total_s": 3.5, "new_tokens": 11}]}})["x"]["ttft_s"]
    16.5
    """
    out = {}
    for path, by_layers in fit.items():
        (l1, runs1), (l2, runs2) = sorted((int(k), v) for k, v in by_layers.items())
        ttft = [_median([r["ttft_s"] for r in runs]) for runs in (runs1, runs2)]
        step = [
            _median([(r["total_s"] - r["ttft_s"]) / (r["new_tokens"] - 1) for r in runs])
            for runs in (runs1, runs2)
        ]
        out[path] = {
            "layers_measured": [l1, l2],
            "ttft_s": _linear(ttft, l1, l2, REAL_LAYERS),
            "tokens_per_s": 1 / _linear(step, l1, l2, REAL_LAYERS),
            "measured_tokens_per_s": [1 / s for s in step],
            "measured_ttft_s": ttft,
        }
    return out


def _linear(values: list[float], l1: int, l2: int, at: int) -> float:
    per_layer = (values[1] - values[0]) / (l2 - l1)
    return values[0] + per_layer * (at - l1)


def targets(summary: dict, settings) -> list[dict]:
    """Each target of the issue with its measured value and whether it is met."""
    rows = {(r["path"], r["depth"]): r for r in summary["rows"]}
    mid = settings.prompt_tokens[min(1, len(settings.prompt_tokens) - 1)]
    short = settings.new_tokens[0]
    found = []

    def add(name: str, value: float | None, limit: float, at_most: bool, unit: str) -> None:
        met = None if value is None else (value <= limit if at_most else value >= limit)
        found.append(
            {"target": name, "measured": value, "limit": limit, "at_most": at_most, "unit": unit, "met": met}
        )

    for path in ("transformers fp32", "onnx int4"):
        api, overhead = rows.get((path, "gradio")), summary["pyfunc_overhead"].get(path)
        if overhead is not None:
            name = f"{path}: pyfunc adds to the engine's {short}-token time (median of paired runs)"
            add(name, 100 * overhead, 2.0, True, "%")
        if api and "api_overhead_over_noop_s" in api:
            add(
                f"{path}: Gradio API adds to a no-op streaming as many updates at its pace",
                1000 * api["api_overhead_over_noop_s"],
                20.0,
                True,
                "ms",
            )
    t, o = rows.get(("transformers fp32", "engine")), rows.get(("onnx int4", "engine"))
    if t and o:
        add(
            "onnx int4 decode / transformers fp32 decode",
            _ratio(o["tokens_per_s"][short], t["tokens_per_s"][short]),
            2.5,
            False,
            "x",
        )
        add(
            f"onnx int4 prefill ({mid} tokens) / transformers fp32 prefill",
            _ratio(o["ttft_s"][mid], t["ttft_s"][mid]),
            1.0,
            True,
            "x",
        )
        add(
            "onnx int4 decode, share of the memory-bandwidth bound",
            o["bandwidth_bound_pct"][short],
            60.0,
            False,
            "%",
        )
    if summary.get("startup"):
        add("warm start to first answer (tiny model)", summary["startup"]["warm_s"], 10.0, True, "s")
        add("cold start to first answer (tiny model)", summary["startup"]["cold_s"], 60.0, True, "s")
    return found


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def write_outputs(summary: dict, out: Path) -> list[Path]:
    from benchmarks.suite.tables import markdown, plot

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.json", out / "results.md", out / "results.png"]
    text = json.dumps(summary, indent=2)
    summary = json.loads(text)  # the Markdown and the plot read exactly what the JSON holds
    paths[0].write_text(text)
    paths[1].write_text(markdown(summary))
    plot(summary, paths[2])
    return paths
