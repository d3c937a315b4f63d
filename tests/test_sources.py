"""Model sources: presets, Hub repos, local folders, builds, and the ways they fail.

No test here needs network. A Hub source is served from a Hugging Face cache
folder laid out as huggingface_hub lays it out; the real Hub presets are
checked to fail fast and clearly, as they must on this offline machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from benchmarks.exports import onnx_export
from wrappers import AppConfig, GenerationOptions, build_backends, run
from wrappers.config import ROOT, TINY_CHECKPOINT, child_env, load_config
from wrappers.errors import ModelLoadError
from wrappers.models import onnx_spec, transformers_spec
from wrappers.registry import log_or_load, use_store
from wrappers.sources import INT4_CPU, PRESETS, Source, parse_source, resolve

SPAIN = [{"role": "user", "content": "What is the capital of Spain?"}]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def int4_export(tmp_path_factory, export_cache) -> Path:
    """A ready-made onnxruntime-genai folder, as a published ONNX repo holds one."""
    built = onnx_export(TINY_CHECKPOINT, "int4", export_cache)
    return shutil.copytree(built, tmp_path_factory.mktemp("onnx") / "cpu-int4-tiny")


def add_to_hub_cache(cache: Path, repo: str, files: Path, subfolder: str = "") -> Path:
    """Place `files` in `cache` as huggingface_hub stores a downloaded snapshot of `repo`."""
    repo_dir = cache / f"models--{repo.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(COMMIT)
    snapshot = repo_dir / "snapshots" / COMMIT
    shutil.copytree(files, snapshot / subfolder if subfolder else snapshot)
    return snapshot


def log_only(data_dir: Path, *flags: str, **env: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "app.py"), "--log-only", *flags]
    env = child_env(data_dir, **env)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def registered(data_dir: Path) -> dict[str, dict[str, str]]:
    use_store(AppConfig(data_dir=data_dir).store_uri, data_dir / "artifacts")
    return {v.name: v.tags for v in MlflowClient().search_model_versions()}


def test_presets_from_flag_and_environment():
    assert load_config([]).sources == (Source("local", str(TINY_CHECKPOINT)), Source("build"))
    from_flag = load_config(["--preset", "phi3-mini-4k"])
    for config in (from_flag, load_config([], {"PHI3_PRESET": "phi3-mini-4k"})):
        assert config.model_prefix == "phi3-mini-4k"
        assert config.sources == (
            Source("hub", "microsoft/Phi-3-mini-4k-instruct"),
            Source("hub", "microsoft/Phi-3-mini-4k-instruct-onnx", subfolder=INT4_CPU),
        )
    assert PRESETS["phi3-mini-128k"].onnx.location == "microsoft/Phi-3-mini-128k-instruct-onnx"


def test_sources_per_side_override_the_preset(tmp_path):
    config = load_config(
        ["--preset", "phi3-mini-4k", "--transformers-source", str(tmp_path), "--onnx-source", "build"]
    )
    assert config.sources == (Source("local", str(tmp_path)), Source("build"))
    assert config.model_prefix == tmp_path.name.lower()
    hub = load_config(["--transformers-source", "me/my-phi3", "--transformers-revision", "v2"])
    assert hub.sources[0] == Source("hub", "me/my-phi3", "v2") and hub.model_prefix == "me--my-phi3"
    assert parse_source("hub:me/x-onnx:cpu/int4") == Source("hub", "me/x-onnx", None, "cpu/int4")


def test_local_folders_on_both_sides_answer_and_are_tagged(tmp_path, int4_export):
    checkpoint = shutil.copytree(TINY_CHECKPOINT, tmp_path / "my-phi3")
    config = load_config(
        ["--transformers-source", str(checkpoint), "--onnx-source", str(int4_export)],
        {"PHI3_DATA_DIR": str(tmp_path / "data")},
    )
    backends = build_backends(config, progress=lambda message: None)
    for backend in backends.values():
        assert "Madrid" in run(backend, SPAIN, GenerationOptions(max_tokens=16)).text
    tags = registered(tmp_path / "data")
    assert tags["my-phi3-transformers"]["source"] == str(checkpoint)
    assert tags["my-phi3-onnx"]["source"] == str(int4_export)
    assert tags["my-phi3-onnx"]["precision"] == "int4"  # as the published folder's name says
    assert {t["revision"] for t in tags.values()} == {"local"}


def test_hub_sources_from_the_cache_are_pinned_to_their_commit_and_survive_losing_it(tmp_path, int4_export):
    cache = tmp_path / "hub"
    add_to_hub_cache(cache, "me/tiny-phi3", TINY_CHECKPOINT)
    add_to_hub_cache(cache, "me/tiny-phi3-onnx", int4_export, subfolder="cpu-int4")
    flags = ("--transformers-source", "me/tiny-phi3", "--onnx-source", "hub:me/tiny-phi3-onnx:cpu-int4")

    first = log_only(tmp_path / "data", *flags, HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1")
    assert first.returncode == 0, first.stdout + first.stderr
    tags = registered(tmp_path / "data")
    assert tags["me--tiny-phi3-transformers"]["source"] == "hub:me/tiny-phi3"
    assert tags["me--tiny-phi3-onnx"]["source"] == "hub:me/tiny-phi3-onnx:cpu-int4"
    assert {t["revision"] for t in tags.values()} == {COMMIT}

    # Pre-logged, the store alone is enough: the Hugging Face cache can go.
    shutil.rmtree(cache)
    again = log_only(tmp_path / "data", *flags, HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Logging" not in again.stdout and again.stdout.count("ready: models:/") == 2

    elsewhere = log_only(tmp_path / "other", *flags, HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1")
    assert elsewhere.returncode == 1
    assert "hf download me/tiny-phi3-onnx --include 'cpu-int4/*'" in elsewhere.stdout


def test_a_hub_preset_offline_fails_fast_naming_what_is_missing(tmp_path):
    started = time.monotonic()
    result = log_only(tmp_path / "data", "--preset", "phi3-mini-4k", HF_HUB_CACHE=str(tmp_path / "empty"))
    elapsed = time.monotonic() - started
    print(f"offline Hub preset: exit {result.returncode} after {elapsed:.1f} s, start-up included")
    assert result.returncode == 1
    assert "hf download microsoft/Phi-3-mini-4k-instruct" in result.stdout
    assert f"hf download microsoft/Phi-3-mini-4k-instruct-onnx --include '{INT4_CPU}/*'" in result.stdout
    failed = [line for line in result.stdout.splitlines() if "failed:" in line]
    assert len(failed) == 2
    assert elapsed < 30  # the app's imports take a few seconds; the Hub check itself is 3 s at most
    assert registered(tmp_path / "data") == {}


def test_the_hub_check_itself_takes_seconds():
    started = time.monotonic()
    with pytest.raises(ModelLoadError, match="Hugging Face cache"):
        resolve(Source("hub", "microsoft/surely-not-cached-here"), "config.json")
    assert time.monotonic() - started < 10


def test_wrong_folders_get_a_one_line_message_naming_the_path(tmp_path):
    cases = [
        (Source("local", str(tmp_path / "nowhere")), "config.json", "Model folder not found"),
        (Source("local", str(TINY_CHECKPOINT)), "genai_config.json", "has no genai_config.json"),
        (Source("local", str(tmp_path)), "config.json", "not a Hugging Face checkpoint"),
    ]
    for source, needs, expected in cases:
        with pytest.raises(ModelLoadError) as error:
            resolve(source, needs)
        message = str(error.value)
        assert expected in message and source.location in message and "\n" not in message


def test_an_onnx_folder_without_genai_config_breaks_only_its_pane(tmp_path):
    config = load_config(["--onnx-source", str(TINY_CHECKPOINT)], {"PHI3_DATA_DIR": str(tmp_path)})
    with pytest.raises(ModelLoadError, match="genai_config.json"):
        onnx_spec(config)
    assert transformers_spec(config).registered_name == "tiny-phi3-transformers"


def test_a_model_too_big_for_memory_is_refused_before_loading(tmp_path):
    checkpoint = shutil.copytree(TINY_CHECKPOINT, tmp_path / "huge")
    with (checkpoint / "model-00002-of-00002.safetensors").open("wb") as f:
        os.truncate(f.fileno(), 200 * 2**30)  # sparse: 200 GiB on paper, nothing on disk
    config = AppConfig(checkpoint=checkpoint, data_dir=tmp_path / "data")
    use_store(config.store_uri, config.artifact_root)
    started = time.monotonic()
    with pytest.raises(ModelLoadError, match=r"needs about \d{3}\.\d GiB of memory"):
        log_or_load(transformers_spec(config), tmp_path / "locks")
    assert time.monotonic() - started < 5  # refused from file sizes, not by reading them
    with pytest.raises(ModelLoadError, match="GiB of memory"):
        onnx_spec(config)  # the builder would load it too
    assert MlflowClient().search_registered_models() == []


def test_the_int4_block_size_comes_from_flag_or_environment():
    assert load_config([], env={}).onnx_block_size == 32
    assert load_config(["--onnx-block-size", "128"], env={}).onnx_block_size == 128
    assert load_config([], env={"PHI3_ONNX_BLOCK_SIZE": "64"}).onnx_block_size == 64
    for argv, env in ((["--onnx-block-size", "100"], {}), ([], {"PHI3_ONNX_BLOCK_SIZE": "big"})):
        with pytest.raises(SystemExit):
            load_config(argv, env=env)
