"""The suite's Markdown report and its plot, both drawn from the JSON summary (string keys)."""

from __future__ import annotations

from pathlib import Path


def _fmt(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(row) + " |" for row in rows
    ]


def markdown(s: dict) -> str:
    m = s["machine"]
    prompts = list(s["rows"][0]["ttft_s"]) if s["rows"] else []
    news = list(s["rows"][0]["tokens_per_s"]) if s["rows"] else []
    lines = [
        f"Model: `{s['model']['checkpoint']}` ({s['model']['shape']['layers']} layers, hidden "
        f"{s['model']['shape']['hidden']}, MLP {s['model']['shape']['intermediate']}, vocab "
        f"{s['model']['shape']['vocab']}). Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM; "
        f"measured read bandwidth {m['memory_bandwidth_gbs']:.1f} GB/s (median of "
        f"{len(m['bandwidth_probes_gbs'])} probes, {min(m['bandwidth_probes_gbs']):.0f} to "
        f"{max(m['bandwidth_probes_gbs']):.0f}, one before every timed run), fp32 GEMM peak "
        f"{m['matmul_peak_gflops']:.0f} GFLOP/s. Medians of {s['settings']['repeats']} repeats "
        "after a warm-up.",
        "",
    ]
    header = ["path", "depth", "load s", "peak RSS MB", *(f"TTFT {p} s" for p in prompts)]
    header += [*(f"tok/s {n}" for n in news), "% of bandwidth bound", "prefill % of GEMM peak"]
    lines += _table(header, [_main_row(r, prompts, news) for r in s["rows"]])
    lines += [
        "",
        f"Bandwidth bound at {news[0] if news else ''} new tokens, each run against the probe taken "
        "just before it (median of the runs' shares); GEMM peak at "
        f"{prompts[min(1, len(prompts) - 1)] if prompts else ''} prompt tokens. Gradio rows: load is the "
        "app's warm start to its first answer, memory is the whole app process (both models), times are "
        "at the client (so no share of the engine's limits).",
        "",
    ]
    lines += _targets(s) + _extrapolation(s) + tuning_table(s)
    return "\n".join(lines) + "\n"


def _main_row(r: dict, prompts: list, news: list) -> list[str]:
    bw = r["bandwidth_bound_pct"][news[0]]
    peak = r["prefill_peak_pct"][prompts[min(1, len(prompts) - 1)]]
    return [
        r["path"], r["depth"], _fmt(r["load_s"], 1), _fmt(r["peak_rss_mb"], 0),
        *(_fmt(r["ttft_s"][p], 3) for p in prompts), *(_fmt(r["tokens_per_s"][n], 1) for n in news),
        _fmt(bw, 0), _fmt(peak, 0),
    ]  # fmt: skip


def _targets(s: dict) -> list[str]:
    rows = [
        [
            t["target"],
            f"{_fmt(t['measured'])} {t['unit']}",
            f"{'≤' if t['at_most'] else '≥'} {t['limit']} {t['unit']}",
            {True: "yes", False: "**no**", None: "–"}[t["met"]],
        ]
        for t in s["targets"]
    ]
    lines = ["### Targets", "", *_table(["target", "measured", "limit", "met"], rows)]
    if s.get("noop_beyond_wait_s") is not None:
        beyond = "; ".join(
            f"{r['path']} {1000 * r['api_overhead_s']:.1f} ms" for r in s["rows"] if "api_overhead_s" in r
        )
        lines += [
            "",
            "The no-op endpoint streams as many updates as the app did, spread over as long as the app's "
            "model worked, and reports its waiting as the app reports its model's work. Median time "
            f"beyond that: no-op {1000 * s['noop_beyond_wait_s']:.1f} ms; the app, beyond its model's "
            f"time: {beyond}.",
        ]
    return lines + [""]


def _extrapolation(s: dict) -> list[str]:
    if not s.get("extrapolation"):
        return []
    lines = [
        "### Extrapolation to the 32 layers of Phi-3-mini",
        "",
        "**An extrapolation, not a measurement**: the raw engines were timed at two depths of the shaped "
        "model and the per-layer cost extended linearly to 32 layers (memory, caches and the OS may not "
        "scale linearly, and a 32-layer fp32 model would need 15 GB).",
        "",
    ]
    header = ["path", "layers measured", "tok/s measured", "TTFT s measured", "tok/s at 32 layers"]
    rows = [
        [
            path,
            ", ".join(map(str, e["layers_measured"])),
            ", ".join(_fmt(v, 1) for v in e["measured_tokens_per_s"]),
            ", ".join(_fmt(v, 3) for v in e["measured_ttft_s"]),
            _fmt(e["tokens_per_s"], 1),
            _fmt(e["ttft_s"], 2),
        ]
        for path, e in s["extrapolation"].items()
    ]
    lines += _table([*header, "TTFT s at 32 layers"], rows)
    return lines + [""]


def tuning_table(s: dict) -> list[str]:
    if not s.get("tuning"):
        return []
    rows = [[t["knob"], t["setting"], _tuning_result(t)] for t in s["tuning"]]
    lines = ["### Tuning (raw engines; the two-model rows through the pyfuncs)", ""]
    lines += _table(["knob", "setting", "result"], rows)
    return lines + [""]


def _tuning_result(t: dict) -> str:
    if "corpus_right" in t:
        return f"corpus answers right {100 * t['corpus_right']:.1f} %" + _distance(t)
    if "ttft_s" in t:
        text = f"TTFT {_fmt(t['ttft_s'], 3)} s, {_fmt(t['tokens_per_s'], 1)} tok/s"
        if "bandwidth_bound_pct" in t:
            text += f" ({_fmt(t['bandwidth_bound_pct'], 0)} % of the bandwidth bound)"
        return text + _distance(t)
    speeds = ", ".join(
        f"{k.removesuffix('_tokens_per_s')} {_fmt(v, 1)} tok/s"
        for k, v in t.items()
        if k.endswith("_tokens_per_s")
    )
    both = f"both answers in {_fmt(t['wall_s'])} s; " if "wall_s" in t else "decode: "
    return both + speeds


def _distance(t: dict) -> str:
    if "kl_from_fp32" not in t:
        return ""
    return (
        f"; from the fp32 export: KL {t['kl_from_fp32']:.4f}, "
        f"same top token {100 * t['top1_agreement_from_fp32']:.1f} %"
    )


def plot(s: dict, path: Path) -> None:
    """Two bar charts per path and depth: decode tokens/s, and time to first token."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = s["rows"]
    labels = [f"{r['path']}\n{r['depth']}" for r in rows]
    news, prompts = list(rows[0]["tokens_per_s"]), list(rows[0]["ttft_s"])
    fig, (speed, ttft) = plt.subplots(1, 2, figsize=(13, 5))
    width = 0.8 / max(len(news), len(prompts))
    _bars(speed, rows, "tokens_per_s", {n: f"{n} new tokens" for n in news}, width)
    _bars(ttft, rows, "ttft_s", {p: f"{p}-token prompt" for p in prompts}, width)
    for axis, title in (
        (speed, "decode tokens/s (higher is better)"),
        (ttft, "time to first token, s (lower is better)"),
    ):
        axis.set_xticks(range(len(rows)), labels, fontsize=7, rotation=30, ha="right")
        axis.set_title(title)
        axis.legend(fontsize=8)
    fig.suptitle(f"{s['model']['checkpoint']} on {s['machine']['cpu']}, {s['machine']['cores']} cores")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _bars(axis, rows: list[dict], field: str, labels: dict[str, str], width: float) -> None:
    """One group of bars per row: `row[field][key]` for each key of `labels`, side by side."""
    for i, (key, label) in enumerate(labels.items()):
        heights = [r[field][key] or 0 for r in rows]
        axis.bar([x + i * width for x in range(len(rows))], heights, width, label=label)
