"""What logging the ONNX export costs, with and without MLflow running its input example.

    .venv/bin/python -m benchmarks.fullscale.log_export_cost EXPORT_DIR [--tries 1]

Each try logs the export into a fresh SQLite store, in a fresh process as the
app's child step does, two ways:

- "checked": `mlflow.pyfunc.log_model` as the app called it until December
  2026: MLflow loads the model it has just saved and runs the input example
  through it (a whole answer: the random-weight shaped model never stops);
- "stored": `wrappers.onnx_backend.log_onnx_model`, as the app does now: the
  signature and input example are stored, not run.

It prints each try's wall time and peak RSS, and the mean of each way.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import PeakRss
from wrappers.config import ROOT

GiB = 2**30
CHILD = """
import sys, mlflow
from wrappers.registry import EXPERIMENT, use_store
from wrappers import onnx_backend as ob
from pathlib import Path
data, export, way = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
use_store(f"sqlite:///{data}/mlflow.db", data / "artifacts")
mlflow.set_experiment(EXPERIMENT)  # its artifacts under data, not ./mlruns
with mlflow.start_run():
    if way == "stored":
        ob.log_onnx_model(export, [])
    else:
        mlflow.pyfunc.log_model(name="model", python_model=str(ob.MODEL_CODE),
            artifacts={ob.ARTIFACT_KEY: export}, code_paths=[str(ob.PACKAGE_DIR)],
            signature=ob.SIGNATURE, input_example=ob.INPUT_EXAMPLE, pip_requirements=[])
"""


def log_once(export: Path, way: str) -> dict:
    """One logging of `export` the given way, in a fresh process on a fresh store."""
    with tempfile.TemporaryDirectory(prefix="log-export-") as data:
        started = time.monotonic()
        process = subprocess.Popen([sys.executable, "-c", CHILD, data, str(export), way], cwd=ROOT)
        memory = PeakRss(process.pid, every_s=0.1, tree=True)
        code = process.wait()
        memory.stop()
        return {
            "way": way,
            "exit": code,
            "seconds": time.monotonic() - started,
            "peak_rss": memory.peak_since(0),
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("export", type=Path, help="an onnxruntime-genai export folder")
    parser.add_argument("--tries", type=int, default=1)
    parser.add_argument("--ways", default="checked,stored")
    args = parser.parse_args(argv)
    rows = []
    for _ in range(args.tries):
        for way in args.ways.split(","):
            rows.append(row := log_once(args.export, way))
            peak = row["peak_rss"] / GiB
            print(f"{way:8} exit {row['exit']}  {row['seconds']:6.1f} s  peak RSS {peak:.2f} GiB", flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
