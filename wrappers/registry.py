"""Lazy log-or-load through the MLflow Model Registry.

The first use of a model logs it in a run, then registers it with tags that
identify its source (path, content hash, precision, library versions). Every
later use, in any process, finds that version by its tags and loads it.

A version is created only after its run has logged every file, so a process
killed mid-log leaves at most an unfinished run, never a version that a
later start would load. A file lock next to the store keeps two processes
starting together from registering twice (it protects local stores only).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path

import mlflow
from filelock import FileLock
from mlflow import MlflowClient

from wrappers import memory
from wrappers.errors import ModelLoadError
from wrappers.quiet import quiet_libraries
from wrappers.results import ModelRef

EXPERIMENT = "phi3-mlflow-compare"
LIBRARIES = ("mlflow", "transformers", "torch", "onnxruntime-genai")

Progress = Callable[[str], None]
REGISTER_NOTES = re.compile(
    r"Successfully registered model '.*'\.$|Registered model '.*' already exists\. |Created version '"
)


@dataclass(frozen=True)
class Memory:
    """Bytes a model needs, from the fitted measurements in `memory.py`; 0: not checked."""

    log: int = 0  # to log it (and build it, for an ONNX build)
    serve: int = 0  # loaded and answering at the longest prompt the limits allow
    loaded: int = 0  # loaded and idle; serve - loaded is held back for its answers


@dataclass(frozen=True)
class ModelSpec:
    """What to register, and how to log it if it is not registered yet."""

    registered_name: str
    description: str
    tags: dict[str, str]  # must include "source_hash"
    log: Callable[[Progress], str]  # logs inside the active run, returns the model URI
    memory: Memory = Memory()


@dataclass(frozen=True)
class LoadedModel:
    pyfunc: mlflow.pyfunc.PyFuncModel
    ref: ModelRef
    logged_now: bool
    weights: str = ""  # the dtype or precision the model runs in, as tagged


def use_store(tracking_uri: str, artifact_root: Path | None, lock_dir: Path | None = None) -> None:
    """Point MLflow at the store and make sure the app's experiment exists.

    `artifact_root` None: a tracking server's own (mlflow-artifacts:/ when it serves them), so the
    logged models live with the server, not on this machine's disk. Under a file lock: two processes
    creating one SQLite store at once would race in its schema migration and in creating the experiment.
    """
    quiet_libraries()  # the first thing every process does with MLflow
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    lock_dir = lock_dir or artifact_root.parent / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(lock_dir / "store.lock"):
        if mlflow.get_experiment_by_name(EXPERIMENT) is None:
            # An explicit artifact root, or a SQLite store would write to ./mlruns.
            location = artifact_root.resolve().as_uri() if artifact_root else None
            mlflow.create_experiment(EXPERIMENT, artifact_location=location)


def log_or_load(
    spec: ModelSpec, lock_dir: Path, progress: Progress = print, reserved: Reservations | None = None
) -> LoadedModel:
    """Load the registered version for `spec`, logging and registering it first if needed.

    Each step is refused up front if its measured need is not free; `reserved` holds what
    models loaded beside this one will still take when they answer.
    """
    lock_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(lock_dir / f"{spec.registered_name}.lock"):
        found = find_version(spec)
        logged_now = found is None
        if logged_now:
            found = _log_and_register(spec, progress)
    uri = f"models:/{spec.registered_name}/{found.version}"
    beside = reserved.total() if reserved else 0
    if spec.memory.serve:
        what = f"Loading {uri}" + (" beside the other model" if beside else "")
        memory.require(spec.memory.serve + beside, what)
    progress(f"{'(3/3)' if logged_now else '(1/1)'} Loading {uri}")
    try:
        pyfunc = mlflow.pyfunc.load_model(uri)
    except Exception as exc:
        raise ModelLoadError(f"Could not load {uri}: {exc}") from exc
    weights = spec.tags.get("dtype") or spec.tags.get("precision", "")
    return LoadedModel(pyfunc, ModelRef(spec.registered_name, str(found.version), uri), logged_now, weights)


def find_version(spec: ModelSpec):
    """The newest registered version logged from the same source, or None."""
    return newest_version(spec.registered_name, {"source_hash": spec.tags["source_hash"]})


def newest_version(registered_name: str, tags: dict[str, str]):
    """The newest ready version of `registered_name` with all of `tags`, or None."""
    query = " and ".join([f"name = '{registered_name}'", *(f"tags.{k} = '{v}'" for k, v in tags.items())])
    versions = MlflowClient().search_model_versions(query)
    ready = [v for v in versions if v.status == "READY"]
    return max(ready, key=lambda v: int(v.version)) if ready else None


def _log_and_register(spec: ModelSpec, progress: Progress):
    if spec.memory.log:
        memory.require(spec.memory.log, f"Logging {spec.registered_name}")
    tags = spec.tags | library_versions() | _memory_tags(spec.memory)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=f"log {spec.registered_name}"):
        mlflow.set_tags(tags)
        progress(f"(1/3) Logging {spec.registered_name} to MLflow (first start only)")
        model_uri = spec.log(progress)
    progress(f"(2/3) Registering {spec.registered_name} in the Model Registry")
    version = _register(model_uri, spec.registered_name, tags)
    client = MlflowClient()
    client.update_registered_model(spec.registered_name, description=spec.description)
    client.update_model_version(spec.registered_name, version.version, spec.description)
    return version


def _register(model_uri: str, name: str, tags: dict[str, str]):
    """`mlflow.register_model`, without the notes it prints: the progress line already says it.

    It prints them (not logs them), so they are taken off stderr while it runs; any other
    line it prints is passed on.
    """
    printed = io.StringIO()
    try:
        with contextlib.redirect_stderr(printed):
            return mlflow.register_model(model_uri, name, tags=tags)
    finally:
        for line in printed.getvalue().splitlines():
            if not REGISTER_NOTES.match(line):
                print(line, file=sys.stderr)


def _memory_tags(needs: Memory) -> dict[str, str]:
    return {"memory_bytes": str(needs.serve), "memory_loaded_bytes": str(needs.loaded)}


def library_versions() -> dict[str, str]:
    return {f"version.{name}": package_version(name) for name in LIBRARIES}


def hash_files(root: Path, extra: str = "") -> str:
    """A content hash of every file under `root` (names and bytes), plus `extra`."""
    digest = hashlib.sha256(extra.encode())
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class Reservations:
    """Memory that the models of one app, once loaded, still need for answering (KV caches)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bytes: dict[str, int] = {}

    def hold(self, name: str, needs: Memory) -> None:
        with self._lock:
            self._bytes[name] = max(needs.serve - needs.loaded, 0)

    def total(self) -> int:
        with self._lock:
            return sum(self._bytes.values())


class LazyModel:
    """Logs or loads a model on first use, once, from any number of threads."""

    def __init__(
        self,
        spec: Callable[[Progress], ModelSpec],
        lock_dir: Path,
        progress: Progress,
        reserved: Reservations | None = None,
    ) -> None:
        self._spec, self._lock_dir, self._progress = spec, lock_dir, progress
        self._reserved = reserved
        self._lock = threading.Lock()
        self._loaded: LoadedModel | None = None

    def get(self) -> LoadedModel:
        with self._lock:
            if self._loaded is None:
                spec = self._spec(self._progress)
                self._loaded = log_or_load(spec, self._lock_dir, self._progress, self._reserved)
                if self._reserved:
                    self._reserved.hold(spec.registered_name, spec.memory)
            return self._loaded
