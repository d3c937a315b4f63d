"""How much does recording every request as an MLflow trace slow a comparison?

Alternates blocks of comparisons with and without the recorder on the same
prompts and prints the median wall time of each, and the ratio. The target is
at most 5%.

    .venv/bin/python -m benchmarks.costs.tracing_overhead [--rounds 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from compare.recorder import Recorder
from compare.service import Comparer
from ui.api import SIDES
from wrappers import AppConfig, GenerationOptions, build_backends
from wrappers.limits import Limits

PROMPTS = ["What is the capital of Spain?", "What is 7 plus 5?", "Tell me a joke about atom", "Hello"]


def timed_compare(comparer: Comparer, prompt: str) -> float:
    conversations = {side: [{"role": "user", "content": prompt}] for side in SIDES}
    started = time.perf_counter()
    for _ in comparer.compare(conversations, GenerationOptions(max_tokens=64), uuid.uuid4().hex):
        pass
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.mkdtemp(prefix="bench-store-")))
    args = parser.parse_args()
    backends = build_backends(AppConfig(data_dir=args.data_dir), progress=lambda m: None)
    recorder = Recorder(args.data_dir / "spool")
    plain, traced = Comparer(backends, Limits()), Comparer(backends, Limits(), recorder)
    for prompt in PROMPTS:  # warm-up, including MLflow's tracing set-up
        timed_compare(plain, prompt), timed_compare(traced, prompt)
    recorder.flush()
    # Alternate whole blocks, so each traced request pays for the background export of the
    # traced requests before it, as it would in steady use, and untraced ones pay nothing.
    times = {"without tracing": [], "with tracing": []}
    for _ in range(args.rounds):
        for name, comparer in (("without tracing", plain), ("with tracing", traced)):
            times[name] += [timed_compare(comparer, prompt) for prompt in PROMPTS * 2]
            recorder.flush()
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        print(f"{name:>16}: median {value * 1000:.1f} ms per comparison over {len(times[name])}")
    overhead = medians["with tracing"] / medians["without tracing"] - 1
    print(f"overhead: {overhead:+.1%} (target: at most +5%); recorder notice: {recorder.notice}")


if __name__ == "__main__":
    main()
