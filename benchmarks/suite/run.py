"""The benchmark suite: both wrappers at three depths, in one run, on the Phi-3-mini-shaped model.

Depths: the raw engine (transformers `generate` / the onnxruntime-genai
Generator loop), the MLflow pyfunc (the app's own backends), and the running
app's API through gradio_client beside a no-op Gradio endpoint. Every case
(prompt length x new tokens) is run for every path and depth in turn, repeat
after repeat, so a slow spell on this shared machine hits all of them alike
and the ratios hold. Medians over the repeats, after one warm-up round.

    .venv/bin/python -m benchmarks.suite [--layers 4] [--repeats 3] [--out benchmarks/results]

Writes results.json, results.md and results.png to --out.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from benchmarks import served
from benchmarks.engines import OnnxEngine, Prompt, PyfuncPath, Run, TransformersEngine, prompt_of_length
from benchmarks.exports import onnx_export
from benchmarks.machine import PeakRss, measure_machine, quick_probe, with_probes
from benchmarks.shaped_model import CACHE, build_shaped_model
from benchmarks.suite.report import summarize, write_outputs
from benchmarks.suite.tuning import measure_startup, measure_tuning
from wrappers import AppConfig, build_backends
from wrappers.models import onnx_spec, transformers_spec
from wrappers.registry import find_version, use_store

RESULTS = Path(__file__).resolve().parents[1] / "results"  # benchmarks/results, shared by every group
RUN_ORDER = [  # each engine next to its pyfunc, so their ratio compares neighbouring moments
    ("transformers fp32", "engine"),
    ("transformers fp32", "pyfunc"),
    ("onnx int4", "engine"),
    ("onnx int4", "pyfunc"),
    ("onnx fp32", "engine"),
]


@dataclass(frozen=True)
class Settings:
    layers: int = 4
    fit_layers: int | None = 2  # a second depth of the shaped model, for the per-layer cost
    checkpoint: Path | None = None  # None: the Phi-3-mini-shaped model with `layers` layers
    prompt_tokens: tuple[int, ...] = (16, 128, 512)
    new_tokens: tuple[int, ...] = (64, 256)
    repeats: int = 3
    depths: tuple[str, ...] = ("engine", "pyfunc", "gradio")
    tuning: bool = True
    startup: bool = True
    cache: Path = CACHE
    out: Path = RESULTS
    store: Path | None = None  # an MLflow store (data folder) to reuse; None: a fresh one for this run
    gemm_size: int = 4096  # the matrix-multiply peak's square matrices
    probe_mb: int = 512  # each timed run's bandwidth probe (the tests' tiny runs use a small one)

    @property
    def cases(self) -> list[tuple[int, int]]:
        """(prompt, new tokens): each prompt with the shortest answer, the first prompt with the rest."""
        short = self.new_tokens[0]
        return [(p, short) for p in self.prompt_tokens] + [
            (self.prompt_tokens[0], n) for n in self.new_tokens[1:]
        ]


@dataclass
class Measured:
    """One path at one depth: its load, its memory and its runs per case."""

    path: str
    depth: str
    load_s: float | None = None
    peak_rss_mb: float | None = None
    runs: dict[tuple[int, int], list[Run]] = field(default_factory=dict)

    def add(self, case: tuple[int, int], run: Run) -> None:
        self.runs.setdefault(case, []).append(run)

    @property
    def all_runs(self) -> list[Run]:
        return [run for runs in self.runs.values() for run in runs]


def run_suite(settings: Settings, progress: Callable[[str], None] = print) -> dict:
    """Measure everything; return the summary that `write_outputs` saves."""
    machine = measure_machine(settings.gemm_size)
    progress(f"machine: {machine}")
    checkpoint = settings.checkpoint or build_shaped_model(
        settings.layers, settings.cache / f"shaped-{settings.layers}"
    )
    prompts = prompts_for(checkpoint, settings)
    reused = contextlib.nullcontext(str(settings.store)) if settings.store else None
    with reused or tempfile.TemporaryDirectory(prefix="bench-store-") as folder:  # fresh by default
        store = Path(folder)
        measured = measure_in_process(checkpoint, store, prompts, settings, progress)
        if "gradio" in settings.depths:
            measured += measure_served(checkpoint, store, prompts, settings, progress)
        probes = [r.bandwidth_gbs for m in measured for r in m.all_runs if r.bandwidth_gbs]
        machine = with_probes(machine, probes)
        tuning = measure_tuning(checkpoint, store, prompts, settings, progress) if settings.tuning else []
    fit = settings.fit_layers and not settings.checkpoint
    extra = {
        "fit": measure_layer_fit(settings, progress) if fit else None,
        "tuning": tuning,
        "startup": measure_startup(settings.cache / "logs") if settings.startup else None,
    }
    return summarize(machine, checkpoint, settings, measured, extra)


def prompts_for(checkpoint: Path, settings: Settings) -> dict[int, Prompt]:
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(checkpoint))
    return {n: prompt_of_length(tokenizer, n) for n in settings.prompt_tokens}


def load_paths(checkpoint: Path, store: Path, settings: Settings, memory: PeakRss) -> dict:
    """Every in-process path, keyed (path, depth), loaded one after the other under the memory sampler."""
    # Built and logged first, each in its own process or before the sampler looks: loads only here.
    exports = {
        precision: onnx_export(checkpoint, precision, settings.cache) for precision in ("int4", "fp32")
    }
    if not registered(checkpoint, store):
        served.log_only(checkpoint, store, settings.cache / "logs" / "log-only.log")
    loaders = {}
    if "engine" in settings.depths:
        loaders[("transformers fp32", "engine")] = lambda: TransformersEngine(checkpoint)
        loaders[("onnx int4", "engine")] = lambda: OnnxEngine(exports["int4"])
        loaders[("onnx fp32", "engine")] = lambda: OnnxEngine(exports["fp32"])
    if "pyfunc" in settings.depths:
        config = AppConfig(checkpoint=checkpoint, model_prefix=checkpoint.name, data_dir=store)
        backends = build_backends(config, progress=lambda message: None)
        loaders[("transformers fp32", "pyfunc")] = lambda: PyfuncPath(backends["transformers"])
        loaders[("onnx int4", "pyfunc")] = lambda: PyfuncPath(backends["onnx"])
    paths = {}
    for (path, depth), load in sorted(loaders.items(), key=lambda item: RUN_ORDER.index(item[0])):
        before, mark = memory.rss(), time.perf_counter()
        engine = load()
        resident = (memory.rss() - before) / 1e6  # what the loaded model keeps
        paths[(path, depth)] = (
            engine,
            Measured(path, depth, engine.load_s, (memory.peak_since(mark) - before) / 1e6),
            resident,
        )
    return paths


def registered(checkpoint: Path, store: Path) -> bool:
    """Both models of `checkpoint` are registered in `store` already (a reused store)."""
    config = AppConfig(checkpoint=checkpoint, model_prefix=checkpoint.name, data_dir=store)
    use_store(config.store_uri, config.artifact_root)
    return all(find_version(spec(config, lambda message: None)) for spec in (transformers_spec, onnx_spec))


def measure_in_process(checkpoint, store, prompts, settings: Settings, progress) -> list[Measured]:
    """Peak memory of a path: the most it held while loading, or its model plus its largest run."""
    memory = PeakRss()
    progress("loading the engines and the MLflow pyfuncs (logging them on first use)")
    paths = load_paths(checkpoint, store, settings, memory)
    for repeat, case in tqdm(_rounds(settings), desc="engine and pyfunc", unit="case"):
        # Each engine beside its pyfunc, in reverse every other repeat: neither always goes first.
        for engine, result, resident in list(paths.values())[:: 1 if repeat % 2 else -1]:
            bandwidth = quick_probe(settings.probe_mb)  # before the memory mark: its array is freed by then
            mark, at_start = time.perf_counter(), memory.rss()
            run = replace(engine.generate(prompts[case[0]], case[1]), bandwidth_gbs=bandwidth)
            transient = (memory.peak_since(mark) - at_start) / 1e6
            result.peak_rss_mb = max(result.peak_rss_mb, resident + transient)
            if repeat > 0:  # round 0 is the warm-up
                result.add(case, run)
    memory.stop()
    return [result for _, result, _ in paths.values()]


def _rounds(settings: Settings) -> list[tuple[int, tuple[int, int]]]:
    """(repeat, case) in running order: a warm-up (repeat 0) on the first case, then every case per repeat."""
    cases = settings.cases
    return [(0, cases[0])] + [(r, case) for r in range(1, 1 + settings.repeats) for case in cases]


def measure_served(checkpoint, store, prompts, settings: Settings, progress) -> list[Measured]:
    """The app on the same store (so a warm start), its API timed beside the no-op server."""
    logs = settings.cache / "logs"
    progress("starting the app and the no-op server")
    with (
        served.serve(served.noop_args(), logs / "noop.log", store) as noop_server,
        served.serve(served.app_args(checkpoint), logs / "app.log", store) as app,
    ):
        start_s = served.first_answer(app)
        app_client, noop_client = served.connect(app), served.connect(noop_server)
        sides = {"transformers fp32": "transformers", "onnx int4": "onnx"}
        results = {path: Measured(path, "gradio", start_s) for path in sides}
        noop = Measured("no-op endpoint", "gradio")
        for repeat, case in tqdm(_rounds(settings), desc="gradio API", unit="case"):
            for path, side in sides.items():
                bandwidth = quick_probe(settings.probe_mb)
                run = served.chat(app_client, side, prompts[case[0]], case[1])
                run = replace(run, bandwidth_gbs=bandwidth)
                spacing = run.server_s / max(1, run.updates - 1)  # as many updates, at the app's pace
                beyond = served.noop_beyond_wait(noop_client, run.updates, spacing)
                if repeat > 0:
                    results[path].add(case, replace(run, noop_s=beyond))
                    noop.add(case, Run(0, run.new_tokens, beyond, beyond))
        peak = app.memory.peak_since(app.started) / 1e6
    for result in results.values():
        result.peak_rss_mb = peak  # one process serves both models
    return [*results.values(), noop]


def measure_layer_fit(settings: Settings, progress) -> dict:
    """The raw engines on a second depth of the shaped model, for a per-layer cost."""
    fit = {}
    for layers in (settings.fit_layers, settings.layers):
        checkpoint = build_shaped_model(layers, settings.cache / f"shaped-{layers}")
        prompts = prompts_for(checkpoint, settings)
        engines = {
            "transformers fp32": TransformersEngine(checkpoint),
            "onnx int4": OnnxEngine(onnx_export(checkpoint, "int4", settings.cache)),
            "onnx fp32": OnnxEngine(onnx_export(checkpoint, "fp32", settings.cache)),
        }
        case = (settings.prompt_tokens[min(1, len(settings.prompt_tokens) - 1)], settings.new_tokens[0])
        for path, engine in engines.items():
            runs = [engine.generate(prompts[case[0]], case[1]) for _ in range(1 + settings.repeats)][1:]
            fit.setdefault(path, {})[layers] = [asdict(r) for r in runs]
        del engines
        progress(f"layer fit: measured {layers} layers")
    return fit


def parse_settings(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--fit-layers", type=int, default=2, help="0 to skip the 32-layer extrapolation")
    parser.add_argument(
        "--checkpoint", type=Path, help="benchmark this Phi-3 folder instead of the shaped model"
    )
    parser.add_argument("--prompt-tokens", type=int, nargs="+", default=[16, 128, 512])
    parser.add_argument("--new-tokens", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--depths", nargs="+", default=["engine", "pyfunc", "gradio"])
    parser.add_argument("--no-tuning", action="store_true")
    parser.add_argument("--no-startup", action="store_true")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--store", type=Path, help="reuse this MLflow data folder (default: a fresh one)")
    a = parser.parse_args(argv)
    return Settings(
        a.layers, a.fit_layers or None, a.checkpoint, tuple(a.prompt_tokens), tuple(a.new_tokens), a.repeats,
        tuple(a.depths), not a.no_tuning, not a.no_startup, a.cache, a.out, a.store,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    settings = parse_settings(argv)
    summary = run_suite(settings, progress=lambda message: tqdm.write(message))
    for path in write_outputs(summary, settings.out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
