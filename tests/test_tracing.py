"""Traces as MLflow's own UI reads them: token usage, and a link to the logged model, in a real browser."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time

import mlflow
import pytest
import requests
from playwright.sync_api import expect, sync_playwright

from compare.recorder import Recorder
from compare.service import Comparer
from compare.traces import logged_model_id
from tests.conftest import ARTIFACTS, free_port
from tests.test_browser import CHROMIUM, FLAGS
from wrappers import GenerationOptions
from wrappers.config import Limits, child_env
from wrappers.registry import EXPERIMENT, use_store

SIDES = ("transformers", "onnx")


@pytest.fixture(scope="module")
def traced(backends, config, tmp_path_factory):
    """One comparison, traced by the app's recorder; its traces by side."""
    use_store(config.store_uri, config.artifact_root)
    recorder = Recorder(tmp_path_factory.mktemp("spool"))
    comparer = Comparer(backends, Limits(), recorder)
    messages = [{"role": "user", "content": "What is the capital of Japan?"}]
    *_, results = comparer.compare({side: messages for side in SIDES}, GenerationOptions(), "7" * 32)
    recorder.flush()
    traces = {
        mlflow.get_trace(t).info.tags["side"]: mlflow.get_trace(t) for t in recorder.comparison("7" * 32)[1]
    }
    return results, traces


def test_a_traces_token_usage_is_where_mlflow_reads_it(traced):
    results, traces = traced
    for side in SIDES:
        usage = results[side].usage
        assert traces[side].info.token_usage == {
            "input_tokens": usage.prompt_tokens,
            "output_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        }


def test_each_trace_is_linked_to_its_logged_model(traced):
    results, traces = traced
    for side in SIDES:
        model_id = logged_model_id(results[side].model)
        assert model_id and model_id.startswith("m-")
        assert traces[side].info.trace_metadata["mlflow.modelId"] == model_id
        linked = mlflow.search_traces(model_id=model_id, return_type="list", include_spans=False)
        assert traces[side].info.trace_id in {t.info.trace_id for t in linked}


@contextlib.contextmanager
def mlflow_ui(store_uri: str, data_dir):
    """`mlflow server` on the test store, on loopback; yields its URL."""
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store_uri]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    ARTIFACTS.mkdir(exist_ok=True)
    with (ARTIFACTS / "mlflow-ui.log").open("w") as log:
        server = subprocess.Popen(command, env=child_env(data_dir), stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                with contextlib.suppress(requests.ConnectionError):
                    if requests.get(f"{url}/health", timeout=5).ok:
                        break
                time.sleep(1)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=30)


def _tidy(page) -> None:
    """Dismiss MLflow's first-visit tip and its assistant panel, which cover the view."""
    with contextlib.suppress(Exception):
        page.get_by_role("button", name="Got it").click(timeout=5_000)
    with contextlib.suppress(Exception):
        page.get_by_role("button", name="Close").last.click(timeout=2_000)


def test_mlflow_ui_lists_a_models_traces_and_charts_their_token_usage(traced, config):
    results, _ = traced
    experiment = mlflow.get_experiment_by_name(EXPERIMENT).experiment_id
    model_id = logged_model_id(results["onnx"].model)
    with mlflow_ui(config.store_uri, config.data_dir) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        page.goto(f"{url}/#/experiments/{experiment}/models/{model_id}/traces")
        expect(page.get_by_text("What is the capital of Japan?").first).to_be_visible(timeout=120_000)
        _tidy(page)
        page.screenshot(path=str(ARTIFACTS / "mlflow-model-traces.png"))
        page.goto(f"{url}/#/experiments/{experiment}/overview/usage")
        chart = page.get_by_text("Tokens per Trace")
        expect(chart).to_be_visible(timeout=120_000)
        expect(page.get_by_text("avg per trace").first).to_be_visible(timeout=60_000)  # not "No data"
        _tidy(page)
        page.get_by_text("Token Usage").first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "mlflow-token-usage.png"))
        browser.close()
