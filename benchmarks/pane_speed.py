"""When each pane's first and last tokens arrive, taking turns and sharing the processor.

The two sides of one comparison run as the app runs them (`compare_stream` on the
MLflow pyfuncs), once per schedule: `turns` (round-robin, one step each, as the app
did before issue 22) and `shared` (processor sharing, the app's schedule now). For each
side it prints the wall-clock time from the request to the pane's first and last token,
beside the side's own compute (its time to first token and total, as its clock reads
them: these should not move between the schedules).

    .venv/bin/python -m benchmarks.pane_speed [--layers 4] [--prompt-tokens 128] [--new-tokens 64]

On a Phi-3-shaped checkpoint (benchmarks/shaped_model.py: real widths, random weights);
both models are logged once into a store kept in the cache folder.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from benchmarks.engines import prompt_of_length
from benchmarks.shaped_model import build_shaped_model
from compare.comparison import SCHEDULES, compare_stream
from wrappers import AppConfig, GenerationOptions, build_backends, run
from wrappers.backend import Backend, Messages
from wrappers.startup import measure_pace


@dataclass(frozen=True)
class Arrival:
    """One pane in one comparison: wall-clock arrivals, and the side's own clock."""

    first_s: float  # from the request to the pane's first token
    last_s: float  # ... to its last token (the answer complete)
    own_ttft_s: float
    own_total_s: float
    tokens: int


def arrivals(
    backends: Mapping[str, Backend], messages: Messages, options: GenerationOptions, schedule: str
) -> dict[str, Arrival]:
    """Run one comparison under `schedule`; when each pane's first and last tokens arrived."""
    started, first, last = time.perf_counter(), {}, {}
    for update in compare_stream(backends, {side: messages for side in backends}, options, schedule=schedule):
        now = time.perf_counter() - started
        for side, result in update.items():
            if result.pieces and side not in first:
                first[side] = now
            if result.done and side not in last:
                last[side] = now
                final = update
    return {
        side: Arrival(
            first[side], last[side], r.latency.ttft_s, r.latency.total_s, r.usage.completion_tokens or 0
        )
        for side, r in final.items()
    }


def shaped_backends(checkpoint: Path) -> dict[str, Backend]:
    """Both MLflow packagings of a shaped checkpoint, logged on first use into a store beside it."""
    config = AppConfig(
        checkpoint=checkpoint, model_prefix=checkpoint.name, data_dir=Path(f"{checkpoint}-store")
    )
    backends = build_backends(config, progress=lambda message: None)
    for backend in backends.values():
        backend.model_ref()  # loaded now, not inside the first measurement
    return backends


def prompt_messages(checkpoint: Path, tokens: int) -> Messages:
    """A user message whose chat-templated prompt is exactly `tokens` long for `checkpoint`."""
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(checkpoint))
    return prompt_of_length(tokenizer, tokens).messages


def measure(backends, messages, options, repeats: int) -> dict[str, list[dict[str, Arrival]]]:
    """`repeats` comparisons per schedule, the schedules alternating; one warm-up first."""
    for backend in backends.values():
        run(backend, messages, GenerationOptions(max_tokens=2))
    runs = {schedule: [] for schedule in SCHEDULES}
    for _ in range(repeats):
        for schedule in SCHEDULES:
            runs[schedule].append(arrivals(backends, messages, options, schedule))
    return runs


def table(runs: dict[str, list[dict[str, Arrival]]]) -> str:
    """Medians per schedule and side, as a Markdown table."""
    lines = [
        "| schedule | pane | first token at | last token at | own time to first token | own total | tokens |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for schedule, repeats in runs.items():
        for side in repeats[0]:
            med = {
                field: statistics.median(getattr(r[side], field) for r in repeats)
                for field in ("first_s", "last_s", "own_ttft_s", "own_total_s", "tokens")
            }
            lines.append(
                f"| {schedule} | {side} | {med['first_s']:.2f} s | {med['last_s']:.2f} s "
                f"| {med['own_ttft_s']:.2f} s | {med['own_total_s']:.2f} s | {med['tokens']:.0f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--prompt-tokens", type=int, nargs="+", default=[128])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    checkpoint = build_shaped_model(args.layers)
    backends = shaped_backends(checkpoint)
    for side, backend in backends.items():  # the app's own warm-up, and what it logs
        print(f"{side}: {measure_pace(backend)}")
    options = GenerationOptions(max_tokens=args.new_tokens)
    for tokens in args.prompt_tokens:
        messages = prompt_messages(checkpoint, tokens)
        runs = measure(backends, messages, options, args.repeats)
        print(f"\n{args.layers}-layer shaped model, {tokens}-token prompt, {args.new_tokens} new tokens, "
              f"medians of {args.repeats}:")  # fmt: skip
        print(table(runs))


if __name__ == "__main__":
    main()
