"""The smallest memory cgroup a heavy step completes in: what it really needs, beside its peak RSS.

    .venv/bin/python -m benchmarks.cgroup_check --layers 32 --step build_onnx/int4 --limits-gib 8 6 4

A step's peak RSS counts memory-mapped weight files, which the kernel drops
under pressure, so RSS overstates what a step needs. Here the step (the app's
own child step, as `app.py` runs it) runs inside fresh memory cgroups of the
given sizes, largest first, until one OOM-kills it. Steps: `log_transformers/
<dtype>`, `build_onnx/<precision>` (the lean build) and `build_onnx_stock/int4`
(the builder as it ships). Results are added to
benchmarks/results/cgroup_checks.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.fullscale import cgroup
from benchmarks.shaped_model import build_shaped_model
from wrappers.config import ROOT

GiB = 2**30
RESULTS = ROOT / "benchmarks" / "results" / "cgroup_checks.json"


def check(step: str, layers: int, limits_gib: list[float], progress=print) -> list[dict]:
    """One row per limit tried: did the step complete, in how long, with how many OOM kills."""
    checkpoint = build_shaped_model(layers, dtype="bfloat16")
    rows = []
    for limit in sorted(limits_gib, reverse=True):
        with (
            tempfile.TemporaryDirectory(prefix="cgcheck-") as work,
            cgroup.memory_cgroup(int(limit * GiB)) as group,
        ):
            started = time.monotonic()
            module = "benchmarks.fullscale.cgroup_check"
            command = [sys.executable, "-m", module, "--run", step, str(checkpoint), work]
            done = subprocess.run(command, cwd=ROOT, preexec_fn=group.join, capture_output=True, text=True)
            row = {"step": step, "layers": layers, "limit_gib": limit, "completed": done.returncode == 0,
                   "seconds": round(time.monotonic() - started, 1), "oom_kills": group.oom_kills(),
                   "measured": time.strftime("%Y-%m-%d")}  # fmt: skip
        rows.append(row)
        progress(f"{step}, {layers} layers, {limit} GiB: {'completed' if row['completed'] else 'killed'}")
        if not row["completed"]:
            break
    return rows


def _run(step: str, checkpoint: str, work: str) -> None:
    """Inside the cgroup: the step, as the app runs it (a child process)."""
    import mlflow

    from wrappers.child import run_step
    from wrappers.onnx_backend import builder_options
    from wrappers.registry import EXPERIMENT, use_store

    kind, _, variant = step.partition("/")
    if kind == "log_transformers":
        use_store(f"sqlite:///{work}/mlflow.db", Path(work) / "artifacts")
        mlflow.set_experiment(EXPERIMENT)
        with mlflow.start_run():
            kwargs = {"checkpoint": checkpoint, "pip_requirements": [], "dtype": variant}
            run_step("log_transformers", kwargs, step, print)
    else:
        kwargs = {"checkpoint": checkpoint, "precision": variant, "out_dir": f"{work}/out",
                  "options": builder_options(variant), "lean": kind == "build_onnx"}  # fmt: skip
        run_step("build_onnx", kwargs, step, print)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--step", default="build_onnx/int4")
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--limits-gib", type=float, nargs="+", default=[8, 6, 4])
    parser.add_argument("--run", nargs=3, help=argparse.SUPPRESS)  # inside the cgroup: STEP CHECKPOINT WORK
    args = parser.parse_args(argv)
    if args.run:
        return _run(*args.run)
    rows = check(args.step, args.layers, args.limits_gib)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(previous + rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
