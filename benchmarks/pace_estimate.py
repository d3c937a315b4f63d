"""The time budget's prefill estimate against real answers, at several prompt lengths.

On a Phi-3-shaped checkpoint (benchmarks/shaped_model.py), freshly loaded as the app
loads it: each side runs the app's warm-up (`startup.warm_up_answers`: a first request
that pays the one-off costs, then 64- and 256-token prompts), and its estimate is kept.
Then real answers at each prompt length, the sides alternating; for each, the median time
to the first token beside what the estimate expected, and beside what the warm-up before
December's change expected (one 64-token prompt, priced per token).

    .venv/bin/python -m benchmarks.pace_estimate [--layers 4] [--prompt-tokens 64 256 512 1024]

The real answers are not fed back into the estimate (a copy of each side's `Pace` is
taken after the warm-up), so every row is checked against the start-up estimate alone.
"""

from __future__ import annotations

import argparse
import os
import statistics

from benchmarks.pane_speed import prompt_messages, shaped_backends
from benchmarks.shaped_model import build_shaped_model
from wrappers import GenerationOptions, run
from wrappers.pace import Pace
from wrappers.startup import warm_up_answers


def estimates(backends) -> dict[str, dict]:
    """Each side's warm-up: the first request's time to first token, the estimate now and before."""
    found = {}
    for side, backend in backends.items():
        first, timed = warm_up_answers(backend)
        now, before = Pace(), Pace()
        now.calibrate(timed)
        before.observe(timed[0])  # the old warm-up: the short prompt alone, per token
        found[side] = {"first": first, "now": now.speed(), "before": before.speed(), "timed": timed}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--prompt-tokens", type=int, nargs="+", default=[64, 256, 512, 1024])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    checkpoint = build_shaped_model(args.layers)
    backends = shaped_backends(checkpoint)
    print(f"load average at the warm-up: {os.getloadavg()[0]:.1f}")
    found = estimates(backends)
    for side, f in found.items():
        short, long = f["timed"]
        print(f"{side}: first request {f['first'].latency.ttft_s:.2f} s to its first token "
              f"({f['first'].usage.prompt_tokens} tokens); warm-up {short.latency.ttft_s:.2f} s "
              f"({short.usage.prompt_tokens} tokens) and {long.latency.ttft_s:.2f} s "
              f"({long.usage.prompt_tokens}); "
              f"estimate {f['now'].describe()}; before: {f['before'].describe()}")  # fmt: skip
    ttft = {(side, n): [] for side in backends for n in args.prompt_tokens}
    loads = []
    for _ in range(args.repeats):
        for n in args.prompt_tokens:
            messages = prompt_messages(checkpoint, n)
            for side, backend in backends.items():
                ttft[(side, n)].append(run(backend, messages, GenerationOptions(max_tokens=2)).latency.ttft_s)
            loads.append(os.getloadavg()[0])
    print(f"\n{args.layers}-layer shaped model; time to first token, median of {args.repeats}; "
          f"load average {min(loads):.1f} to {max(loads):.1f}")  # fmt: skip
    print("| side | prompt tokens | measured | estimate (base + per token) | error | "
          "estimate before (per token, one 64-token prompt) | error |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for (side, n), times in ttft.items():
        real = statistics.median(times)
        now, before = found[side]["now"].seconds(n, 1), found[side]["before"].seconds(n, 1)
        print(f"| {side} | {n} | {real:.2f} s | {now:.2f} s | {now / real - 1:+.0%} "
              f"| {before:.2f} s | {before / real - 1:+.0%} |")  # fmt: skip


if __name__ == "__main__":
    main()
