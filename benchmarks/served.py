"""The third depth: the running app's API through gradio_client, beside a no-op endpoint.

The app (`app.py`) and the no-op server (`noop_app.py`) each run in their own
process on a free loopback port. The client times each request from submit
to the last streamed update; the app also reports how long its model worked,
so the app's overhead per request is the client's time minus the model's,
minus the same for a no-op request that streams as many updates over as long.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.engines import Prompt, Run
from benchmarks.machine import PeakRss
from wrappers.config import ROOT, child_env


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    started: float  # perf_counter at launch
    memory: PeakRss


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(args: list[str], log: Path, data_dir: Path, extra_env: dict[str, str] | None = None):
    """Run `python ARGS` on the store in `data_dir` with a free GRADIO_SERVER_PORT; yield a Server."""
    port = free_port()
    env = child_env(
        data_dir, GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False", **(extra_env or {})
    )
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, *args], env=env, stdout=out, stderr=out, cwd=ROOT)
        server = Server(f"http://127.0.0.1:{port}/", process, started, PeakRss(process.pid))
        try:
            yield server
        finally:
            server.memory.stop()
            process.terminate()
            process.wait(timeout=60)


def app_args(checkpoint: Path) -> list[str]:
    return [str(ROOT / "app.py"), "--checkpoint", str(checkpoint)]


def log_only(checkpoint: Path, data_dir: Path, log: Path) -> float:
    """Log and register both models with `app.py --log-only`, in its own process; return seconds."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = child_env(data_dir)
    started = time.perf_counter()
    with log.open("w") as out:
        subprocess.run(
            [sys.executable, *app_args(checkpoint), "--log-only"],
            env=env,
            stdout=out,
            stderr=out,
            cwd=ROOT,
            check=True,
        )
    return time.perf_counter() - started


def noop_args() -> list[str]:
    return ["-m", "benchmarks.noop_app"]


def first_answer(server: Server, timeout: float = 300) -> float:
    """Seconds from launch until the app answers /compare with both models loaded."""
    from gradio_client import Client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the server exited with {server.process.returncode}; see its log")
        try:
            Client(server.url, verbose=False).predict(prompt="Hi", max_tokens=8, api_name="/compare")
            return time.perf_counter() - server.started
        except Exception:
            time.sleep(0.2)
    raise TimeoutError(f"no answer from {server.url} within {timeout} s")


def connect(server: Server, timeout: float = 120):
    """A gradio_client for a server that is still starting."""
    from gradio_client import Client

    deadline = time.monotonic() + timeout
    while True:
        try:
            return Client(server.url, verbose=False)
        except Exception:
            if time.monotonic() > deadline or server.process.poll() is not None:
                raise
            time.sleep(0.2)


def chat(client, side: str, prompt: Prompt, max_new: int) -> Run:
    """One streamed /chat_{side} request, timed at the client."""
    prompt_text = prompt.messages[-1]["content"]
    first, total, final, updates = timed_request(client, f"/chat_{side}", prompt_text, max_new)
    if final.get("error"):
        raise RuntimeError(final["error"])
    usage, latency = final["usage"], final["latency"]
    return Run(
        usage["prompt_tokens"], usage["completion_tokens"], first, total, latency["total_s"], updates=updates
    )


def noop_beyond_wait(client, updates: int, spacing_s: float) -> float:
    """Seconds a no-op request streaming `updates` updates `spacing_s` apart took beyond its waiting.

    Timed the same way as `chat`; the no-op reports its waiting as the app reports its model's work.
    """
    _, total, final, _ = timed_request(client, "/noop", "Hi", updates, spacing_s=spacing_s)
    return total - final["latency"]["total_s"]


def timed_request(
    client, api_name: str, prompt: str, max_tokens: int, **extra
) -> tuple[float, float, dict, int]:
    """(seconds to the first streamed update, seconds to the end, final output, updates streamed)."""
    started = time.perf_counter()
    job = client.submit(prompt=prompt, max_tokens=max_tokens, api_name=api_name, **extra)
    next(job)  # the first streamed update: one token
    first = time.perf_counter()
    final = job.result()  # then wait without polling, which would compete for the CPU
    return first - started, time.perf_counter() - started, final, len(job.outputs())
