"""The ONNX exports the benchmarks measure: the builder's export of a checkpoint, built once into a cache.

The suite, its tuning variants and the tests all ask for an export by checkpoint,
precision and builder options; the folder's name says all three, so a second
ask finds the first build.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from wrappers.onnx_backend import build_onnx_export, builder_options
from wrappers.sources import parameter_count

# Up to this size a build takes a second or two: a child process would spend longer on its imports.
IN_PROCESS_PARAMETERS = 50_000_000


def onnx_export(checkpoint: Path, precision: str, cache: Path, options: list[str] | None = None) -> Path:
    """The builder's export of `checkpoint` (the app's options unless given), built once into `cache`."""
    options = builder_options(precision) if options is None else options
    slug = "-".join(option.replace("=", "") for option in options)
    folder = cache / f"{checkpoint.name}-onnx-{precision}-{slug}"
    if not (folder / "genai_config.json").exists():
        if parameter_count(checkpoint) <= IN_PROCESS_PARAMETERS:
            build_in_this_process(checkpoint, precision, folder, options)
        else:  # as the app builds: an out-of-memory kill takes only the build
            build_onnx_export(str(checkpoint), precision, folder, options)
    return folder


def build_in_this_process(checkpoint: Path, precision: str, folder: Path, options: list[str]) -> None:
    """The app's own build step, run here; the builder's chatter goes to a log beside the export."""
    from wrappers.onnx_build import build_export

    folder.parent.mkdir(parents=True, exist_ok=True)
    with (
        folder.with_name(folder.name + ".log").open("w") as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
    ):
        build_export(str(checkpoint), precision, str(folder), options)
