"""The two registered packagings of one checkpoint, as backends.

Nothing here loads at construction: each backend logs or loads its model on
first use, so building the app stays instant.
"""

from __future__ import annotations

import hashlib
from importlib.metadata import version
from pathlib import Path

from wrappers import memory, onnx_backend, transformers_backend
from wrappers.backend import Backend, MlflowBackend
from wrappers.child import run_step
from wrappers.config import AppConfig
from wrappers.errors import ModelLoadError
from wrappers.host import computes_natively, effective_dtype
from wrappers.registry import (
    LazyModel,
    Memory,
    ModelSpec,
    Progress,
    Reservations,
    hash_files,
    newest_version,
    use_store,
)
from wrappers.remote import remote_backends
from wrappers.sources import (
    Source,
    hub_commit,
    kv_bytes_per_token,
    parameter_count,
    published_precision,
    resolve,
    stored_dtype,
    weights_bytes,
)


def build_backends(config: AppConfig, progress: Progress = print) -> dict[str, Backend]:
    """Both wrappers of `config.checkpoint`, keyed "transformers" and "onnx".

    A side with a configured endpoint is served by that remote MLflow scoring server instead.
    """
    locks = config.data_dir / "locks"
    use_store(config.store_uri, None if config.remote_store else config.artifact_root, locks)
    return _in_process(config, locks, progress) | remote_backends(config)


def _in_process(config: AppConfig, locks: Path, progress: Progress) -> dict[str, MlflowBackend]:
    """The ONNX side first: a build's scratch file is gone before side (a)'s copy is written,
    so the disk's peak is the larger of the two, not their sum."""
    reserved = Reservations()  # both sides share the machine: each load leaves room for the other's answers
    return {
        "onnx": MlflowBackend(
            onnx_backend.TITLE,
            onnx_backend.STREAMING_NOTE,
            LazyModel(lambda report: onnx_spec(config, report), locks, progress, reserved),
            onnx_backend.stream_predict,
            config.limits.max_prompt_tokens,
        ),
        "transformers": MlflowBackend(
            transformers_backend.TITLE,
            transformers_backend.STREAMING_NOTE,
            LazyModel(lambda report: transformers_spec(config, report), locks, progress, reserved),
            transformers_backend.stream_predict,
            config.limits.max_prompt_tokens,
        ),
    }


def transformers_spec(config: AppConfig, progress: Progress = print) -> ModelSpec:
    source, name = config.sources[0], f"{config.model_prefix}-transformers"
    try:
        checkpoint = resolve(source, "config.json", progress, config.hub_cache)
    except ModelLoadError as error:
        return _registered_spec(name, source, error, _dtype_tags(config.transformers_dtype))
    dtype = effective_dtype(config.transformers_dtype, stored_dtype(checkpoint))
    parameters = parameter_count(checkpoint)
    kv = kv_bytes_per_token(checkpoint, dtype)
    serve, loaded = memory.serving(f"transformers/{dtype}", parameters, kv, _longest(config))
    needs = Memory(memory.need(f"log_transformers/{dtype}", parameters), serve, loaded)
    memory.require(needs.serve, f"{name} in {dtype} ({source})")  # before hashing gigabytes
    tags = _tags(source, checkpoint, dtype, "transformers") | {"dtype": dtype, "parameters": str(parameters)}
    tags["source_hash"] += f"|dtype:{dtype}"  # one version per dtype

    def log(progress: Progress) -> str:
        copy = memory.weight_bytes(parameters, dtype)
        memory.require_disk(int(copy * 1.05), config.artifact_root, f"Logging {name}")
        kwargs = {"checkpoint": str(checkpoint), "pip_requirements": _pins("mlflow", "transformers", "torch")}
        return run_step("log_transformers", kwargs | {"dtype": dtype}, f"Logging {name}", progress).value

    return ModelSpec(
        registered_name=name,
        description=f"{source} as an MLflow transformers flavor in {dtype}, task llm/v1/chat.",
        tags=tags,
        log=log,
        memory=needs,
    )


def onnx_spec(config: AppConfig, progress: Progress = print) -> ModelSpec:
    transformers_source, source = config.sources
    if source.kind == "build":
        return _built_onnx_spec(config, transformers_source, progress)
    name = f"{config.model_prefix}-onnx"
    try:
        folder = resolve(source, "genai_config.json", progress, config.hub_cache)
    except ModelLoadError as error:
        return _registered_spec(name, source, error)
    fit = "onnx/int4" if published_precision(folder) == "int4" else "onnx/fp32"
    serve, loaded = memory.serving(fit, weights_bytes(folder), kv_bytes_per_token(folder), _longest(config))
    needs = Memory(loaded, serve, loaded)  # logging loads it once, to check the input example
    memory.require(needs.serve, f"{name} ({source})")
    return ModelSpec(
        registered_name=name,
        description=f"The onnxruntime-genai model {source}, in an MLflow pyfunc.",
        tags=_tags(source, folder, published_precision(folder), "onnx"),
        log=lambda progress: onnx_backend.log_in_child(folder, _onnx_pins(), f"Logging {name}", progress),
        memory=needs,
    )


def _built_onnx_spec(config: AppConfig, transformers_source: Source, progress: Progress) -> ModelSpec:
    name, precision = f"{config.model_prefix}-onnx-{config.onnx_precision}", config.onnx_precision
    try:
        checkpoint = resolve(transformers_source, "config.json", progress, config.hub_cache)
    except ModelLoadError as error:
        return _registered_spec(name, transformers_source, error)
    parameters = parameter_count(checkpoint)
    export_bytes = memory.fitted(f"export_bytes/{precision}", parameters)
    kv = kv_bytes_per_token(checkpoint)  # the CPU export keeps its cache in float32
    serve, loaded = memory.serving(f"onnx/{precision}", export_bytes, kv, _longest(config))
    needs = Memory(max(memory.need(f"build_onnx/{precision}", parameters), loaded), serve, loaded)
    memory.require(needs.serve, f"{name} ({transformers_source})")
    tags = _tags(transformers_source, checkpoint, precision, "onnx")
    options = onnx_backend.builder_options(precision, config.onnx_block_size)
    tags["builder_options"] = ",".join(options)
    tags["source_hash"] += f"|onnx:{precision}:{version('onnxruntime-genai')}:{tags['builder_options']}"
    build_dir = config.build_dir / hashlib.sha256(tags["source_hash"].encode()).hexdigest()[:16]

    def build_and_log(progress: Progress) -> str:
        # at its peak the build holds the float32 weights (a scratch file) and the export; the
        # logged copy of the export is written after the scratch file is gone
        disk = memory.weight_bytes(parameters, "float32") + export_bytes
        memory.require_disk(int(disk * 1.05), config.build_dir, f"The {precision} ONNX build of {name}")
        progress(f"Building the {precision} ONNX export of {checkpoint} with onnxruntime-genai's builder")
        return onnx_backend.build_and_log_in_child(
            str(checkpoint), precision, build_dir, options, _onnx_pins(), progress
        )

    return ModelSpec(
        registered_name=name,
        description=(
            f"{transformers_source} exported to ONNX ({precision}, CPU) by onnxruntime-genai's builder "
            f"({tags['builder_options']}), in an MLflow pyfunc."
        ),
        tags=tags,
        log=build_and_log,
        memory=needs,
    )


def _longest(config: AppConfig) -> int:
    """The most tokens one request can hold: the longest prompt and the longest answer."""
    return config.limits.max_prompt_tokens + config.limits.max_new_tokens


def _tags(source: Source, folder: Path, precision: str, wrapper: str) -> dict[str, str]:
    """Registry tags: a Hub snapshot is identified by its commit, a local folder by its content."""
    commit = hub_commit(folder)
    where = f"{source.location}/{source.subfolder}" if source.subfolder else source.location
    return {
        "source": str(source) if source.kind == "hub" else str(folder),
        "revision": commit or "local",
        "source_hash": f"hub:{where}@{commit}" if commit else hash_files(folder),
        "precision": precision,
        "wrapper": wrapper,
    }


def _dtype_tags(requested: str) -> dict[str, str]:
    """An explicit dtype must match a registered version; auto takes any this CPU computes natively."""
    return {} if requested == "auto" else {"dtype": requested}


def _registered_spec(
    name: str, source: Source, error: ModelLoadError, match: dict[str, str] | None = None
) -> ModelSpec:
    """A Hub source that cannot be fetched now may already be registered, e.g. pre-logged
    with --log-only on a machine with network: then that version is loaded, else `error` stands."""
    wanted = {"source": str(source)} | (match or {})
    found = newest_version(name, wanted) if source.kind == "hub" else None
    if found is None or not computes_natively(found.tags.get("dtype", "float32")):
        raise error

    def cannot_log(progress: Progress) -> str:
        raise error

    tags = found.tags
    needs = Memory(serve=int(tags.get("memory_bytes", 0)), loaded=int(tags.get("memory_loaded_bytes", 0)))
    return ModelSpec(name, f"{source}, as registered", dict(tags), cannot_log, needs)


def _onnx_pins() -> list[str]:
    return _pins("mlflow", "onnxruntime-genai", "pandas")


def _pins(*packages: str) -> list[str]:
    return [f"{name}=={version(name)}" for name in packages]
