"""The two registered packagings of one checkpoint, as backends.

Nothing here loads at construction: each backend logs or loads its model on
first use, so building the app stays instant.
"""

from __future__ import annotations

import hashlib
from importlib.metadata import version
from pathlib import Path

from wrappers import onnx_backend, transformers_backend
from wrappers.backend import Backend, MlflowBackend
from wrappers.config import AppConfig
from wrappers.errors import ModelLoadError
from wrappers.registry import LazyModel, ModelSpec, Progress, hash_files, newest_version, use_store
from wrappers.remote import remote_backends
from wrappers.sources import (
    Source,
    hub_commit,
    memory_needed,
    published_precision,
    require_memory,
    resolve,
)


def build_backends(config: AppConfig, progress: Progress = print) -> dict[str, Backend]:
    """Both wrappers of `config.checkpoint`, keyed "transformers" and "onnx".

    A side with a configured endpoint is served by that remote MLflow scoring server instead.
    """
    locks = config.data_dir / "locks"
    use_store(config.store_uri, config.artifact_root, locks)
    return _in_process(config, locks, progress) | remote_backends(config)


def _in_process(config: AppConfig, locks: Path, progress: Progress) -> dict[str, MlflowBackend]:
    return {
        "transformers": MlflowBackend(
            transformers_backend.TITLE,
            transformers_backend.STREAMING_NOTE,
            LazyModel(lambda report: transformers_spec(config, report), locks, progress),
            transformers_backend.stream_predict,
            config.limits.max_prompt_tokens,
        ),
        "onnx": MlflowBackend(
            onnx_backend.TITLE,
            onnx_backend.STREAMING_NOTE,
            LazyModel(lambda report: onnx_spec(config, report), locks, progress),
            onnx_backend.stream_predict,
            config.limits.max_prompt_tokens,
        ),
    }


def transformers_spec(config: AppConfig, progress: Progress = print) -> ModelSpec:
    source, name = config.sources[0], f"{config.model_prefix}-transformers"
    try:
        checkpoint = resolve(source, "config.json", progress)
    except ModelLoadError as error:
        return _registered_spec(name, source, error)
    memory = _fitting_memory(name, checkpoint, as_fp32=True)
    return ModelSpec(
        registered_name=name,
        description=f"{source} as an MLflow transformers flavor, task llm/v1/chat.",
        tags=_tags(source, checkpoint, "fp32", "transformers"),
        log=lambda progress: transformers_backend.log_transformers_model(
            str(checkpoint), _pins("mlflow", "transformers", "torch")
        ),
        memory_bytes=memory,
    )


def onnx_spec(config: AppConfig, progress: Progress = print) -> ModelSpec:
    transformers_source, source = config.sources
    if source.kind == "build":
        return _built_onnx_spec(config, transformers_source, progress)
    name = f"{config.model_prefix}-onnx"
    try:
        folder = resolve(source, "genai_config.json", progress)
    except ModelLoadError as error:
        return _registered_spec(name, source, error)
    memory = _fitting_memory(name, folder)
    return ModelSpec(
        registered_name=name,
        description=f"The onnxruntime-genai model {source}, in an MLflow pyfunc.",
        tags=_tags(source, folder, published_precision(folder), "onnx"),
        log=lambda progress: onnx_backend.log_onnx_model(
            folder, _pins("mlflow", "onnxruntime-genai", "pandas")
        ),
        memory_bytes=memory,
    )


def _built_onnx_spec(config: AppConfig, transformers_source: Source, progress: Progress) -> ModelSpec:
    name, precision = f"{config.model_prefix}-onnx-{config.onnx_precision}", config.onnx_precision
    try:
        checkpoint = resolve(transformers_source, "config.json", progress)
    except ModelLoadError as error:
        return _registered_spec(name, transformers_source, error)
    memory = _fitting_memory(name, checkpoint, as_fp32=True)  # the builder loads the checkpoint
    tags = _tags(transformers_source, checkpoint, precision, "onnx")
    options = onnx_backend.builder_options(precision, config.onnx_block_size)
    tags["builder_options"] = ",".join(options)
    tags["source_hash"] += f"|onnx:{precision}:{version('onnxruntime-genai')}:{tags['builder_options']}"
    build_dir = config.build_dir / hashlib.sha256(tags["source_hash"].encode()).hexdigest()[:16]

    def build_and_log(progress: Progress) -> str:
        progress(f"Building the {precision} ONNX export of {checkpoint} with onnxruntime-genai's builder")
        export = onnx_backend.build_onnx_export(str(checkpoint), precision, build_dir, options)
        return onnx_backend.log_onnx_model(export, _pins("mlflow", "onnxruntime-genai", "pandas"))

    return ModelSpec(
        registered_name=name,
        description=(
            f"{transformers_source} exported to ONNX ({precision}, CPU) by onnxruntime-genai's builder "
            f"({tags['builder_options']}), in an MLflow pyfunc."
        ),
        tags=tags,
        log=build_and_log,
        memory_bytes=memory,
    )


def _fitting_memory(name: str, folder: Path, as_fp32: bool = False) -> int:
    """The memory `folder` needs; refused now if it will not fit, before hashing or loading it."""
    needed = memory_needed(folder, as_fp32)
    require_memory(needed, f"{name} ({folder})")
    return needed


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


def _registered_spec(name: str, source: Source, error: ModelLoadError) -> ModelSpec:
    """A Hub source that cannot be fetched now may already be registered, e.g. pre-logged
    with --log-only on a machine with network: then that version is loaded, else `error` stands."""
    found = newest_version(name, "source", str(source)) if source.kind == "hub" else None
    if found is None:
        raise error

    def cannot_log(progress: Progress) -> str:
        raise error

    memory = int(found.tags.get("memory_bytes", 0))
    require_memory(memory, f"{name} version {found.version}")
    return ModelSpec(name, f"{source}, as registered", dict(found.tags), cannot_log, memory)


def _pins(*packages: str) -> list[str]:
    return [f"{name}=={version(name)}" for name in packages]
