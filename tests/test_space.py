"""A Space keeps its records: persistent storage, a remote tracking server, and a notice when neither.

The app runs as on a Hugging Face Space (SPACE_ID set). The Space's persistent storage is a temporary
folder named by PHI3_PERSISTENT_DIR (a Space mounts it at /data); the tracking server is a real
`mlflow server` process on loopback that serves the artifacts itself. A restart is a new process on a
fresh local data folder: only what the persistent folder or the server holds is left.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from mlflow import MlflowClient
from playwright.sync_api import expect

from tests.conftest import ARTIFACTS, app_server, free_port, worker_name
from tests.test_browser import browser_page
from wrappers import load_config
from wrappers.config import ROOT, child_env
from wrappers.registry import EXPERIMENT

SPACE = {"SPACE_ID": "someone/phi3-compare", "GRADIO_SERVER_NAME": "127.0.0.1"}  # a Space serves on 0.0.0.0
NAMES = ("tiny-phi3-onnx-int4", "tiny-phi3-transformers")


def test_where_the_state_goes_on_a_space(tmp_path):
    mount, absent = tmp_path / "data", tmp_path / "no-persistent-storage"
    mount.mkdir()
    kept = load_config([], SPACE | {"PHI3_PERSISTENT_DIR": str(mount)})
    assert kept.data_dir == mount / "phi3-compare"
    assert kept.store_uri == f"sqlite:///{mount / 'phi3-compare' / 'mlflow.db'}"
    for folder in (kept.artifact_root, kept.spool_dir, kept.hub_cache):
        assert folder.is_relative_to(mount), folder
    assert not kept.build_dir.is_relative_to(mount)  # a build's 19 GB of scratch: on the local disk
    assert kept.storage_notice is None
    assert load_config([], SPACE | {"PHI3_PERSISTENT_DIR": str(mount), "HF_HOME": "/x"}).hub_cache is None

    wiped = load_config([], SPACE | {"PHI3_PERSISTENT_DIR": str(absent)})
    assert wiped.data_dir == ROOT / "data" and wiped.hub_cache is None
    assert "persistent storage" in wiped.storage_notice and "MLFLOW_TRACKING_URI" in wiped.storage_notice
    outside = SPACE | {"PHI3_PERSISTENT_DIR": str(mount), "PHI3_DATA_DIR": str(tmp_path / "x")}
    assert load_config([], outside).storage_notice is not None  # a data folder off the mount is wiped
    inside = SPACE | {"PHI3_PERSISTENT_DIR": str(mount), "PHI3_DATA_DIR": str(mount / "x")}
    assert load_config([], inside).storage_notice is None

    server = "https://user:secret@mlflow.example.org:5000/ml"
    for remote in (
        load_config([], SPACE | {"PHI3_PERSISTENT_DIR": str(absent), "MLFLOW_TRACKING_URI": server}),
        load_config(["--tracking-uri", server], SPACE | {"PHI3_PERSISTENT_DIR": str(absent)}),
    ):
        assert remote.remote_store and remote.storage_notice is None and remote.store_uri == server
        where = remote.records_location
        assert "secret" not in where and "mlflow.example.org:5000" in where

    off_space = load_config([], {"PHI3_PERSISTENT_DIR": str(mount)})  # never a notice, nor /data, off a Space
    assert off_space.data_dir == ROOT / "data" and off_space.storage_notice is None


def test_a_space_without_persistent_storage_says_so_in_the_log_and_at_the_top_of_the_page(
    store_dir, backends, tmp_path
):
    env = SPACE | {"PHI3_PERSISTENT_DIR": str(tmp_path / "no-persistent-storage")}
    with app_server(store_dir, "space-wiped", env) as (url, _), browser_page(url, 900) as page:
        assert "storage-notice" in httpx.get(f"{url}config").text  # what the restart tests check is absent
        notice = page.locator("#storage-notice")
        expect(notice).to_contain_text("keeps no records across restarts", timeout=30_000)
        expect(notice).to_contain_text("enable persistent storage")
        assert notice.bounding_box()["y"] < page.locator("#startup-status").bounding_box()["y"]
        page.screenshot(path=ARTIFACTS / f"{worker_name('space-notice')}.png")
    log = (ARTIFACTS / f"{worker_name('space-wiped')}.log").read_text(errors="replace")
    assert "WARNING: This Space keeps no records across restarts" in log


def test_persistent_storage_keeps_the_models_and_the_records_across_a_restart(tmp_path):
    mount = tmp_path / "data"
    mount.mkdir()
    env = SPACE | {"PHI3_PERSISTENT_DIR": str(mount), "PHI3_DATA_DIR": ""}  # the default: /data's
    with app_server(tmp_path / "disk-1", "space-persistent", env) as (url, _):
        comparison = _compare(url)
        assert "storage-notice" not in httpx.get(f"{url}config").text
        store = f"sqlite:///{mount / 'phi3-compare' / 'mlflow.db'}"
        assert len(_traces(store, comparison)) == 2
    log = (ARTIFACTS / f"{worker_name('space-persistent')}.log").read_text(errors="replace")
    assert log.count("(1/3) Logging") == 2 and "WARNING" not in log
    assert any((mount / "phi3-compare" / "artifacts").rglob("model.onnx"))
    assert any((mount / "phi3-compare" / "spool.sqlite").glob("*.sqlite"))

    again = _log_only(tmp_path / "disk-2", env)  # a new process; the wiped disk is another folder
    assert again.count("(1/1) Loading") == 2 and "Logging" not in again, again


@pytest.fixture
def tracking_server(tmp_path):
    """`mlflow server` on loopback, serving the artifacts from a folder of its own."""
    port, log = free_port(), ARTIFACTS / f"{worker_name('mlflow-server')}.log"
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}"]
    command += ["--artifacts-destination", str(tmp_path / "server-artifacts")]
    with log.open("w") as out:
        env = child_env(tmp_path / "unused", MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")  # no job runner
        process = subprocess.Popen(command, stdout=out, stderr=out, env=env)
        try:
            _wait_for_health(f"http://127.0.0.1:{port}", process)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=30)


def test_a_tracking_server_keeps_the_models_and_the_records_across_a_restart(tracking_server, tmp_path):
    env = SPACE | {"PHI3_PERSISTENT_DIR": str(tmp_path / "none"), "MLFLOW_TRACKING_URI": tracking_server}
    first = _log_only(tmp_path / "disk-1", env)
    assert first.count("(1/3) Logging") == 2 and "WARNING" not in first, first
    assert "View run" not in first and "Downloading artifacts" not in first  # MLflow's own chatter
    assert not any((tmp_path / "disk-1").rglob("MLmodel"))  # the logged models went to the server
    assert len(list((tmp_path / "server-artifacts").rglob("MLmodel"))) >= 2
    for name in NAMES:
        (version,) = MlflowClient(tracking_server).search_model_versions(f"name = '{name}'")
        assert version.source.startswith("models:/") or version.source.startswith("mlflow-artifacts:")

    with app_server(tmp_path / "disk-2", "space-remote", env) as (url, _):  # a restart on a fresh disk
        comparison = _compare(url)
        assert len(_traces(tracking_server, comparison)) == 2
    log = (ARTIFACTS / f"{worker_name('space-remote')}.log").read_text(errors="replace")
    assert log.count("(1/1) Loading") == 2 and "Logging" not in log and "WARNING" not in log


def _compare(url: str) -> str:
    client = Client(url, verbose=False)
    return client.predict(prompt="What is the capital of Spain?", max_tokens=8, api_name="/compare")[
        "comparison_id"
    ]


def _traces(tracking_uri: str, comparison_id: str, timeout: float = 60) -> list:
    """The comparison's traces once both are written (the app writes them between generations)."""
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    deadline, found = time.monotonic() + timeout, []
    while time.monotonic() < deadline and len(found) < 2:
        time.sleep(0.5)
        found = client.search_traces([experiment], f"tags.comparison_id = '{comparison_id}'")
    return list(found)


def _log_only(data_dir: Path, env: dict[str, str]) -> str:
    """`app.py --log-only` on `data_dir`; its output (it must exit 0)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "--log-only"],
        env=child_env(data_dir, **env),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def _wait_for_health(url: str, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise TimeoutError(f"mlflow server did not answer at {url} within {timeout} s")


def test_a_space_installs_the_cpu_build_of_the_pinned_torch():
    """pre-requirements.txt (read by a Space only) pins the CPU build of requirements.txt's torch."""
    required = (ROOT / "requirements.txt").read_text().splitlines()
    before = (ROOT / "pre-requirements.txt").read_text().splitlines()
    (torch,) = [line for line in required if line.startswith("torch==")]
    assert f"{torch}+cpu" in before and "--extra-index-url https://download.pytorch.org/whl/cpu" in before
    assert not [line for line in required if line.startswith("-")]  # no index where start.sh installs
