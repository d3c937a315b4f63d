"""The two registered packagings of one checkpoint, as backends.

Nothing here loads at construction: each backend logs or loads its model on
first use, so building the app stays instant.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from wrappers import onnx_backend, transformers_backend
from wrappers.backend import Backend, MlflowBackend
from wrappers.config import AppConfig
from wrappers.registry import LazyModel, ModelSpec, Progress, hash_files, use_store
from wrappers.remote import remote_backends


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
            LazyModel(lambda: transformers_spec(config), locks, progress),
            transformers_backend.stream_predict,
            config.limits.max_prompt_tokens,
        ),
        "onnx": MlflowBackend(
            onnx_backend.TITLE,
            onnx_backend.STREAMING_NOTE,
            LazyModel(lambda: onnx_spec(config), locks, progress),
            onnx_backend.stream_predict,
            config.limits.max_prompt_tokens,
        ),
    }


def transformers_spec(config: AppConfig) -> ModelSpec:
    checkpoint = str(config.checkpoint.resolve())
    return ModelSpec(
        registered_name=f"{config.model_prefix}-transformers",
        description=f"{checkpoint} as an MLflow transformers flavor, task llm/v1/chat.",
        tags={
            "source": checkpoint,
            "source_hash": hash_files(Path(checkpoint)),
            "precision": "fp32",
            "wrapper": "transformers",
        },
        log=lambda progress: transformers_backend.log_transformers_model(
            checkpoint, _pins("mlflow", "transformers", "torch")
        ),
    )


def onnx_spec(config: AppConfig) -> ModelSpec:
    checkpoint, precision = config.checkpoint.resolve(), config.onnx_precision
    source_hash = hash_files(checkpoint, extra=f"onnx:{precision}:{version('onnxruntime-genai')}")

    def build_and_log(progress: Progress) -> str:
        progress(f"Building the {precision} ONNX export of {checkpoint} with onnxruntime-genai's builder")
        export = onnx_backend.build_onnx_export(
            str(checkpoint), precision, config.build_dir / source_hash[:16]
        )
        return onnx_backend.log_onnx_model(export, _pins("mlflow", "onnxruntime-genai", "pandas"))

    return ModelSpec(
        registered_name=f"{config.model_prefix}-onnx-{precision}",
        description=(
            f"{checkpoint} exported to ONNX ({precision}, CPU) by onnxruntime-genai's builder, "
            "in an MLflow pyfunc."
        ),
        tags={
            "source": str(checkpoint),
            "source_hash": source_hash,
            "precision": precision,
            "wrapper": "onnx",
        },
        log=build_and_log,
    )


def _pins(*packages: str) -> list[str]:
    return [f"{name}=={version(name)}" for name in packages]
