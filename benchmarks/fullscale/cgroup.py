"""A memory cgroup to run a command in, the way a Space's container limits the app.

Needs root and a writable cgroup file system: v1 (`/sys/fs/cgroup/memory/`)
or v2 (`/sys/fs/cgroup/` with the memory controller). A process joins it
before it starts (`join` as a `preexec_fn`), so every process it starts is
limited too.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class MemoryCgroup:
    path: Path
    v1: bool

    def join(self) -> None:
        """Move the calling process into this cgroup (use as a subprocess preexec_fn)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def oom_kills(self) -> int:
        events = self.path / ("memory.oom_control" if self.v1 else "memory.events")
        for line in events.read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return 0

    def peak(self) -> int:
        """The cgroup's high-water mark, page cache included."""
        name = "memory.max_usage_in_bytes" if self.v1 else "memory.peak"
        return int((self.path / name).read_text())


def available() -> bool:
    """Whether this process may create memory cgroups here."""
    v1 = ROOT / "memory"
    target = v1 if v1.is_dir() else ROOT
    return os.geteuid() == 0 and os.access(target, os.W_OK) and _has_memory_controller(target, v1.is_dir())


def _has_memory_controller(target: Path, v1: bool) -> bool:
    if v1:
        return (target / "memory.limit_in_bytes").exists()
    controllers = target / "cgroup.subtree_control"
    return controllers.exists() and "memory" in controllers.read_text().split()


@contextlib.contextmanager
def memory_cgroup(limit_bytes: int, name: str = "phi3") -> Iterator[MemoryCgroup]:
    """A fresh memory cgroup limited to `limit_bytes`, removed afterwards."""
    v1 = (ROOT / "memory").is_dir()
    path = (ROOT / "memory" if v1 else ROOT) / f"{name}-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    try:
        (path / ("memory.limit_in_bytes" if v1 else "memory.max")).write_text(str(limit_bytes))
        if not v1:
            (path / "memory.swap.max").write_text("0")
        yield MemoryCgroup(path, v1)
    finally:
        with contextlib.suppress(OSError):  # still busy: the kernel removes it when its last process ends
            path.rmdir()
