"""The full-size rehearsal: the app's real path on a full-size Phi-3-mini-shaped checkpoint.

    .venv/bin/python -m benchmarks.fullscale [--layers 32] [--memory-limit-gib 16]

The checkpoint has Phi-3-mini's shape (32 layers, hidden 3072, MLP 8192,
vocabulary 32064: 3.82 B parameters) and random weights saved in bfloat16
like Microsoft's (7.6 GB; cached under ~/.cache/phi3-compare, never
committed). Each phase is a real `app.py` process on a fresh data folder,
inside a memory cgroup of `--memory-limit-gib` when given (a 16 GB machine
or Space), as a user would run it:

1. `app.py --transformers-source CK --onnx-source build --log-only`: log side
   (a) in the `auto` dtype, build the int4 export, register and load both;
2. a warm start, then through gradio_client: one streamed `/compare` (a
   128-token prompt, 32 new tokens: when each pane's first and last tokens
   arrive); the longest prompt the app accepts, answered by both sides (its
   limits as it runs, lowered if memory is short; what its time budget
   refuses is recorded with its message, and the prompt it says fits is
   tried next); each side alone at 128, 1024 and 2048 prompt tokens;
3. the same `--log-only` on a fresh store inside a cgroup too small for it:
   the app must refuse up front, naming the memory, and never be OOM-killed.

For each phase: wall time, peak RSS of the whole process tree (and its
anonymous part), the cgroup's OOM kills, disk added at peak and at the end,
for the warm start its cgroup's high-water mark and the load average at each
request, and for each request each side's time to first token and decode speed.
Results go to benchmarks/results/fullscale.json and docs/fullscale.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.engines import prompt_of_length
from benchmarks.fullscale import cgroup
from benchmarks.fullscale.report import fit_table, markdown
from benchmarks.fullscale.visitor import app_limits, longest_answered, speed, stream_compare
from benchmarks.machine import PeakRss
from benchmarks.served import free_port
from benchmarks.shaped_model import CACHE, PHI3_MINI, build_shaped_model
from wrappers.config import ROOT, child_env
from wrappers.memory import FITS, fitted

GiB = 2**30
NARROW = {  # the CI version: the same phases on a small model
    "hidden_size": 256, "intermediate_size": 512, "num_attention_heads": 8, "num_key_value_heads": 8,
    "vocab_size": 2048,
}  # fmt: skip
STEP_LINE = re.compile(r"\[\s*([\d.]+)s\] (.*)")
RESULTS = ROOT / "benchmarks" / "results" / "fullscale.json"


@dataclass(frozen=True)
class Settings:
    layers: int = 32
    shape: dict | None = None  # None: Phi-3-mini's widths
    memory_limit: int | None = None  # bytes: run the app in a memory cgroup this size
    refuse_limit: int = 2 * GiB  # the cgroup for the refusal phase
    prompt_tokens: int = 128
    new_tokens: int = 32
    longest_new_tokens: int = 16  # the longest prompt's answer: its prompt is what is measured
    speed_prompts: tuple[int, ...] = (128, 1024, 2048)  # each side alone, at these prompt lengths
    cache: Path = CACHE
    work: Path | None = None  # data folders; None: a temporary folder
    env: dict[str, str] | None = None  # e.g. the app's limits (PHI3_MAX_PROMPT_TOKENS, ...)
    logs: Path | None = None  # where the app's logs are kept; None: with the data, deleted


def rehearse(settings: Settings, progress=print) -> dict:
    shape = settings.shape or PHI3_MINI
    name = f"shaped-{settings.layers}-bfloat16" + ("" if settings.shape is None else "-narrow")
    checkpoint = build_shaped_model(settings.layers, settings.cache / name, shape, dtype="bfloat16")
    with tempfile.TemporaryDirectory(prefix="fullscale-", dir=settings.work) as work:
        data, logs = Path(work) / "data", settings.logs or Path(work)
        logs.mkdir(parents=True, exist_ok=True)
        args = ["--transformers-source", str(checkpoint), "--onnx-source", "build"]
        progress(f"1/3 log-only on {checkpoint}")
        logged = run_app([*args, "--log-only"], data, settings, logs / "log-only.log")
        progress(f"  {logged['seconds']:.0f} s, peak RSS {logged['peak_rss'] / GiB:.1f} GiB")
        progress("2/3 warm start and /compare")
        try:
            served = serve_and_compare(args, data, checkpoint, settings, logs / "serve.log", progress)
            progress(f"  peak RSS {served['peak_rss'] / GiB:.1f} GiB, OOM kills {served['oom_kills']}")
        except RuntimeError as exc:  # a side refused or failed: recorded, and the refusal phase still runs
            served = {"error": str(exc), "steps": step_times((logs / "serve.log").read_text())}
            progress(f"  {exc}")
        progress(f"3/3 log-only in a {settings.refuse_limit / GiB:.1f} GiB cgroup (must be refused)")
        refused_data, refused_log = Path(work) / "data-refused", logs / "refused.log"
        refused = run_app([*args, "--log-only"], refused_data, settings, refused_log, settings.refuse_limit)
        store = _sizes(data)
    return {
        "checkpoint": {"layers": settings.layers, "shape": shape, "path": str(checkpoint),
                       "bytes": _du(checkpoint), "parameters": _parameters(checkpoint)},
        "memory_limit": settings.memory_limit, "refused_limit": settings.refuse_limit, "env": settings.env,
        "log_only": logged, "serve": served, "refused": refused,
        "store": store, "measured": time.strftime("%Y-%m-%d"),
    }  # fmt: skip


def run_app(args: list[str], data: Path, settings: Settings, log: Path, limit: int | None = None) -> dict:
    """`app.py ARGS` to the end, in a cgroup (`limit`, else the settings'); its figures."""
    with (
        _limited(limit or settings.memory_limit) as group,
        _DiskPeak(data.parent) as disk,
        log.open("w") as out,
    ):
        started = time.monotonic()
        process = _launch(args, data, settings, out, group)
        memory = PeakRss(process.pid, every_s=0.1, tree=True)
        code = process.wait()
        seconds = time.monotonic() - started
        memory.stop()
        oom = group.oom_kills() if group else None
    text = log.read_text(errors="replace")
    return {
        "exit": code, "seconds": seconds, "peak_rss": memory.peak_since(0.0), "oom_kills": oom,
        "disk_peak_added": disk.peak, "disk_added": disk.last, "steps": step_times(text),
        "refusals": [line for line in text.splitlines() if "needs about" in line][:4],
    }  # fmt: skip


def serve_and_compare(
    args: list[str], data: Path, checkpoint: Path, settings: Settings, log: Path, progress=print
) -> dict:
    """A warm start; once both models are ready: one streamed /compare of `prompt_tokens` (when
    each pane's tokens arrive), the longest prompt the app accepts and answers (at the limits it
    runs with, lowered or not, and as its time budget allows), then each side alone at
    `speed_prompts`. The app's memory throughout, and the load average at each step."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    prompt = prompt_of_length(tokenizer, settings.prompt_tokens).messages[-1]["content"]
    port, served = free_port(), {"load": {}}
    with _limited(settings.memory_limit) as group, log.open("w") as out:
        started = time.monotonic()
        process = _launch(args, data, settings, out, group, GRADIO_SERVER_PORT=str(port))
        memory = PeakRss(process.pid, every_s=0.1, tree=True)
        try:
            client = _wait_for_models(f"http://127.0.0.1:{port}/", process, log)
            served |= {"ready_s": time.monotonic() - started, "rss_ready": memory.rss()}
            served["limits"] = app_limits(settings.env, log.read_text(errors="replace"))
            progress(f"  ready in {served['ready_s']:.0f} s, RSS {served['rss_ready'] / GiB:.1f} GiB, "
                     f"limits {served['limits']}")  # fmt: skip
            for step, ask in _requests(client, tokenizer, prompt, settings, served["limits"], progress):
                mark, served["load"][step] = time.perf_counter(), os.getloadavg()
                served[step] = _attempt(ask)
                served[f"{step}_peak_rss"] = memory.peak_since(mark)
                progress(f"  {step}: {json.dumps(served[step])[:2000]}")
            served["rss_after"] = memory.rss()
        finally:
            memory.stop()
            process.terminate()
            process.wait(timeout=120)
        served |= {"peak_rss": memory.peak_since(0.0), "cgroup_peak": group.peak() if group else None,
                   "oom_kills": group.oom_kills() if group else None}  # fmt: skip
    served["load"]["end"] = os.getloadavg()
    served["steps"] = step_times(log.read_text(errors="replace"))
    return served


def _requests(client, tokenizer, prompt: str, settings: Settings, limits: dict, progress):
    """The warm app's requests, in order: (name, a call that makes it)."""
    return [
        ("compare", lambda: stream_compare(client, prompt, settings.new_tokens)),
        (
            "longest",
            lambda: longest_answered(client, tokenizer, limits, settings.longest_new_tokens, progress),
        ),
        ("speed", lambda: speed(client, tokenizer, settings.speed_prompts, progress=progress)),
    ]


def _attempt(ask):
    """`ask()`'s figures; a request that failed outright is recorded, and the next still runs."""
    try:
        return ask()
    except Exception as exc:  # noqa: BLE001 - any failure is a result of the rehearsal
        return {"error": f"{type(exc).__name__}: {exc}"}


def _launch(args: list[str], data: Path, settings: Settings, out, group, **env: str) -> subprocess.Popen:
    """`app.py ARGS` on the store in `data`, its output to `out`, inside `group` if given."""
    temp = data.parent / "tmp"  # MLflow stages artifacts in temporary folders: counted as disk used
    temp.mkdir(parents=True, exist_ok=True)
    env = {"GRADIO_ANALYTICS_ENABLED": "False", "TMPDIR": str(temp)} | (settings.env or {}) | env
    return subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), *args],
        env=child_env(data, **env),
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
        preexec_fn=group.join if group else None,
    )


def _wait_for_models(url: str, process: subprocess.Popen, log: Path, timeout: float = 1800):
    """A client once the app has both models loaded (its start-up log says so)."""
    from gradio_client import Client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}; see {log}")
        text = log.read_text(errors="replace")
        if "failed:" in text:
            raise RuntimeError(f"a model failed to load; see {log}")
        if text.count(": ready: ") == 2:
            return Client(url, verbose=False)
        time.sleep(0.5)
    raise TimeoutError(f"the models were not ready within {timeout} s")


def step_times(log_text: str) -> list[dict]:
    """Each start-up line with its time, and how long until the next one.

    >>> step_times("[   1.0s] a\\n[   3.5s] b\\n")
    [{'at_s': 1.0, 'line': 'a', 'took_s': 2.5}, {'at_s': 3.5, 'line': 'b', 'took_s': None}]
    """
    lines = [(float(m[1]), m[2]) for m in map(STEP_LINE.match, log_text.splitlines()) if m]
    return [
        {"at_s": at, "line": line, "took_s": round(lines[i + 1][0] - at, 1) if i + 1 < len(lines) else None}
        for i, (at, line) in enumerate(lines)
    ]


class _limited:
    """A memory cgroup of `limit` bytes, or none."""

    def __init__(self, limit: int | None) -> None:
        self.limit, self.context = limit, None

    def __enter__(self):
        if self.limit is None:
            return None
        if not cgroup.available():
            raise RuntimeError("memory cgroups are not available here (root and /sys/fs/cgroup needed)")
        self.context = cgroup.memory_cgroup(self.limit, "fullscale")
        return self.context.__enter__()

    def __exit__(self, *exc):
        return self.context.__exit__(*exc) if self.context else None


class _DiskPeak:
    """Bytes added under `folder` (the app's store and temporary files), sampled each second: the
    peak and the last. The folder's own size, not its file system's: others may write there too."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.peak, self.last = folder, 0, 0
        self._stop = threading.Event()

    def __enter__(self) -> _DiskPeak:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._base = _du(self.folder)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._read()

    def _read(self) -> None:
        self.last = _du(self.folder) - self._base
        self.peak = max(self.peak, self.last)

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            self._read()


def _sizes(data: Path) -> dict[str, int]:
    return {
        "mlflow_store": _du(data / "artifacts") + _du(data / "mlflow.db"),
        "onnx_builds": _du(data / "onnx-builds"),
    }


def _du(path: Path) -> int:
    """Bytes of the files under `path`; files deleted while it counts (a running app's) count as 0."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def _parameters(checkpoint: Path) -> int:
    from wrappers.sources import parameter_count

    return parameter_count(checkpoint)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--narrow", action="store_true", help="the CI version: small widths")
    parser.add_argument("--memory-limit-gib", type=float, help="run the app in a memory cgroup this size")
    parser.add_argument("--refuse-limit-gib", type=float, default=2.0)
    parser.add_argument("--prompt-limit", type=int, help="PHI3_MAX_PROMPT_TOKENS for the app")
    parser.add_argument("--new-limit", type=int, help="PHI3_MAX_NEW_TOKENS for the app")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--logs", type=Path, help="keep the app's logs in this folder")
    parser.add_argument("--speed-prompts", default="128,1024,2048", help="each side alone at these lengths")
    args = parser.parse_args(argv)
    limit = int(args.memory_limit_gib * GiB) if args.memory_limit_gib else None
    env = {"PHI3_MAX_PROMPT_TOKENS": args.prompt_limit, "PHI3_MAX_NEW_TOKENS": args.new_limit}
    settings = Settings(
        args.layers, NARROW if args.narrow else None, limit, int(args.refuse_limit_gib * GiB),
        env={k: str(v) for k, v in env.items() if v is not None}, logs=args.logs,
        speed_prompts=tuple(int(n) for n in args.speed_prompts.split(",") if n),
    )  # fmt: skip
    result = rehearse(settings, lambda line: print(line, flush=True))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result))
    parameters = result["checkpoint"]["parameters"]
    print(fit_table(json.loads(FITS.read_text()), parameters, fitted("export_bytes/int4", parameters)))


if __name__ == "__main__":
    main()
