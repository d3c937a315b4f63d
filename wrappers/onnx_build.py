"""The ONNX export, built by onnxruntime-genai's own model builder, leanly, in a child process.

Lean: the stock builder turns its whole graph into one protobuf, with every
weight in float32, before it quantizes to int4 (`ir.to_proto` in
`Model.to_nbits`). For Phi-3-mini that is 15 GB on top of the checkpoint,
and the build needs a 21 GB machine. The lean build first streams the
graph's weights, one tensor at a time, into a scratch file beside the output
(onnx-ir's `unload_from_model`), so the protobuf only refers to them and the
builder's quantizer reads each one from the file, memory-mapped, as it
quantizes it. Same builder, same quantizer, same graph and quantized bytes
(tested against the stock build); the cost is the float32 weights on disk
for the length of the build (15 GB for Phi-3-mini), removed afterwards.

The build runs in a child process (`run_step` in `wrappers/child.py`), so
a build that the kernel kills for memory kills only itself.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from wrappers.child import report

SCRATCH_WEIGHTS = "float32-weights.data"  # relative: the quantizer resolves it from the working folder


def build_export(checkpoint: str, precision: str, out_dir: str, options: list[str], lean: bool = True) -> str:
    """Build `checkpoint` to ONNX for the CPU in `out_dir`; return `out_dir`.

    Runs in this process: call it through `wrappers.child.run_step` from the app.
    """
    from onnxruntime_genai.models.builder import create_model, parse_extra_options

    out = Path(out_dir)
    shutil.rmtree(out, ignore_errors=True)
    scratch = out.with_name(out.name + ".cache")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    args = ("", checkpoint, str(out), precision, "cpu", str(scratch))
    report(f"Build: reading {Path(checkpoint).name} into onnxruntime-genai's builder")
    try:
        with _no_host_repository(), _lean_quantization(scratch) if lean else contextlib.nullcontext():
            create_model(*args, **parse_extra_options(*args, options))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    use_all_cores(out / "genai_config.json")
    return str(out)


def build_and_log(
    checkpoint: str,
    precision: str,
    out_dir: str,
    options: list[str],
    pip_requirements: list[str],
    lean: bool = True,
) -> str:
    """Build the export, then log it in the active run; return its URI. One child process for both:
    each child pays seconds of imports."""
    from wrappers.onnx_backend import log_onnx_model

    build_export(checkpoint, precision, out_dir, options, lean)
    report("Logging the export (its input example is stored, not run: the app test-loads it next)")
    return log_onnx_model(out_dir, pip_requirements)


def use_all_cores(genai_config: Path) -> None:
    """Let ONNX Runtime use every core: left unset, it ran on one of two here."""
    config = json.loads(genai_config.read_text())
    options = config["model"]["decoder"].setdefault("session_options", {})
    options["intra_op_num_threads"] = os.cpu_count() or 1
    genai_config.write_text(json.dumps(config, indent=4))


@contextlib.contextmanager
def _no_host_repository() -> Iterator[None]:
    """The builder stamps the export with `git rev-parse HEAD` run beside its own files: in a
    virtualenv inside a git checkout (this app's, or a Space's), that is the checkout's commit, which
    names neither onnxruntime-genai nor the model and makes the same build's bytes differ per commit.
    Without a repository to see, it stamps onnxruntime-genai's own commit."""
    before = os.environ.get("GIT_DIR")
    os.environ["GIT_DIR"] = os.devnull
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("GIT_DIR", None)
        else:
            os.environ["GIT_DIR"] = before


@contextlib.contextmanager
def _lean_quantization(scratch: Path) -> Iterator[None]:
    """Within it, the builder's quantization step reads the weights from a scratch file."""
    import onnx_ir as ir
    from onnxruntime_genai.models import builder

    Model = builder.Model  # the builder imports its classes as `builders.*`, not through this package
    stock, cwd = Model.to_nbits, os.getcwd()

    def to_nbits_from_disk(model):
        report("Build: streaming the float32 weights to a scratch file, then quantizing them")
        ir.external_data.unload_from_model(model.model, scratch, SCRATCH_WEIGHTS)
        gc.collect()  # the checkpoint's tensors were referenced only by the graph's lazy weights
        return stock(model)

    Model.to_nbits = to_nbits_from_disk
    os.chdir(scratch)  # the quantizer opens external data relative to the working folder
    try:
        yield
    finally:
        Model.to_nbits = stock
        os.chdir(cwd)
