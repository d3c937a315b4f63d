"""The serving estimate checked against the whole app at full size, and calibrated by it.

    .venv/bin/python -m benchmarks.fullscale.calibrate [benchmarks/results/fullscale_serve.json]

The serving fits (`memory_fit.py`) are measured at 4, 8 and 16 layers and extended to 32. This
checks them where it matters: the app's peak RSS (its whole process tree) while both sides answered
the longest request the limits allow, at full size (`serve.py`'s longest phase). onnxruntime-genai
allocates its KV cache for the whole request (`max_length`, shared past and present buffers) at the
first token; transformers' cache grows by its exact size per token. So where the answer was cut
before its end, the rest of transformers' cache is added by arithmetic. The peak over the estimate
without margin (both sides' fitted lines at those tokens, plus the interpreter and libraries) is the
serving margin that `wrappers/memory.py` applies, written as `full_size` in memory_fit.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.fullscale.serve import OUT
from benchmarks.machine import cpu_model
from benchmarks.shaped_model import CACHE
from wrappers import memory
from wrappers.sources import kv_bytes_per_token, parameter_count

GiB = 2**30


def full_size_check(result: dict, checkpoint: Path) -> dict:
    """The `full_size` record: measured peak (completed by arithmetic) against the estimate."""
    longest, new = result["longest"], result["limits"]["new"]
    tokens = longest["prompt_tokens"] + new
    parameters = parameter_count(checkpoint)
    kv_a, kv_b = kv_bytes_per_token(checkpoint, "bfloat16"), kv_bytes_per_token(checkpoint)
    missing = max(new - (longest["transformers"]["completion_tokens"] or 0), 0)
    peak = longest["peak_rss"] + kv_a * missing
    export = memory.fitted("export_bytes/int4", parameters)
    estimate = (
        memory.serving_line("transformers/bfloat16", parameters, kv_a, tokens)
        + memory.serving_line("onnx/int4", export, kv_b, tokens)
        + memory._fit_file()["library_rss"]
    )
    return {
        "method": __doc__.split("\n\n")[2].replace("\n", " "),
        "measured": result["measured"], "machine": cpu_model(), "tokens": tokens,
        "measured_peak": longest["peak_rss"],
        "answered": {side: longest[side]["completion_tokens"] for side in ("transformers", "onnx")},
        "peak": peak, "estimate": estimate,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    result = json.loads(Path(argv[0] if argv else OUT).read_text())
    check = full_size_check(result, CACHE / "shaped-32-bfloat16")
    fits = json.loads(memory.FITS.read_text())
    memory.FITS.write_text(json.dumps(fits | {"full_size": check}, indent=1) + "\n")
    margin = check["peak"] / check["estimate"]
    print(f"peak {check['peak'] / GiB:.2f} GiB at {check['tokens']} tokens; estimate without margin "
          f"{check['estimate'] / GiB:.2f} GiB; serving margin {margin:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
