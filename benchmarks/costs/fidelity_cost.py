"""What fidelity scoring costs, beside the comparison it follows.

Compares each prompt as the app does (both models interleaved), then scores it, and prints the
median time of each side's answer and of the scoring, per prompt. Scoring runs after both panes
are final, so it delays nothing shown; it only holds the models before the next request.

    .venv/bin/python -m benchmarks.costs.fidelity_cost [--repeats 3] [--max-tokens 64] [--onnx-precision int4]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from compare.comparison import compare_stream
from compare.fidelity import score
from wrappers import AppConfig, GenerationOptions, build_backends
from wrappers.config import ROOT

PROMPTS = [
    line.split(",")[0] for line in (ROOT / "examples" / "batch_prompts.csv").read_text().splitlines()[1:]
]


def measure(backends, options: GenerationOptions, repeats: int) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {
        "transformers": [],
        "onnx": [],
        "scoring": [],
        "wall": [],
        "tokens": [],
    }
    for _ in range(repeats):
        for prompt in PROMPTS:
            messages = [{"role": "user", "content": prompt}]
            started = time.perf_counter()
            *_, last = compare_stream(backends, {side: messages for side in backends}, options)
            figures["wall"].append(time.perf_counter() - started)
            scored = score(backends, last, options)
            for side in ("transformers", "onnx"):
                figures[side].append(last[side].latency.total_s)
            figures["scoring"].append(scored.fidelity.scoring_s)
            figures["tokens"].append(scored.fidelity.tokens)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--onnx-precision", choices=("int4", "fp32"), default="int4")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fidelity-cost-") as store:
        config = AppConfig(data_dir=Path(store), onnx_precision=args.onnx_precision)
        backends = build_backends(config, progress=lambda message: None)
        measure(backends, GenerationOptions(max_tokens=args.max_tokens), 1)  # warm up
        figures = measure(backends, GenerationOptions(max_tokens=args.max_tokens), args.repeats)
    median = {key: statistics.median(values) for key, values in figures.items()}
    print(f"{len(figures['wall'])} comparisons, median {median['tokens']:.0f} answer tokens scored")
    print("| median per prompt | transformers answer | ONNX answer | comparison (wall) | fidelity scoring |")
    print("|---|---|---|---|---|")
    print(
        f"| seconds | {median['transformers']:.4f} | {median['onnx']:.4f} | {median['wall']:.4f} | "
        f"{median['scoring']:.4f} ({median['scoring'] / median['wall']:.0%} of the comparison) |"
    )


if __name__ == "__main__":
    main()
