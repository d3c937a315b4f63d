"""Heavy one-shot steps (logging either side, building the ONNX export) in a child process.

When memory runs out, the kernel kills the biggest process: in a child, that
is the step and never the app, which reports the death in the pane. The child
logs into the parent's active MLflow run, so the logged model lands where it
would have in-process. Its own chatter (the builder prints a line per layer
and tensor) goes to a log file; only its progress lines reach the app.

The peak RSS is the kernel's high-water mark of the child's own memory
(VmHWM, read as it ends): `wait4`'s figure would also count the parent's
memory at the fork.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wrappers.errors import ModelLoadError

ROOT = Path(__file__).resolve().parent.parent
STEPS = {  # the only functions a child runs
    "log_transformers": "wrappers.transformers_backend:log_transformers_model",
    "build_onnx": "wrappers.onnx_build:build_export",
    "build_and_log_onnx": "wrappers.onnx_build:build_and_log",
    "log_onnx": "wrappers.onnx_backend:log_onnx_model",  # MLflow loads it to check the input example
}
PROGRESS, RESULT = "@@progress ", "@@result "


@dataclass(frozen=True)
class StepRun:
    value: Any  # what the step's function returned
    peak_rss: int  # bytes, the kernel's high-water mark of the child's resident memory
    seconds: float
    peak_anon: int | None = None  # bytes of its own allocations at most (sampled, with measure=True)


def run_step(
    step: str,
    kwargs: dict[str, Any],
    what: str,
    progress: Callable[[str], None],
    log_file: Path | None = None,
    measure: bool = False,
) -> StepRun:
    """Run `STEPS[step](**kwargs)` in a child process, inside the active MLflow run if there is one.

    `measure`: the child also samples its anonymous memory (what the benchmarks' fits need).
    """
    import mlflow

    run = mlflow.active_run()
    payload = {"step": step, "kwargs": kwargs, "tracking_uri": mlflow.get_tracking_uri(), "measure": measure}
    payload["parent"] = os.getpid()
    payload["run_id"] = run.info.run_id if run else None
    payload["experiment_id"] = run.info.experiment_id if run else None
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "wrappers.child", json.dumps(payload)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    result, tail = _read_output(process, progress, log_file)
    code = process.wait()
    seconds = time.monotonic() - started
    if code < 0:
        raise ModelLoadError(_killed(what, -code, seconds))
    if code != 0 or result is None:
        raise ModelLoadError(f"{what} failed: {tail[-1] if tail else f'exit status {code}'}")
    return StepRun(result["value"], result["peak_rss"], seconds, result["peak_anon"])


def _read_output(process, progress, log_file: Path | None) -> tuple[dict | None, list[str]]:
    """The child's result line, and the last lines of its other output; progress lines are passed on."""
    result, tail = None, deque(maxlen=20)
    log = log_file.open("w") if log_file else None
    try:
        for line in process.stdout:
            if line.startswith(RESULT):
                result = json.loads(line[len(RESULT) :])
            elif line.startswith(PROGRESS):
                progress(line[len(PROGRESS) :].rstrip())
            elif line.strip():
                tail.append(line.rstrip())
                if log:
                    log.write(line)
    finally:
        if log:
            log.close()
    return result, list(tail)


def _killed(what: str, signum: int, seconds: float) -> str:
    name = signal.Signals(signum).name
    cause = " by the out-of-memory killer, most likely" if signum == signal.SIGKILL else ""
    return (
        f"{what} was killed ({name}){cause}, after {seconds:.0f} s. The app is unharmed; "
        "give it more memory (see 'What it takes' in docs/real-phi3.md) and start again."
    )


def report(message: str) -> None:
    """From inside a step: a progress line that the app shows."""
    print(PROGRESS + message, flush=True)


def _die_with_parent(parent: int) -> None:
    """An app killed mid-step takes its step with it (Linux), rather than leave it running alone."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before the line above
        sys.exit(1)


def _main(payload: dict[str, Any]) -> None:
    import mlflow

    _die_with_parent(payload["parent"])

    module, _, name = STEPS[payload["step"]].partition(":")
    function = getattr(importlib.import_module(module), name)
    mlflow.set_tracking_uri(payload["tracking_uri"])
    mlflow.set_registry_uri(payload["tracking_uri"])
    sampler = AnonPeak().start() if payload["measure"] else None
    if payload["run_id"]:
        # the run's experiment, or the logged model would go to the Default one (./mlruns)
        mlflow.set_experiment(experiment_id=payload["experiment_id"])
        with mlflow.start_run(run_id=payload["run_id"]):
            value = function(**payload["kwargs"])
    else:
        value = function(**payload["kwargs"])
    peaks = {"peak_rss": status_bytes("VmHWM"), "peak_anon": sampler.peak if sampler else None}
    print(RESULT + json.dumps({"value": value} | peaks), flush=True)


def status_bytes(field: str) -> int:
    """A byte figure of this process from /proc/self/status (VmHWM, RssAnon, ...)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


class AnonPeak:
    """The highest anonymous RSS of this process (RssAnon), sampled every `interval` seconds."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval, self.peak = interval, 0

    def start(self) -> AnonPeak:
        threading.Thread(target=self._sample, daemon=True).start()
        return self

    def now(self) -> int:
        return status_bytes("RssAnon")

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, self.now())
            time.sleep(self.interval)


if __name__ == "__main__":
    _main(json.loads(sys.argv[1]))
