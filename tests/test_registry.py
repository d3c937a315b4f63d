"""Lazy log-or-load: new versions only for new sources, and never a half-logged one."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace

from mlflow import MlflowClient

from wrappers import AppConfig, build_backends
from wrappers.config import ROOT, TINY_CHECKPOINT
from wrappers.models import transformers_spec
from wrappers.registry import log_or_load, use_store


def test_building_the_backends_and_the_app_loads_no_model(tmp_path):
    import app

    config = AppConfig(data_dir=tmp_path)
    backends = build_backends(config)
    app.build_app(backends)
    assert MlflowClient().search_registered_models() == []
    assert not (tmp_path / "artifacts").exists() or not any((tmp_path / "artifacts").rglob("MLmodel"))


def test_changed_checkpoint_registers_a_new_version(tmp_path, capfd):
    checkpoint = tmp_path / "tiny-phi3"
    shutil.copytree(TINY_CHECKPOINT, checkpoint)
    config = AppConfig(checkpoint=checkpoint, data_dir=tmp_path / "data")
    use_store(config.store_uri, config.artifact_root)
    first = log_or_load(transformers_spec(config), tmp_path / "locks", progress=lambda m: None)
    (checkpoint / "README.md").write_text("A changed source checkpoint.\n")
    second = log_or_load(transformers_spec(config), tmp_path / "locks", progress=lambda m: None)
    again = log_or_load(transformers_spec(config), tmp_path / "locks", progress=lambda m: None)
    assert (first.ref.version, second.ref.version, again.ref.version) == ("1", "2", "2")
    assert (first.logged_now, second.logged_now, again.logged_now) == (True, True, False)
    printed = capfd.readouterr()  # a new store, a first and a second version: no library notes
    notes = ("Creating initial MLflow database", "already exists", "registered model", "Created version")
    assert [n for n in notes if n in printed.out + printed.err] == []


def test_a_log_killed_midway_leaves_no_version_and_the_next_start_recovers(tmp_path):
    started = tmp_path / "started"
    script = textwrap.dedent(f"""
        from dataclasses import replace
        from pathlib import Path
        from wrappers import AppConfig
        from wrappers.models import transformers_spec
        from wrappers.registry import log_or_load, use_store
        config = AppConfig(data_dir=Path({str(tmp_path)!r}))
        use_store(config.store_uri, config.artifact_root)
        spec = transformers_spec(config)
        def log(progress):
            Path({str(started)!r}).touch()
            return spec.log(progress)
        log_or_load(replace(spec, registered_name="victim", log=log), Path({str(tmp_path / "locks")!r}))
    """)
    victim = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    deadline = time.monotonic() + 120
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert started.exists(), "the victim never started logging"
    time.sleep(1.0)  # inside mlflow.transformers.log_model
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()

    config = AppConfig(data_dir=tmp_path)
    use_store(config.store_uri, config.artifact_root)
    assert MlflowClient().search_model_versions("name = 'victim'") == []
    loaded = log_or_load(replace(transformers_spec(config), registered_name="victim"), tmp_path / "locks")
    assert (loaded.logged_now, loaded.ref.version) == (True, "1")
    answer = loaded.pyfunc.predict(
        {
            "messages": [{"role": "user", "content": "What is the capital of Spain?"}],
            "max_tokens": 32,
            "top_k": 1,
        }
    )
    assert "Madrid" in answer[0]["choices"][0]["message"]["content"]


def test_another_int4_block_size_is_another_version_built_with_that_block_size(tmp_path):
    import onnx

    from wrappers.models import onnx_spec

    use_store(AppConfig(data_dir=tmp_path).store_uri, tmp_path / "artifacts")
    versions = {}
    for block_size in (32, 128, 32):
        config = AppConfig(data_dir=tmp_path, onnx_block_size=block_size)
        loaded = log_or_load(onnx_spec(config), tmp_path / "locks", progress=lambda m: None)
        versions.setdefault(block_size, set()).add(loaded.ref.version)
        tags = MlflowClient().get_model_version(loaded.ref.name, loaded.ref.version).tags
        assert f"block_size={block_size}" in tags["builder_options"]
    assert versions == {32: {"1"}, 128: {"2"}}
    built = {
        attribute.i
        for model_file in config.build_dir.glob("*/model.onnx")
        for node in onnx.load(str(model_file), load_external_data=False).graph.node
        if node.op_type == "MatMulNBits"
        for attribute in node.attribute
        if attribute.name == "block_size"
    }
    assert built == {32, 128}  # the builder really used each block size
