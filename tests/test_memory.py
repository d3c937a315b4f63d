"""Memory that is measured, not guessed: what a step needs, what this process may use, and refusals
that come up front, in a real memory cgroup, instead of the out-of-memory killer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import onnx
import onnxruntime_genai
import psutil
import pytest

from benchmarks.fullscale import cgroup
from benchmarks.shaped_model import build_shaped_model
from wrappers import memory
from wrappers.child import run_step
from wrappers.config import ROOT, TINY_CHECKPOINT, child_env
from wrappers.errors import ModelLoadError
from wrappers.host import available_memory, cgroup_headroom
from wrappers.onnx_backend import build_onnx_export, builder_options
from wrappers.sources import kv_bytes_per_token, parameter_count

GiB = 2**30
needs_cgroups = pytest.mark.skipif(not cgroup.available(), reason="needs root and a writable memory cgroup")


def test_cgroup_v2_limit_minus_usage_is_the_headroom(tmp_path):
    group = tmp_path / "sys" / "app.slice" / "space"
    group.mkdir(parents=True)
    (group / "memory.max").write_text("4294967296\n")
    (group / "memory.current").write_text(str(3 * GiB))
    # 1.5 GiB of page cache, of which 0.5 GiB is mapped (a loaded model's weights): 1 GiB can be dropped
    (group / "memory.stat").write_text(f"anon 100\nfile {3 * GiB // 2}\nfile_mapped {GiB // 2}\nshmem 0\n")
    (tmp_path / "sys" / "app.slice" / "memory.max").write_text("max\n")  # a parent without a limit
    procs = tmp_path / "cgroup"
    procs.write_text("0::/app.slice/space\n")
    assert cgroup_headroom(tmp_path / "sys", procs) == [2 * GiB]


def test_cgroup_v1_limits_of_the_group_and_its_parents_all_count(tmp_path):
    memory_root = tmp_path / "sys" / "memory"
    child = memory_root / "outer" / "inner"
    child.mkdir(parents=True)
    groups = ((child, 8 * GiB, GiB), (child.parent, 3 * GiB, 2 * GiB), (memory_root, 1 << 62, 0))
    for folder, limit, usage in groups:
        (folder / "memory.limit_in_bytes").write_text(str(limit))
        (folder / "memory.usage_in_bytes").write_text(str(usage))
        (folder / "memory.stat").write_text("total_cache 0\ntotal_mapped_file 0\ntotal_shmem 0\n")
    procs = tmp_path / "cgroup"
    procs.write_text("12:pids:/outer/inner\n9:memory:/outer/inner\n")
    assert sorted(cgroup_headroom(tmp_path / "sys", procs)) == [GiB, 7 * GiB]


def test_every_step_has_a_fitted_need_that_grows_with_what_it_holds():
    fits = memory.fits()
    for step, fit in fits.items():
        assert len(fit["points"]) >= 2, step  # fitted to two sizes or more
        assert fit["per_unit"] > -0.01, step  # flat steps (logging bfloat16 streams) fit a slope of noise
    # Steps that hold the weights in memory grow with them; float32 twice as fast as bfloat16.
    for step in (
        "log_transformers/float32",
        "build_onnx/int4",
        "serve_transformers/bfloat16",
        "serve_onnx/int4",
    ):
        assert fits[step]["per_unit"] > 0, step
    per = {d: fits[f"serve_transformers/{d}"]["per_unit"] for d in ("bfloat16", "float32")}
    assert per["float32"] > 1.5 * per["bfloat16"]
    small, large = (memory.need("serve_transformers/bfloat16", n) for n in (10**6, 4 * 10**9))
    assert 0 < small < large


def test_the_kv_cache_is_sized_from_the_models_shape():
    per_token = 2 * 4 * 4 * 32 * 4  # keys and values x 4 layers x 4 KV heads x 32 per head x float32
    assert kv_bytes_per_token(TINY_CHECKPOINT) == per_token
    assert kv_bytes_per_token(TINY_CHECKPOINT, "bfloat16") == per_token // 2


def test_serving_needs_follow_the_longest_request_the_limits_allow():
    size, kv = 4 * 10**9, 400_000
    short, _ = memory.serving("transformers/bfloat16", size, kv, tokens=1024)
    long, idle = memory.serving("transformers/bfloat16", size, kv, tokens=4096)
    assert long - short == (4096 - 1024) * kv
    assert idle < short  # answering holds more than sitting loaded


def test_a_step_that_does_not_fit_is_refused_naming_both_figures():
    free = available_memory()
    message = r"needs about \d+\.\d GiB of memory.*may use \d+\.\d GiB"
    with pytest.raises(ModelLoadError, match=message) as error:
        memory.require(free + 10 * GiB, "Building the export")
    assert "Building the export" in str(error.value)
    memory.require(GiB // 4, "a small step")  # fits: no error


@needs_cgroups
def test_a_containers_limit_is_what_the_check_sees():
    """In a 1 GiB cgroup on a 24 GB machine, the check sees 1 GiB, not the host's free memory."""
    script = "from wrappers.host import available_memory; print(available_memory())"
    with cgroup.memory_cgroup(GiB, "test") as group:
        out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                             preexec_fn=group.join, check=True)  # fmt: skip
    assert 0.5 * GiB < int(out.stdout) < GiB < psutil.virtual_memory().available


@needs_cgroups
def test_the_app_refuses_up_front_in_a_container_too_small_and_is_never_oom_killed(tmp_path):
    """app.py --log-only in a cgroup that holds the app but not the logging step: exit 1, a message."""
    need = memory.need("log_transformers/float32", parameter_count(TINY_CHECKPOINT))
    limit = need - GiB // 4
    with cgroup.memory_cgroup(limit, "test") as group:
        out = subprocess.run(
            [sys.executable, str(ROOT / "app.py"), "--log-only"], cwd=ROOT, env=child_env(tmp_path / "data"),
            capture_output=True, text=True, preexec_fn=group.join, timeout=300,
        )  # fmt: skip
        assert group.oom_kills() == 0
    assert out.returncode == 1, out.stdout[-2000:]
    assert "needs about" in out.stdout and "under its container's memory limit" in out.stdout


def test_a_build_killed_by_a_signal_is_reported_and_the_app_lives_on(tmp_path):
    def kill_the_child():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            builds = [c for c in psutil.Process().children() if "wrappers.child" in " ".join(c.cmdline())]
            if builds:
                time.sleep(1.0)  # let it start working
                os.kill(builds[0].pid, signal.SIGKILL)
                return
            time.sleep(0.05)

    threading.Thread(target=kill_the_child, daemon=True).start()
    message = r"The int4 ONNX build was killed \(SIGKILL\).*out-of-memory killer.*after \d+ s\. "
    message += "The app is unharmed"
    with pytest.raises(ModelLoadError, match=message):
        build_onnx_export(str(TINY_CHECKPOINT), "int4", tmp_path / "out", progress=lambda m: None)


def test_the_lean_build_is_the_builders_own_export_byte_for_byte(tmp_path_factory):
    """On a 2-layer Phi-3-mini-shaped model in bfloat16: the same graph and the same quantized
    bytes as the stock build, for a fraction of its memory."""
    checkpoint = build_shaped_model(2, tmp_path_factory.mktemp("shaped") / "shaped-2", dtype="bfloat16")
    runs = {}
    for lean in (False, True):
        out = tmp_path_factory.mktemp("export") / ("lean" if lean else "stock")
        kwargs = {"checkpoint": str(checkpoint), "precision": "int4", "out_dir": str(out), "lean": lean,
                  "options": builder_options("int4")}  # fmt: skip
        runs[lean] = (out, run_step("build_onnx", kwargs, "build", lambda m: None, measure=True))
    (stock, stock_run), (lean, lean_run) = runs[False], runs[True]
    for name in ("model.onnx", "model.onnx.data", "genai_config.json"):
        assert (stock / name).read_bytes() == (lean / name).read_bytes(), name
    # stamped with onnxruntime-genai's commit, not the commit of the checkout the venv sits in
    stamp = onnx.load(str(lean / "model.onnx"), load_external_data=False).producer_version
    assert stamp == f"{onnxruntime_genai.__version__}+{onnxruntime_genai.__commit__[:7]}"
    lean_mib, stock_mib = lean_run.peak_anon / 2**20, stock_run.peak_anon / 2**20
    print(f"\nanonymous peak: lean {lean_mib:.0f} MiB, stock {stock_mib:.0f} MiB")
    assert lean_run.peak_anon < 0.5 * stock_run.peak_anon
    assert not list(lean.parent.glob("*.cache"))  # the scratch weights are gone


def test_the_fit_file_says_how_it_was_made():
    fit = json.loads(Path(memory.FITS).read_text())
    assert "peak" in fit["method"] and fit["measured"]
    layers = {row["layers"] for row in fit["rows"]}
    assert len(layers) >= 2
