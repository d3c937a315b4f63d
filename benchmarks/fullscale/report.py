"""The full-size rehearsal's results and the memory fits, as the tables docs/fullscale.md quotes."""

from __future__ import annotations

GiB = 2**30


def markdown(result: dict) -> str:
    """The rehearsal's tables, as docs/fullscale.md quotes them."""
    logged, served, refused = result["log_only"], result["serve"], result["refused"]
    limit = result["memory_limit"]
    inside = f"inside a {limit / GiB:.0f} GiB memory cgroup" if limit else "without a memory limit"
    limits = ", ".join(f"{k}={v}" for k, v in (result.get("env") or {}).items()) or "the default limits"
    rows = [("`--log-only` (build int4, log (a), register, test-load both)", _s(logged["seconds"]),
             _g(logged["peak_rss"]), _g(logged["disk_peak_added"]), _g(logged["disk_added"]),
             logged["oom_kills"])]  # fmt: skip
    if "error" not in served:
        rows += _serve_rows(served)
    lines = [f"Run {inside}, with {limits}, {result['measured']}.", "",
             "| phase | wall time | peak RSS (process tree) | disk added at peak | disk added at the end "
             "| OOM kills |", "|---|---|---|---|---|---|"]  # fmt: skip
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    if "error" in served:
        failed = [f"> {step['line']}" for step in served["steps"] if "failed:" in step["line"]]
        lines += ["", "The warm start did not get both models:", "", *(failed or [served["error"]])]
    else:
        lines += _serve_tables(served)
    lines += ["", "Steps of `--log-only` (from the app's start-up log):", ""]
    lines += [f"- {step['line']}: {step['took_s']} s" for step in logged["steps"] if step["took_s"]]
    lines += logged["refusals"] and ["", "Refused during `--log-only`:", ""] or []
    lines += [f"> {line.strip()}" for line in logged["refusals"][:2]]
    lines += ["", f"Refusal: `--log-only` inside a {result['refused_limit'] / GiB:.1f} GiB cgroup exited "
              f"with {refused['exit']} after {refused['seconds']:.0f} s, OOM kills {refused['oom_kills']}:",
              ""]  # fmt: skip
    lines += [f"> {line.strip()}" for line in refused["refusals"][:2]]
    return "\n".join(lines) + "\n"


def _serve_rows(served: dict) -> list[tuple]:
    """The warm start's rows of the phase table: each request's peak memory."""
    rows = [("warm start until both models are loaded", _s(served["ready_s"]), _g(served["rss_ready"]),
             "", "", served["oom_kills"])]  # fmt: skip
    answered = (served.get("longest") or {}).get("answered")
    asked = {"compare": "one `/compare`, both sides answering the short prompt",
             "longest": f"the longest prompt answered ({answered['prompt_tokens']} + "
                        f"{answered['new_tokens']} tokens), both sides" if answered else "the longest prompt",
             "speed": "each side alone at each prompt length"}  # fmt: skip
    for step, what in asked.items():
        if f"{step}_peak_rss" in served:
            rows.append((what, "", _g(served[f"{step}_peak_rss"]), "", "", served["oom_kills"]))
    if served.get("cgroup_peak"):
        rows.append(("the whole warm start: the cgroup's high-water mark (page cache included)", "",
                     _g(served["cgroup_peak"]), "", "", served["oom_kills"]))  # fmt: skip
    return rows


def _serve_tables(served: dict) -> list[str]:
    """The limits the app ran with, then each request's figures per side."""
    lines = ["", served["limits"]["lowered"] or f"Limits: prompts up to {served['limits']['prompt']} tokens, "
             f"answers up to {served['limits']['new']} (not lowered).", ""]  # fmt: skip
    lines += [
        "| request | side | pane: first token | pane: last token | own time to first token "
        "| decode tok/s | prompt / completion tokens | error |",
        "|---|---|---|---|---|---|---|---|",
    ]
    longest = served.get("longest") or {}
    requests = [("short prompt", served.get("compare") or {})]
    requests += [(f"{t['prompt_tokens']} tokens", t) for t in longest.get("tries", [])]
    requests += [("the longest prompt", longest)] if "error" in longest else []
    for name, figures in requests:
        if "refused" in figures or "error" in figures:
            why = figures.get("refused") or figures["error"]
            lines.append(f"| {name} | both | refused: {why} | | | | | |")
            continue
        lines += [
            f"| {name} | {side} | " + _side_cells(figures.get(side) or {})
            for side in ("transformers", "onnx")
        ]
    rows = served.get("speed") if isinstance(served.get("speed"), list) else []
    if rows:
        lines += ["", "| side, alone | prompt tokens | time to first token | decode tok/s | refused |",
                  "|---|---|---|---|---|"]  # fmt: skip
        lines += [f"| {r['side']} | {r['prompt_tokens']} | {_s(r.get('ttft_s'))} | "
                  f"{_rate(r.get('tokens_per_s'))} | {r.get('refused') or r.get('error') or ''} |"
                  for r in rows]  # fmt: skip
    load = served.get("load") or {}
    lines += ["", "Load average (1, 5, 15 min) at each request: " + "; ".join(
        f"{step} {', '.join(f'{x:.1f}' for x in figures)}" for step, figures in load.items())]  # fmt: skip
    return lines


def fit_table(fit: dict, parameters: int, export_bytes: int) -> str:
    """memory_fit.json as a table, with each step's estimate for the full-size model."""
    from wrappers.memory import HEADROOM, MARGIN, SERVE_HEADROOM, serve_margin

    lines = ["| step | measured (size → GiB) | per unit | base | at full size |", "|---|---|---|---|---|"]
    for step, line in fit["steps"].items():
        exported = line["unit"] == "export byte"
        size = export_bytes if exported else parameters
        fitted = line["per_unit"] * size + line["base"]
        estimate = fitted if step.startswith("export_bytes") else fitted * MARGIN + HEADROOM
        if step.startswith("serve_"):  # at the fit's own tokens, with the full-size margin
            estimate = fitted * serve_margin() + SERVE_HEADROOM
        unit = "GB" if exported else "B"
        points = ", ".join(f"{x / 1e9:.2f} {unit} → {y / GiB:.2f}" for x, y in sorted(line["points"]))
        lines.append(f"| `{step}` | {points} | {line['per_unit']:.2f} B per {line['unit']} | "
                     f"{line['base'] / GiB:.2f} GiB | {_g(int(estimate))} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _s(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds:.1f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"


def _side_cells(f: dict) -> str:
    tokens = f"{f.get('prompt_tokens')} / {f.get('completion_tokens')}"
    return (f"{_s(f.get('pane_first_s'))} | {_s(f.get('pane_last_s'))} | {_s(f.get('ttft_s'))} | "
            f"{_rate(f.get('tokens_per_s'))} | {tokens} | {f.get('error') or ''} |")  # fmt: skip


def _rate(tokens_per_s: float | None) -> str:
    return "–" if tokens_per_s is None else f"{tokens_per_s:.2f}"


def _g(n: int) -> str:
    return f"{n / GiB:.1f} GiB"


def speed_table(rows: list[dict], shape, export_bytes_per_token: int, machine: dict) -> str:
    """Each side's time to first token and decode speed at full size, against the machine's bounds.

    Prefill: the least FLOPs of the prompt (`model_cost.Shape.prefill_flops`) at the measured
    matrix-multiply peak of the precision the side computes in (bf16 for transformers, int8 for
    the int4 export at accuracy level 4). Decode: the weights one token reads, plus the KV cache
    of its context, at the measured read bandwidth.
    """
    from benchmarks.suite.model_cost import fp32_bytes_per_token

    weights = {"transformers": fp32_bytes_per_token(shape) // 2, "onnx": export_bytes_per_token}
    kv_per_token = 2 * shape.layers * shape.kv_heads * (shape.hidden // shape.heads)
    kv_itemsize = {"transformers": 2, "onnx": 4}  # bfloat16 cache; the CPU export's float32 cache
    peak = {"transformers": ("bf16", machine["peaks"]["bf16"]), "onnx": ("int8", machine["peaks"]["int8"])}
    bandwidth = machine["bandwidth_gbs"] * 1e9
    lines = [
        "| side | prompt tokens | time to first token | prefill bound (precision, peak) | % of bound "
        "| decode tok/s | decode bound tok/s (bytes per token) | % of bound |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        side, tokens = row["side"], row["prompt_tokens"]
        precision, ops = peak[side]
        floor_s = shape.prefill_flops(tokens) / ops
        context = tokens + row["completion_tokens"] // 2
        per_token = weights[side] + kv_per_token * kv_itemsize[side] * context
        bound = bandwidth / per_token
        lines.append(
            f"| {side} | {tokens} | {_s(row['ttft_s'])} | {_s(floor_s)} ({precision}, {ops / 1e12:.2f} T/s) "
            f"| {100 * floor_s / row['ttft_s']:.0f} % | {row['tokens_per_s']:.2f} | {bound:.2f} "
            f"({per_token / 1e9:.2f} GB) | {100 * row['tokens_per_s'] / bound:.0f} % |"
        )
    return "\n".join(lines) + "\n"
