"""The machine's own limits, measured: memory bandwidth, matrix-multiply peak, resident memory.

Decoding one token reads every weight once, so bytes per token divided by the
read bandwidth is the fastest a decode step can be; prefill is compute-bound,
so its floor is its FLOPs over the GEMM peak. Both are measured with torch on
all cores, each as the best of several tries (a bound is the best the machine
sustains). Bandwidth is probed again before every timed run, and each decode is set against
its own probe: on this shared VM it moved between about 35 and 75 GB/s within minutes.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import threading
import time
from dataclasses import dataclass, replace

import psutil


@dataclass(frozen=True)
class Machine:
    cpu: str
    cores: int
    ram_gb: float
    memory_bandwidth_gbs: float  # sustained read bandwidth, GB/s (1e9): the median probe
    matmul_peak_gflops: float  # fp32 GEMM, all cores
    bandwidth_probes_gbs: tuple[float, ...] = ()  # each probe's best, through the run


def measure_machine(gemm_size: int = 4096, tries: int = 5) -> Machine:
    bandwidth = probe_bandwidth()
    return Machine(
        cpu=cpu_model(),
        cores=os.cpu_count() or 1,
        ram_gb=round(psutil.virtual_memory().total / 1e9, 1),
        memory_bandwidth_gbs=bandwidth,
        matmul_peak_gflops=matmul_peak(gemm_size, tries) / 1e9,
        bandwidth_probes_gbs=(bandwidth,),
    )


def probe_bandwidth(array_mb: int = 2048, tries: int = 5) -> float:
    """GB/s now. The suite probes several times: on a shared VM the bandwidth moves with the neighbours."""
    return read_bandwidth(array_mb, tries) / 1e9


def quick_probe(array_mb: int = 512) -> float:
    """GB/s now, in about 0.3 s: taken before every timed run, so each decode has its own bound.

    Here the bandwidth switched between about 45 and 75 GB/s for minutes at a time while a
    decode's speed moved far less, so a share against a probe taken at another moment said
    more about the neighbours than about the engine. 512 MB is still 16 times the L3 cache.
    """
    return probe_bandwidth(array_mb, tries=3)


def with_probes(machine: Machine, probes) -> Machine:
    """`machine` with more bandwidth probes, its bandwidth the median of all."""
    probes = (*machine.bandwidth_probes_gbs, *probes)
    return replace(machine, memory_bandwidth_gbs=statistics.median(probes), bandwidth_probes_gbs=probes)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def read_bandwidth(array_mb: int, tries: int) -> float:
    """Bytes per second read from an array far larger than the caches: the best of three kernels.

    A lower bound of the true peak: an engine's own kernels may stream faster still.
    """
    import torch

    data = torch.ones(array_mb * 2**20 // 4, dtype=torch.float32)
    kernels = (data.sum, lambda: torch.dot(data, data), lambda: data.view(64, -1).sum(1))
    return max(data.numel() * 4 / _best_time(kernel, tries) for kernel in kernels)


def matmul_peak(size: int, tries: int) -> float:
    """fp32 FLOP/s of a square matrix multiply."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    return 2 * size**3 / _best_time(lambda: torch.mm(a, b), tries)


def matmul_peaks(size: int = 4096, tries: int = 5) -> dict[str, float]:
    """Operations per second of a square matrix multiply in each precision the two sides compute in.

    fp32; bf16 (side (a), through oneDNN, on AMX tiles where the CPU has them); int8 x int8 with
    int32 sums (`torch._int_mm`: what the int4 export at accuracy level 4 computes, its weights
    unpacked to int8 and its activations quantized to int8).
    """
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    peaks = {"fp32": 2 * size**3 / _best_time(lambda: torch.mm(a, b), tries)}
    a16, b16 = a.bfloat16(), b.bfloat16()
    peaks["bf16"] = 2 * size**3 / _best_time(lambda: torch.mm(a16, b16), tries)
    a8 = torch.randint(-128, 127, (size, size), dtype=torch.int8)
    b8 = torch.randint(-128, 127, (size, size), dtype=torch.int8)
    peaks["int8"] = 2 * size**3 / _best_time(lambda: torch._int_mm(a8, b8), tries)
    return peaks


def _best_time(work, tries: int) -> float:
    work()
    times = []
    for _ in range(tries):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


class PeakRss:
    """Samples a process's resident memory in the background; `peak_since(mark)` reads the maximum.

    `tree`: the process and all its descendants, summed (the app runs heavy steps in children).
    """

    def __init__(self, pid: int | None = None, every_s: float = 0.02, tree: bool = False) -> None:
        self._process = psutil.Process(pid)
        self._tree = tree
        self._every_s = every_s
        self._samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def rss(self) -> int:
        try:
            processes = [self._process] + (self._process.children(recursive=True) if self._tree else [])
        except psutil.NoSuchProcess:  # it has ended
            return 0
        total = 0
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += process.memory_info().rss
        return total

    def peak_since(self, mark: float) -> int:
        """The highest resident set size sampled since `mark` (a perf_counter value), in bytes."""
        now = self.rss()
        return max([now] + [rss for at, rss in list(self._samples) if at >= mark])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                self._samples.append((time.perf_counter(), self.rss()))
            except psutil.NoSuchProcess:
                return
