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
        rows += [
            ("warm start until both models are loaded", _s(served["ready_s"]), _g(served["rss_ready"]),
             "", "", served["oom_kills"]),
            (f"one `/compare`, both sides answering {_prompt(served['sides'])}", "", _g(served["peak_rss"]),
             "", "", served["oom_kills"]),
            (f"one `/compare` at the longest prompt, {_prompt(served['longest']['sides'])}", "",
             _g(served["longest"]["peak_rss"]), "", "", served["oom_kills"]),
        ]  # fmt: skip
    lines = [f"Run {inside}, with {limits}, {result['measured']}.", "",
             "| phase | wall time | peak RSS (process tree) | disk added at peak | disk added at the end "
             "| OOM kills |", "|---|---|---|---|---|---|"]  # fmt: skip
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    if "error" in served:
        failed = [f"> {step['line']}" for step in served["steps"] if "failed:" in step["line"]]
        lines += ["", "The warm start did not get both models:", "", *(failed or [served["error"]])]
    else:
        lines += ["", "| side | model | time to first token | decode tok/s | prompt / completion tokens |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for side, figures in served["sides"].items():
            model = f"`{figures['model']['name']}` v{figures['model']['version']}"
            tokens = f"{figures['prompt_tokens']} / {figures['completion_tokens']}"
            speed = f"{figures['tokens_per_s']:.2f}"
            lines.append(f"| {side} | {model} | {_s(figures['ttft_s'])} | {speed} | {tokens} |")
    lines += ["", "Steps of `--log-only` (from the app's start-up log):", ""]
    lines += [f"- {step['line']}: {step['took_s']} s" for step in logged["steps"] if step["took_s"]]
    lines += logged["refusals"] and ["", "Refused during `--log-only`:", ""] or []
    lines += [f"> {line.strip()}" for line in logged["refusals"][:2]]
    lines += ["", f"Refusal: `--log-only` inside a {result['refused_limit'] / GiB:.1f} GiB cgroup exited "
              f"with {refused['exit']} after {refused['seconds']:.0f} s, OOM kills {refused['oom_kills']}:",
              ""]  # fmt: skip
    lines += [f"> {line.strip()}" for line in refused["refusals"][:2]]
    return "\n".join(lines) + "\n"


def fit_table(fit: dict, parameters: int, export_bytes: int) -> str:
    """memory_fit.json as a table, with each step's estimate for the full-size model."""
    from wrappers.memory import HEADROOM, MARGIN

    lines = ["| step | measured (size → GiB) | per unit | base | at full size |", "|---|---|---|---|---|"]
    for step, line in fit["steps"].items():
        exported = line["unit"] == "export byte"
        size = export_bytes if exported else parameters
        fitted = line["per_unit"] * size + line["base"]
        estimate = fitted if step.startswith("export_bytes") else fitted * MARGIN + HEADROOM
        unit = "GB" if exported else "B"
        points = ", ".join(f"{x / 1e9:.2f} {unit} → {y / GiB:.2f}" for x, y in sorted(line["points"]))
        lines.append(f"| `{step}` | {points} | {line['per_unit']:.2f} B per {line['unit']} | "
                     f"{line['base'] / GiB:.2f} GiB | {_g(int(estimate))} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _prompt(sides: dict) -> str:
    figures = next(iter(sides.values()))
    return f"({figures['prompt_tokens']} + {figures['completion_tokens']} tokens)"


def _s(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds:.1f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"


def _g(n: int) -> str:
    return f"{n / GiB:.1f} GiB"
