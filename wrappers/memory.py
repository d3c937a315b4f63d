"""The memory each heavy step needs, from measurements, and the check that refuses what would not fit.

Each step's need is a straight line in the model's size (its parameter
count), fitted by `benchmarks/fullscale/memory_fit.py` to the app's own code measured
at several depths of the Phi-3-mini-shaped model. The fits, their points and
the method are in `memory_fit.json` beside this file; docs/fullscale.md has
the figures and checks them at full size.

One-shot steps (logging side (a), building the export) are fitted on their
peak *anonymous* memory, what they allocate: their peak RSS also counts pages
of memory-mapped weight files, which they read once and the kernel drops
under pressure, so they complete in memory cgroups far smaller than their
peak RSS (benchmarks/fullscale/cgroup_check.py shows it). Serving reads every weight
for every token, so there the weights must stay resident: the fit is the
peak RSS while answering the longest prompt, less what the interpreter and
libraries take, which the app holds already. The KV cache is then rescaled
from the tokens the fit held to the longest request the limits allow, by its
exact size per token. A margin and a fixed headroom come on top.

Disk is checked from sizes that are exact rather than fitted: logging side
(a) writes its weights in its dtype; the lean int4 build writes them in
float32 to a scratch file, beside the export.
"""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import psutil

from wrappers.errors import ModelLoadError
from wrappers.host import available_memory

GiB = 2**30
FITS = Path(__file__).with_name("memory_fit.json")
MARGIN = 1.10  # on the fitted line
HEADROOM = GiB // 2  # page cache and allocator slack a step needs beyond its own peak


@functools.cache
def _fit_file() -> dict:
    return json.loads(FITS.read_text())


def fits() -> dict[str, dict]:
    return _fit_file()["steps"]


def fitted(step: str, size: int) -> int:
    """The fitted line of `step` at `size`, without margin (e.g. an export's bytes)."""
    fit = fits()[step]
    return max(int(fit["per_unit"] * size + fit["base"]), 0)


def need(step: str, size: int) -> int:
    """Bytes `step` (a key of memory_fit.json) needs for a model of `size` parameters."""
    return int(fitted(step, size) * MARGIN + HEADROOM)


def serving(side: str, size: int, kv_per_token: int, tokens: int) -> tuple[int, int]:
    """(answering, idle) needs of a loaded side, e.g. "transformers/bfloat16", for requests of
    up to `tokens` (prompt and answer): the fits' KV cache is rescaled from the tokens they were
    measured at, by its exact size per token."""
    loaded = need(f"load_{side}", size)
    cache = kv_per_token * (tokens - _fit_file()["serve_tokens"])
    return max(need(f"serve_{side}", size) + cache, loaded), loaded


def require(needed: int, what: str) -> None:
    """Refuse `what` up front, naming both figures, if `needed` bytes are not free for this process."""
    free = available_memory()
    if needed <= free:
        return
    host = psutil.virtual_memory().available
    where = "" if free >= host else " under its container's memory limit"
    raise ModelLoadError(
        f"{what} needs about {needed / GiB:.1f} GiB of memory (measured; see docs/fullscale.md); this "
        f"process may use {free / GiB:.1f} GiB now{where}. Use a machine with more memory, or see "
        "'What it takes' in docs/real-phi3.md for lighter settings."
    )


def require_disk(needed: int, folder: Path, what: str) -> None:
    """Refuse `what` up front if the file system holding `folder` has not `needed` bytes free."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise ModelLoadError(
            f"{what} needs about {needed / GiB:.1f} GiB of disk; {free / GiB:.1f} GiB is free where the "
            "app keeps its data. Free some space or point --data-dir at a larger disk."
        )


def weight_bytes(parameters: int, dtype: str) -> int:
    """Bytes of `parameters` weights stored in `dtype`.

    >>> weight_bytes(10, "bfloat16")
    20
    """
    return parameters * {"float32": 4, "bfloat16": 2, "float16": 2}[dtype]
