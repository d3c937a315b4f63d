"""Each side's own decode speed alone and inside a comparison, with ONNX Runtime's spinning on or off.

At full size (7 December) transformers decoded at 0.71 tokens/s inside a comparison and
1.70 alone. The suspect: after each of its steps, onnxruntime's intra-op threads spin,
waiting for more work, and take the cores from the torch step that processor sharing
runs next. This measures the shaped model's own decode speeds (its own clocks, as the
panes read them) in three settings, for each value of `session.intra_op.allow_spinning`:
each side alone, then both in one comparison (`compare_stream`, processor sharing).
The variants alternate within each repeat, so the machine's changing load (other jobs)
falls on both alike; the load average is printed with every repeat.

    .venv/bin/python -m benchmarks.thread_contention [--layers 4] [--prompt-tokens 64] [--new-tokens 24]

Spinning is switched by reloading the ONNX side's onnxruntime-genai model inside the
loaded pyfunc with the other session option (the export and its pyfunc stay the same).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

from benchmarks.pane_speed import prompt_messages, shaped_backends
from benchmarks.shaped_model import build_shaped_model
from compare.comparison import compare_stream
from wrappers import GenerationOptions, run
from wrappers.backend import decode_speed

SPINNING = {"on": "1", "off": "0"}


def set_spinning(backend, setting: str) -> None:
    """Reload the ONNX side's onnxruntime-genai model with spinning `setting` ("on" or "off")."""
    import onnxruntime_genai as og

    pyfunc = backend.model.get().pyfunc
    engine = pyfunc.unwrap_python_model()
    path = pyfunc._model_impl.context.artifacts["onnx_model"]  # where the pyfunc loaded the export from
    defaults = sys.modules[type(engine).__module__].session_options()  # the pyfunc's own module
    options = {**defaults, "session.intra_op.allow_spinning": SPINNING[setting]}
    config = og.Config(path)
    config.overlay(json.dumps({"model": {"decoder": {"session_options": options}}}))
    engine.model = og.Model(config)
    engine.tokenizer = og.Tokenizer(engine.model)


def own_decode(result) -> float:
    return decode_speed(result.usage.completion_tokens, result.latency.total_s, result.latency.ttft_s) or 0.0


def one_repeat(backends, messages, options) -> dict[str, float]:
    """Own decode tokens/s: each side alone, then both in one comparison."""
    figures = {}
    for side, backend in backends.items():
        figures[f"{side} alone"] = own_decode(run(backend, messages, options))
    for update in compare_stream(backends, {side: messages for side in backends}, options):
        final = update
    for side, result in final.items():
        figures[f"{side} in a comparison"] = own_decode(result)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    checkpoint = build_shaped_model(args.layers)
    backends = shaped_backends(checkpoint)
    messages = prompt_messages(checkpoint, args.prompt_tokens)
    options = GenerationOptions(max_tokens=args.new_tokens)
    runs = {setting: [] for setting in SPINNING}
    loads = []
    for repeat in range(1 + args.repeats):  # the first repeat warms up and is dropped
        for setting in SPINNING:
            set_spinning(backends["onnx"], setting)
            run(backends["onnx"], messages, GenerationOptions(max_tokens=2))  # the new session's first run
            figures = one_repeat(backends, messages, options)
            load = os.getloadavg()[0]
            print(f"repeat {repeat}, spinning {setting}, load {load:.1f}: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in figures.items()), flush=True)  # fmt: skip
            if repeat:
                runs[setting].append(figures)
                loads.append(load)
    size = (
        f"{args.layers}-layer shaped model, {args.prompt_tokens}-token prompt, {args.new_tokens} new tokens"
    )
    print(
        f"\n{size}; own decode tokens/s, medians of {args.repeats}; load {min(loads):.1f} to {max(loads):.1f}"
    )
    print("| onnxruntime spinning | " + " | ".join(runs["on"][0]) + " |")
    print("|---|" + "---:|" * len(runs["on"][0]))
    for setting, repeats in runs.items():
        cells = [f"{statistics.median(r[key] for r in repeats):.2f}" for key in repeats[0]]
        print(f"| {setting} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
