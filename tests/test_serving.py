"""Panes on real `mlflow models serve` endpoints on loopback: same answers, failures, replicas."""

from __future__ import annotations

import contextlib
import http.server
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from gradio_client import Client

from compare.service import Comparer
from tests.conftest import ARTIFACTS, app_server, free_port
from ui.api import SIDES
from wrappers import GenerationOptions, build_backends, run
from wrappers.config import Limits

pytestmark = pytest.mark.usefixtures("session_store")  # back to the shared store

PROMPTS = ["What is the capital of Spain?", "What is 7 plus 5?", "Hello"]
MODELS = {"transformers": "models:/tiny-phi3-transformers/1", "onnx": "models:/tiny-phi3-onnx-int4/1"}


@contextlib.contextmanager
def serving(config, model_uri: str, name: str, port: int | None = None):
    """`mlflow models serve` on loopback (local environment manager); yields its URL."""
    port = port or free_port()
    env = os.environ | {
        "MLFLOW_TRACKING_URI": config.store_uri,
        "MLFLOW_REGISTRY_URI": config.store_uri,  # not an earlier test's, which use_store exported
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # for uvicorn
    }
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        model_uri,
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    with (ARTIFACTS / f"serve-{name}.log").open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for_ping(url, process)
            yield url
        finally:
            stop_group(process, url)


def stop_group(process, url: str) -> None:
    """Stop the server and its uvicorn worker, and wait until the port is closed."""
    with contextlib.suppress(ProcessLookupError):  # it may have exited already (and failed the test)
        os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/ping", timeout=1)
        except OSError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def wait_for_ping(url: str, process, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow models serve exited with {process.returncode}")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"{url}/ping", timeout=2)
            return
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer /ping")


@pytest.fixture(scope="module")
def endpoints(config, backends):
    ARTIFACTS.mkdir(exist_ok=True)
    with (
        serving(config, MODELS["transformers"], "transformers") as t,
        serving(config, MODELS["onnx"], "onnx") as o,
    ):
        yield {"transformers": t, "onnx": o}


@pytest.fixture(scope="module")
def remote(config, endpoints):
    remote_config = replace(
        config, transformers_endpoint=endpoints["transformers"], onnx_endpoint=endpoints["onnx"]
    )
    return build_backends(remote_config)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_remote_answers_match_in_process_ones(backends, remote, prompt):
    messages = [{"role": "user", "content": prompt}]
    for side in SIDES:
        here, there = (
            run(backends[side], messages, GenerationOptions()),
            run(remote[side], messages, GenerationOptions()),
        )
        assert there.error is None and there.text == here.text
        assert there.usage.prompt_tokens == here.usage.prompt_tokens
        assert there.latency.network_s is not None and there.latency.network_s < there.latency.total_s
    assert remote["transformers"].title.endswith(remote["transformers"].url)


def test_remote_results_have_the_in_process_shape_through_the_app(config, endpoints):
    env = {
        "TRANSFORMERS_ENDPOINT": endpoints["transformers"],
        "ONNX_ENDPOINT": endpoints["onnx"] + "/invocations",
    }
    with app_server(config.data_dir, "remote-app", env) as (url, _):
        out = Client(url, verbose=False).predict(prompt="What is the capital of Spain?", api_name="/compare")
    for side in SIDES:
        assert (
            out[side]["error"] is None
            and "Madrid" in out[side]["response"]["choices"][0]["message"]["content"]
        )
        assert out[side]["model"]["uri"] == f"{endpoints[side].removesuffix('/')}/invocations"
    assert out["onnx"]["raw"] == {"predictions": "The capital of Spain is Madrid."}


def test_stop_sequences_apply_to_remote_panes(remote):
    result = run(
        remote["transformers"], [{"role": "user", "content": PROMPTS[0]}], GenerationOptions(stop=("Madrid",))
    )
    assert result.text == "The capital of Spain is "


def test_an_endpoint_that_goes_down_shows_an_error_and_recovers_when_back(config, backends):
    port = free_port()
    with serving(config, MODELS["onnx"], "onnx-restart", port) as url:
        pane = build_backends(replace(config, onnx_endpoint=url))["onnx"]
        assert "Madrid" in run(pane, [{"role": "user", "content": PROMPTS[0]}], GenerationOptions()).text
    conversations = {side: [{"role": "user", "content": PROMPTS[0]}] for side in SIDES}
    mixed = {"transformers": backends["transformers"], "onnx": pane}
    *_, down = Comparer(mixed, Limits()).compare(conversations, GenerationOptions(), "2" * 32)
    assert "is not reachable" in down["onnx"].error
    assert "Madrid" in down["transformers"].text  # the other pane keeps working
    with serving(config, MODELS["onnx"], "onnx-restart-2", port):
        assert "Madrid" in run(pane, [{"role": "user", "content": PROMPTS[0]}], GenerationOptions()).text


class RoundRobin(http.server.ThreadingHTTPServer):
    """A tiny load balancer for the test: each request goes to the next replica."""

    def __init__(self, replicas: list[str]):
        self.replicas, self.turn, self.served = replicas, itertools.cycle(replicas), Counter()
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Forward)


class _Forward(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self._forward(None)

    def do_POST(self):
        self._forward(self.rfile.read(int(self.headers["Content-Length"])))

    def _forward(self, body):
        with self.server.lock:
            replica = next(self.server.turn)
            if self.path == "/invocations":
                self.server.served[replica] += 1
        request = urllib.request.Request(
            replica + self.path, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as reply:
            payload = reply.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_three_replicas_behind_a_round_robin_share_thirty_requests(config, endpoints):
    with (
        serving(config, MODELS["onnx"], "onnx-2") as second,
        serving(config, MODELS["onnx"], "onnx-3") as third,
    ):
        balancer = RoundRobin([endpoints["onnx"], second, third])
        threading.Thread(target=balancer.serve_forever, daemon=True).start()
        try:
            pane = build_backends(replace(config, onnx_endpoint=f"http://127.0.0.1:{balancer.server_port}"))[
                "onnx"
            ]
            answers = [
                run(pane, [{"role": "user", "content": PROMPTS[i % 3]}], GenerationOptions()).text
                for i in range(30)
            ]
        finally:
            balancer.shutdown()
    assert all(answers) and "Madrid" in answers[0]
    assert sorted(balancer.served.values()) == [10, 10, 10]
