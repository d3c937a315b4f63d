"""The app as a measured process: `app.py` started on a store, inside a memory cgroup when asked,
its start-up log read until both models are ready, and its memory metered until it stops.

The full-size rehearsal (`rehearsal.py`) and the serving figures on a kept store (`serve.py`)
both start the app this way, so their figures are taken alike.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from benchmarks.fullscale import cgroup
from benchmarks.fullscale.visitor import app_limits
from benchmarks.machine import PeakRss
from benchmarks.served import free_port
from wrappers.config import ROOT, child_env

STEP_LINE = re.compile(r"\[\s*([\d.]+)s\] (.*)")


class Launchable(Protocol):
    """What starting the app needs from a run's settings (`rehearsal.Settings` has both)."""

    memory_limit: int | None  # bytes: run the app in a memory cgroup this size
    env: Mapping[str, str] | None  # the app's own variables, e.g. its limits


@dataclass(frozen=True)
class WarmApp:
    """A started app with both models ready: a client, and the meter of its process tree's memory."""

    client: Any  # gradio_client.Client
    memory: PeakRss


@contextlib.contextmanager
def warm_app(
    args: list[str], data: Path, settings: Launchable, log: Path, figures: dict
) -> Iterator[WarmApp]:
    """`app.py ARGS` served on the store in `data` until both models are ready; stopped on leaving.

    `figures` gets the start (ready_s, rss_ready, the limits the app runs with) before the body
    runs, and the peaks (peak_rss, cgroup_peak, oom_kills) once the app has stopped.
    """
    port = free_port()
    with memory_limited(settings.memory_limit) as group, log.open("w") as out:
        started = time.monotonic()
        process = launch(args, data, settings, out, group, GRADIO_SERVER_PORT=str(port))
        memory = PeakRss(process.pid, every_s=0.1, tree=True)
        try:
            client = wait_for_models(f"http://127.0.0.1:{port}/", process, log)
            figures |= {"ready_s": time.monotonic() - started, "rss_ready": memory.rss()}
            figures["limits"] = app_limits(settings.env, log.read_text(errors="replace"))
            yield WarmApp(client, memory)
        finally:
            memory.stop()
            process.terminate()
            process.wait(timeout=120)
        figures |= {"peak_rss": memory.peak_since(0.0), "cgroup_peak": group.peak() if group else None,
                    "oom_kills": group.oom_kills() if group else None}  # fmt: skip


def launch(args: list[str], data: Path, settings: Launchable, out, group, **env: str) -> subprocess.Popen:
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


def wait_for_models(url: str, process: subprocess.Popen, log: Path, timeout: float = 1800):
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


class memory_limited:
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
