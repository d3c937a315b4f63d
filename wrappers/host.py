"""What this host offers the models: native 16-bit arithmetic, and the memory this process may use.

Memory: a container (a Hugging Face Space, Docker, Kubernetes) limits a
process through its memory cgroup, which the host's "available" figure does
not show. The memory this process may still use is the smallest of the
host's available memory and, for its cgroup and every parent cgroup with a
limit, the limit minus what the cgroup already holds. Page cache that no
process maps (files just written, such as a logged model's copy) does not
count: the kernel drops it when memory is needed. Mapped files (a loaded
model's weights) do count. Both cgroup v2 and v1 are read.

CPU: 16-bit weights are only fast where the CPU computes them natively
(x86 AVX512-BF16 or AMX for bfloat16, AVX512-FP16 for float16; Arm's
BF16 and half-precision extensions); elsewhere they are emulated, slowly.
"""

from __future__ import annotations

import functools
from pathlib import Path

import psutil

CGROUP_ROOT = Path("/sys/fs/cgroup")
NATIVE_FLAGS = {  # /proc/cpuinfo flags (x86) or Features (Arm) that compute the dtype natively
    "bfloat16": {"avx512_bf16", "amx_bf16", "bf16"},
    "float16": {"avx512_fp16", "amx_fp16", "fphp", "asimdhp"},
}
NO_LIMIT = 1 << 60  # cgroup v1 reports "no limit" as a huge number
V1_CACHE = ("total_cache", "total_mapped_file", "total_shmem")  # memory.stat keys
V2_CACHE = ("file", "file_mapped", "shmem")


def available_memory() -> int:
    """Bytes this process may still allocate: the host's available memory or its cgroup's, if less."""
    return min([psutil.virtual_memory().available, *cgroup_headroom()])


def cgroup_headroom(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> list[int]:
    """Limit minus usage for each limited cgroup this process is in (and their parents); [] if none."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return []
    headroom = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2: one unified hierarchy
            headroom += _headrooms(root, path, "memory.max", "memory.current", V2_CACHE)
        elif "memory" in controllers.split(","):  # cgroup v1: the memory controller's own hierarchy
            headroom += _headrooms(
                root / "memory", path, "memory.limit_in_bytes", "memory.usage_in_bytes", V1_CACHE
            )
    return headroom


def _headrooms(mount: Path, path: str, limit_file: str, usage_file: str, cache: tuple[str, ...]) -> list[int]:
    found = []
    folder = mount / path.lstrip("/")
    while folder.is_relative_to(mount):  # the cgroup, then each parent up to the mount
        limit = _read_int(folder / limit_file)
        if limit is not None and limit < NO_LIMIT:
            usage = _read_int(folder / usage_file) or 0
            found.append(limit - max(usage - _unmapped_cache(folder / "memory.stat", cache), 0))
        if folder == mount:
            break
        folder = folder.parent
    return found


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" (v2) means no limit


def _unmapped_cache(path: Path, keys: tuple[str, str, str]) -> int:
    """Page cache no process maps: (cache, mapped, shared memory) read from memory.stat."""
    try:
        stat = dict(line.split(" ", 1) for line in path.read_text().splitlines() if " " in line)
    except OSError:
        return 0
    cache, mapped, shmem = (int(stat.get(key, 0)) for key in keys)
    return max(cache - mapped - shmem, 0)


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags, as /proc/cpuinfo lists them (empty where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def computes_natively(dtype: str, flags: frozenset[str] | None = None) -> bool:
    """Whether this CPU has native arithmetic for `dtype` (float32 always).

    >>> computes_natively("bfloat16", frozenset({"avx2", "amx_bf16"}))
    True
    >>> computes_natively("bfloat16", frozenset({"avx2"}))
    False
    """
    if dtype == "float32":
        return True
    flags = cpu_flags() if flags is None else flags
    return bool(NATIVE_FLAGS.get(dtype, set()) & flags)


def effective_dtype(requested: str, stored: str, flags: frozenset[str] | None = None) -> str:
    """The dtype side (a) runs in: `requested`, or for "auto" the checkpoint's `stored` dtype where
    this CPU computes it natively, else float32.

    >>> effective_dtype("auto", "bfloat16", frozenset({"amx_bf16"}))
    'bfloat16'
    >>> effective_dtype("auto", "bfloat16", frozenset({"avx2"}))
    'float32'
    >>> effective_dtype("float16", "bfloat16")
    'float16'
    """
    if requested != "auto":
        return requested
    return stored if stored in NATIVE_FLAGS and computes_natively(stored, flags) else "float32"
