"""Shared fixtures: one real MLflow store with the tiny models logged once, and a real app server."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wrappers import AppConfig, build_backends
from wrappers.config import ROOT, TINY_CHECKPOINT, Limits, child_env
from wrappers.registry import use_store

ARTIFACTS = ROOT / "test-artifacts"  # screenshots and logs kept by CI

# The slowest files first, slowest at the top: their time in a run of the whole suite on 7 December
# 2026 (see "The test suite" in docs/performance.md), which also counts the session's store and
# server against the first file of each worker that needs them. scripts/test.sh runs two workers
# with `--dist loadfile --no-loadscope-reorder`, so xdist hands out the files in this order: the long
# ones start at once and the many short ones fill in at the end, where a long file handed out last
# kept one worker busy while the other sat idle. Files not listed follow, in the usual order.
SLOWEST_FILES = (
    "tests/test_generalization.py",  # every held-out phrasing, on both sides
    "tests/test_reliability.py",  # two processes logging the models at once
    "tests/test_space.py",  # three app starts, two of them logging and building from scratch
    "tests/test_serving.py",
    "tests/test_load.py",
    "tests/test_registry.py",
    "tests/test_sources.py",
    "tests/test_fullscale.py",
    "tests/test_interrupted.py",
    "tests/test_memory.py",
    "tests/test_bounds.py",
    "tests/test_records.py",
    "tests/test_chat_ui.py",
    "tests/test_benchmarks.py",
    "tests/test_evaluation.py",
    "tests/test_votes_browser.py",
    "tests/test_page_truth.py",
    "tests/test_wrappers.py",
    "tests/test_pane_speed.py",
    "tests/test_tracing.py",
    "tests/test_tiny_model.py",
    "tests/test_fair_queue.py",
    "tests/test_precision.py",
    "tests/test_mistakes_browser.py",
    "tests/test_fidelity.py",
    "tests/test_text_stays_text.py",
    "tests/test_fuzz.py",
    "tests/test_arena.py",
)


def pytest_collection_modifyitems(config, items):
    """Put the files of SLOWEST_FILES first, in its order; a file's own tests keep theirs."""
    rank = {path: place for place, path in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # a stable sort


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, driven by Playwright, for a module's page tests."""
    from playwright.sync_api import sync_playwright

    from tests.test_browser import CHROMIUM, FLAGS  # it imports this module: imported when used

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="session")
def config(store_dir) -> AppConfig:
    return AppConfig(checkpoint=TINY_CHECKPOINT, data_dir=store_dir)


@pytest.fixture
def session_store(config):
    """MLflow on the shared store again: other tests point it at stores of their own."""
    use_store(config.store_uri, config.artifact_root)


@pytest.fixture(scope="session")
def backends(config):
    """Both wrappers of the tiny model, logged and registered on first use."""
    pair = build_backends(config, progress=lambda message: None)
    for backend in pair.values():
        backend.model_ref()
    return pair


@pytest.fixture(scope="session")
def export_cache(tmp_path_factory) -> Path:
    """ONNX exports of the tiny model built once for the session, by the benchmarks' `onnx_export`
    (in this process: a child would spend longer on its imports than on the build)."""
    return tmp_path_factory.mktemp("exports")


@pytest.fixture(scope="session")
def fp32_backends(config, backends):
    """The same store, with the ONNX side exported in fp32 for token parity."""
    fp32 = AppConfig(checkpoint=config.checkpoint, data_dir=config.data_dir, onnx_precision="fp32")
    pair = build_backends(fp32, progress=lambda message: None)
    pair["onnx"].model_ref()
    return pair


def patient_limits(**changes) -> Limits:
    """The app's limits with 10 minutes per request, for tests whose subject is not the time limit.

    A request's expected time is its worst case (every allowed token), which a machine shared
    with other jobs can push past the default 2 minutes even on the tiny model; the refusal
    itself is tested in test_time_limits.py.
    """
    return Limits(request_timeout_s=600.0, **changes)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_name(name: str) -> str:
    """`name`, made this test worker's own (pytest-xdist runs several at once)."""
    return name + (f"-{os.environ['PYTEST_XDIST_WORKER']}" if "PYTEST_XDIST_WORKER" in os.environ else "")


@contextlib.contextmanager
def app_server(store_dir: Path, name: str, extra_env: dict[str, str] | None = None, auth=None):
    """Run `python app.py` on loopback; yield (url, process) once both models answer."""
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    name = worker_name(name)
    temp = store_dir.parent / f"tmp-{name}"  # its own temporary files, apart from other test workers'
    temp.mkdir(exist_ok=True)
    env = child_env(store_dir, GRADIO_SERVER_PORT=str(port), TMPDIR=str(temp), **(extra_env or {}))
    with (ARTIFACTS / f"{name}.log").open("w") as log:
        process = subprocess.Popen([sys.executable, str(ROOT / "app.py")], env=env, stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}/"
        try:
            wait_until_ready(url, process, name, auth)
            yield url, process
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture(scope="session")
def server_process(store_dir, backends):
    """The app on the store the tests already logged into.

    Its API streams every token (no pacing), so the tests can watch a tiny model's short answers stream.
    It trusts loopback as its front proxy, so a test can be many visitors, each naming its own address
    in X-Forwarded-For (benchmarks.public_space.visitor); 127.0.0.2 is an untrusted peer.
    Its time limit is 10 minutes: a request's expected time is its worst case (every allowed token),
    which a machine shared with other jobs can push past 2 minutes even for the tiny model; the
    refusal itself is tested in test_time_limits.py.
    """
    env = {
        "PHI3_STREAM_INTERVAL_S": "0",
        "PHI3_TRUSTED_PROXIES": "127.0.0.1",
        "PHI3_REQUEST_TIMEOUT_S": "600",
    }
    with app_server(store_dir, "server", env) as handle:
        yield handle


@pytest.fixture(scope="session")
def server(server_process) -> str:
    return server_process[0]


@pytest.fixture(scope="module")
def client(server):
    """A gradio_client session for the module (a test that needs a fresh one defines its own)."""
    from gradio_client import Client

    return Client(server, verbose=False)


def wait_until_ready(url: str, process: subprocess.Popen, name: str, auth=None, timeout: float = 180) -> None:
    """Wait until the app answers through the API with both models loaded."""
    from gradio_client import Client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}; see {ARTIFACTS / name}.log")
        try:
            Client(url, auth=auth, verbose=False).predict(prompt="Hi", max_tokens=1, api_name="/compare")
            return
        except Exception:
            time.sleep(1)
    raise TimeoutError(f"app.py did not answer at {url} within {timeout} s")


def raw_call(url: str, api_name: str, body: str, timeout: float = 120) -> tuple[str, object]:
    """POST a JSON body exactly as given (gradio_client cannot send everything JSON can) to
    /gradio_api/call/<api_name>; return the stream's last event and its data ("complete" or "error")."""
    import json

    import httpx

    posted = httpx.post(
        f"{url}gradio_api/call/{api_name}",
        content=body.encode(),
        headers={"Content-Type": "application/json"},
        timeout=timeout,
    )
    posted.raise_for_status()
    event, data = None, None
    with httpx.stream(
        "GET", f"{url}gradio_api/call/{api_name}/{posted.json()['event_id']}", timeout=timeout
    ) as r:
        for line in r.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data = json.loads(line.split(":", 1)[1])
    return event, data
