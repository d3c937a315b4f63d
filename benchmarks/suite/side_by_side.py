"""Does running beside the other model change a model's own figures?

Runs each wrapper alone, then both interleaved as the app runs them, on the
same prompts, and prints the median time to first token, total time and
decode speed of each. The app's claim holds if the columns match within noise.

    .venv/bin/python -m benchmarks.suite.side_by_side [--repeats 5] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from compare.comparison import compare_stream
from wrappers import AppConfig, GenerationOptions, build_backends, run

PROMPTS = ["What is the capital of Spain?", "Tell me a joke about atom", "What is 7 plus 5?"]


def measure(backends, options, repeats):
    alone = {side: [] for side in backends}
    beside = {side: [] for side in backends}
    for _ in range(repeats):
        for prompt in PROMPTS:
            messages = [{"role": "user", "content": prompt}]
            for side, backend in backends.items():
                alone[side].append(run(backend, messages, options).latency)
            *_, last = compare_stream(backends, {side: messages for side in backends}, options)
            for side in backends:
                beside[side].append(last[side].latency)
    return alone, beside


def median(latencies, field):
    values = [getattr(x, field) for x in latencies if getattr(x, field) is not None]
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.mkdtemp(prefix="bench-store-")))
    args = parser.parse_args()
    backends = build_backends(AppConfig(data_dir=args.data_dir), progress=lambda m: None)
    options = GenerationOptions(max_tokens=args.max_tokens)
    for backend in backends.values():  # load and warm up
        run(backend, [{"role": "user", "content": "Hello"}], options)
    alone, beside = measure(backends, options, args.repeats)
    print(f"medians over {args.repeats} x {len(PROMPTS)} prompts, max {args.max_tokens} new tokens")
    print(f"{'side':<14}{'mode':<8}{'ttft s':>10}{'total s':>10}{'tok/s':>10}")
    for side in backends:
        for mode, data in (("alone", alone[side]), ("beside", beside[side])):
            print(
                f"{side:<14}{mode:<8}{median(data, 'ttft_s'):>10.4f}{median(data, 'total_s'):>10.4f}"
                f"{median(data, 'tokens_per_s'):>10.1f}"
            )


if __name__ == "__main__":
    main()
