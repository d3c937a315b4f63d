"""Measure every heavy step's memory at several depths of the shaped model; fit the app's estimates.

For 4, 8 and 16 layers of the Phi-3-mini-shaped checkpoint, saved in bfloat16
like Microsoft's, it runs the app's own code, each step in a fresh process:

- logging side (a) in each dtype, and building the int4 (and fp32) export:
  the app's child steps (`wrappers.child.run_step`);
- loading each side from the registry, then answering a prompt as long as
  the limits allow (2048 tokens): a child process of this script;
- both sides loaded together and answering, through `build_backends` and the
  comparison, as the app does.

Each process reports its peak RSS (the kernel's) and its peak anonymous
memory (RssAnon, sampled every 20 ms): RSS also counts memory-mapped weight
files that the kernel can drop. A straight line `per_unit × size + base` is
fitted to the anonymous peaks, where size is the checkpoint's parameter
count (or, for the ONNX side, its export's bytes), and written with every
point to `wrappers/memory_fit.json`, which `wrappers/memory.py` reads.

    .venv/bin/python -m benchmarks.memory_fit [--layers 4 8 16]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow

from benchmarks.shaped_model import build_shaped_model
from wrappers.child import AnonPeak, run_step, status_bytes
from wrappers.config import ROOT, child_env
from wrappers.memory import FITS
from wrappers.onnx_backend import builder_options, log_onnx_model
from wrappers.registry import EXPERIMENT, use_store
from wrappers.sources import parameter_count, weights_bytes

DTYPES = ("bfloat16", "float32")
SERVING = ("load_", "serve_")
PROMPT_TOKENS, NEW_TOKENS = 2048, 16  # the default prompt limit; a few tokens show the decode's memory


def measure_depth(layers: int, work: Path, progress) -> list[dict]:
    """Every step at one depth; one row per (step, size) with its peaks.

    Each model is served and deleted before the next is logged, so the disk holds one at a time
    (16 layers in float32 is 8 GB a copy). The fp32 export is measured up to 8 layers only.
    """
    checkpoint = build_shaped_model(layers, dtype="bfloat16")
    parameters = parameter_count(checkpoint)
    use_store(f"sqlite:///{work / 'mlflow.db'}", work / "artifacts")
    mlflow.set_experiment(EXPERIMENT)
    rows = []

    def row(step: str, size: int, anon: int, rss: int, seconds: float, **extra) -> None:
        rows.append({"step": step, "layers": layers, "size": size, "peak_anon": anon, "peak_rss": rss,
                     "seconds": round(seconds, 1)} | extra)  # fmt: skip
        progress(f"{layers} layers, {step}: anon {anon / 2**30:.2f} GiB, rss {rss / 2**30:.2f} GiB")

    def serve(uri: str, side: str, variant: str, size: int) -> None:
        served = serve_in_child(uri, side, checkpoint, work)
        suffix = f"/{variant}" if side == "transformers" else ""
        row(f"load_{side}{suffix}", size, served["loaded_anon"], served["loaded_rss"], served["load_s"],
            variant=variant)  # fmt: skip
        row(f"serve_{side}{suffix}", size, served["peak_anon"], served["peak_rss"], served["seconds"],
            variant=variant, prompt_tokens=served["prompt_tokens"])  # fmt: skip
        shutil.rmtree(work / "artifacts", ignore_errors=True)

    for dtype in DTYPES:
        with mlflow.start_run():
            kwargs = {"checkpoint": str(checkpoint), "pip_requirements": [], "dtype": dtype}
            done = run_step("log_transformers", kwargs, "log", progress, measure=True)
        row(f"log_transformers/{dtype}", parameters, done.peak_anon, done.peak_rss, done.seconds)
        serve(done.value, "transformers", dtype, parameters)
    for precision in ("int4", "fp32") if layers <= 8 else ("int4",):
        out = work / f"onnx-{precision}"
        kwargs = {"checkpoint": str(checkpoint), "precision": precision, "out_dir": str(out), "lean": True}
        done = run_step("build_onnx", kwargs | {"options": builder_options(precision)}, "build", progress,
                        work / "build.log", measure=True)  # fmt: skip
        exported = weights_bytes(out)
        row(f"build_onnx/{precision}", parameters, done.peak_anon, done.peak_rss, done.seconds)
        rows.append({"step": f"export_bytes/{precision}", "layers": layers, "size": parameters,
                     "bytes": exported})  # fmt: skip
        with mlflow.start_run():
            uri = log_onnx_model(out, [])
        shutil.rmtree(out)
        serve(uri, "onnx", precision, exported)
    return rows


def serve_in_child(uri: str, side: str, checkpoint: Path, work: Path) -> dict:
    """Load `uri` in a fresh process and answer the longest prompt; its memory figures."""
    command = [sys.executable, "-m", "benchmarks.fullscale.memory_fit", "--serve", uri, side, str(checkpoint)]
    env = child_env(work) | {"MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _serve(uri: str, side: str, checkpoint: str) -> None:
    """Child body: load through MLflow, then stream one long answer as the app does."""
    import transformers

    from benchmarks.engines import prompt_of_length
    from wrappers import GenerationOptions, onnx_backend, transformers_backend
    from wrappers.backend import Report

    sampler, started = AnonPeak().start(), time.monotonic()
    pyfunc = mlflow.pyfunc.load_model(uri)
    load_s = time.monotonic() - started
    loaded_anon, loaded_rss = sampler.now(), _rss()
    predict = transformers_backend.stream_predict if side == "transformers" else onnx_backend.stream_predict
    # Both sides' chat templates give the same ids (tested), so one tokenizer sizes the prompt.
    prompt = prompt_of_length(transformers.AutoTokenizer.from_pretrained(checkpoint), PROMPT_TOKENS)
    report = Report()
    for _ in predict(pyfunc, prompt.messages, GenerationOptions(max_tokens=NEW_TOKENS), report):
        pass
    time.sleep(0.1)
    print(json.dumps({
        "loaded_anon": loaded_anon, "loaded_rss": loaded_rss, "load_s": load_s, "peak_anon": sampler.peak,
        "peak_rss": status_bytes("VmHWM"), "seconds": time.monotonic() - started,
        "prompt_tokens": len(report.prompt_ids),
    }))  # fmt: skip


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def fit(rows: list[dict], library_rss: int) -> dict[str, dict]:
    """A least-squares line per step through (size, measured bytes).

    One-shot steps (logging, building) read each weight once, so what they need is their own
    allocations (peak anonymous memory) and the page cache is theirs to lose. Serving reads every
    weight for every token, so memory-mapped weights must stay resident: there, the peak RSS, less
    what the interpreter and libraries take (`library_rss`), which the app holds already.
    """
    steps: dict[str, list[tuple[int, int]]] = {}
    for r in rows:
        serving = r["step"].startswith(SERVING)
        measured = r.get("bytes") or (r["peak_rss"] - library_rss if serving else r["peak_anon"])
        # an export's cache and activations grow with its layers, not its bytes: one line per precision
        step = f"{r['step']}/{r['variant']}" if r["step"] in ("load_onnx", "serve_onnx") else r["step"]
        steps.setdefault(step, []).append((r["size"], measured))
    fitted = {}
    for step, points in sorted(steps.items()):
        n = len(points)
        mean_x, mean_y = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
        spread = sum((x - mean_x) ** 2 for x, _ in points)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0
        unit = "export byte" if step.startswith(("load_onnx", "serve_onnx")) else "parameter"
        fitted[step] = {"per_unit": slope, "base": mean_y - slope * mean_x, "unit": unit, "points": points}
    return fitted


def measure_library_rss() -> int:
    """The resident memory of a process that has imported what serving needs, and no model."""
    script = (
        "import mlflow, onnxruntime_genai, torch, transformers, wrappers\n"
        "from wrappers.child import status_bytes\nprint(status_bytes('VmRSS'))"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


def write_fit(rows: list[dict], out: Path) -> None:
    library = measure_library_rss()
    result = {
        "method": " ".join(__doc__.split("\n\n")[1:4]).replace("\n", " "),
        "measured": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores",
        "serve_tokens": PROMPT_TOKENS + NEW_TOKENS,  # the serving fits hold this many tokens' KV cache
        "library_rss": library,
        "steps": fit(rows, library),
        "rows": rows,
    }
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--out", type=Path, default=FITS)
    parser.add_argument("--resume", action="store_true", help="keep the depths a crashed run measured")
    parser.add_argument("--refit", action="store_true", help="fit the rows of --out again, measuring nothing")
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)  # child mode: URI SIDE CHECKPOINT
    args = parser.parse_args(argv)
    if args.serve:
        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
        return _serve(*args.serve)
    if args.refit:  # the same rows, fitted again (e.g. after changing what is fitted)
        return write_fit(json.loads(args.out.read_text())["rows"], args.out)
    partial = args.out.with_suffix(".partial.json")  # rows so far: a crash loses one depth at most
    rows = json.loads(partial.read_text()) if args.resume and partial.exists() else []
    for layers in sorted(set(args.layers) - {row["layers"] for row in rows}, reverse=True):
        with tempfile.TemporaryDirectory(prefix=f"memfit-{layers}-") as work:
            rows += measure_depth(layers, Path(work), print)
        partial.write_text(json.dumps(rows))
    write_fit(rows, args.out)
    partial.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
