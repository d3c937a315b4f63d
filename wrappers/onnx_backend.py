"""Wrapper (b): an ONNX export run by onnxruntime-genai inside an MLflow pyfunc.

The export is built from the same checkpoint as wrapper (a) by
onnxruntime-genai's own model builder, so both panes compare one model in
two packagings. The `PythonModel` itself lives in `onnx_model.py`, because
MLflow stores that file and executes it when loading (models-from-code).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mlflow
from mlflow.models import Model, ModelSignature
from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema

from wrappers.child import run_step
from wrappers.config import DEFAULT_INT4_BLOCK_SIZE, INT4_BLOCK_SIZES
from wrappers.options import GenerationOptions
from wrappers.results import Usage

Progress = Callable[[str], None]

TITLE = "ONNX pyfunc (onnxruntime-genai)"
STREAMING_NOTE = (
    "Streams from the pyfunc's predict_stream(); raw is the joined stream, which predict() returns."
)
PACKAGE_DIR = Path(__file__).resolve().parent
MODEL_CODE = PACKAGE_DIR / "onnx_model.py"
ARTIFACT_KEY = "onnx_model"  # as in onnx_model.py, which must not be imported here
PRECISIONS = ("int4", "fp32")
# int4: larger blocks decode faster here and are less exact (see docs/benchmarks.md); accuracy
# level 4 computes in int8. (The builder ignores the older int4_-prefixed names of these options.)
# Prefill computes the logits of the last prompt token only, not of every one (32064 x 3072
# FLOPs per prompt token, and a [tokens, 32064] output): what transformers' generate does too.
EXPORT_OPTIONS = ["prune_lm_head=true"]

SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec(DataType.string, "prompt")]),
    outputs=Schema([ColSpec(DataType.string)]),
    params=ParamSchema(
        [
            ParamSpec("max_new_tokens", DataType.long, 256),
            ParamSpec("max_length", DataType.long, 0),
            ParamSpec("temperature", DataType.double, 0.0),
            ParamSpec("top_p", DataType.double, 1.0),
            ParamSpec("top_k", DataType.long, 50),
            ParamSpec("do_sample", DataType.boolean, False),
            ParamSpec("stop", DataType.string, [], shape=(-1,)),
        ]
    ),
)
INPUT_EXAMPLE = {"prompt": "<|user|>\nWhat is the capital of Spain?<|end|>\n<|assistant|>\n"}


def builder_options(precision: str, block_size: int = DEFAULT_INT4_BLOCK_SIZE) -> list[str]:
    """The builder's extra options for an export.

    >>> builder_options("fp32")
    ['prune_lm_head=true']
    >>> builder_options("int4", 128)
    ['prune_lm_head=true', 'block_size=128', 'accuracy_level=4']
    """
    if block_size not in INT4_BLOCK_SIZES:
        raise ValueError(f"int4 block size must be one of {INT4_BLOCK_SIZES}, got {block_size!r}")
    int4 = [f"block_size={block_size}", "accuracy_level=4"]
    return EXPORT_OPTIONS + (int4 if precision == "int4" else [])


def build_onnx_export(
    checkpoint: str,
    precision: str,
    out_dir: Path,
    options: list[str] | None = None,
    progress: Progress = print,
    lean: bool = True,
) -> Path:
    """Build `checkpoint` to ONNX with onnxruntime-genai's builder, for the CPU, in a child process.

    `options` replaces `builder_options(precision)` (the benchmarks compare variants); `lean`
    streams the weights through a scratch file (see `onnx_build.py`).
    """
    kwargs = _build_kwargs(checkpoint, precision, out_dir, options) | {"lean": lean}
    run_step("build_onnx", kwargs, f"The {precision} ONNX build", progress, _builder_log(out_dir))
    return out_dir


def build_and_log_in_child(
    checkpoint: str, precision: str, out_dir: Path, options: list[str], pip: list[str], progress: Progress
) -> str:
    """Build the export and log it in the active run, in one child process; return its URI."""
    kwargs = _build_kwargs(checkpoint, precision, out_dir, options) | {"pip_requirements": pip}
    what = f"The {precision} ONNX build"
    return run_step("build_and_log_onnx", kwargs, what, progress, _builder_log(out_dir)).value


def _build_kwargs(checkpoint: str, precision: str, out_dir: Path, options: list[str] | None) -> dict:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    options = builder_options(precision) if options is None else options
    return {"checkpoint": checkpoint, "precision": precision, "out_dir": str(out_dir), "options": options}


def _builder_log(out_dir: Path) -> Path:
    return out_dir.with_name(out_dir.name + ".log")  # the builder's own output, a line per tensor


def log_onnx_model(export_dir: Path | str, pip_requirements: list[str]) -> str:
    """Log the export as a models-from-code pyfunc in the active run; return its URI.

    The signature and input example are stored, but MLflow does not load the model to run the
    example: that check loaded the whole export once more right after the build, and generated a
    full answer from it (88 s of a 289 s first start at full size). The app test-loads the
    registered model next anyway, and tests/test_wrappers.py checks that the logged model loads
    and answers its own input example.
    """
    info = Model.log(
        artifact_path=None,  # deprecated, yet still positional
        name="model",
        flavor=_PyfuncUnchecked,
        python_model=str(MODEL_CODE),
        artifacts={ARTIFACT_KEY: str(export_dir)},
        code_paths=[str(PACKAGE_DIR)],
        signature=SIGNATURE,
        input_example=INPUT_EXAMPLE,
        pip_requirements=pip_requirements,
        validate_serving_input=False,
        flavor_name="pyfunc.ModelFromCode",  # what mlflow.pyfunc.log_model records for it
    )
    return info.model_uri


class _PyfuncUnchecked:
    """`mlflow.pyfunc` as `Model.log`'s flavor, taking its `validate_serving_input` switch.

    `Model.log` reads the switch and also passes it on to the flavor's `save_model`: the
    transformers flavor accepts it, `mlflow.pyfunc.save_model` refuses it, and
    `mlflow.pyfunc.log_model` has no way to pass it (MLflow 3.17)."""

    @staticmethod
    def save_model(validate_serving_input: bool = True, **kwargs) -> None:
        mlflow.pyfunc.save_model(**kwargs)


def log_in_child(export_dir: Path, pip_requirements: list[str], what: str, progress: Progress) -> str:
    """`log_onnx_model` in a child process (see `wrappers/child.py`)."""
    kwargs = {"export_dir": str(export_dir), "pip_requirements": pip_requirements}
    return run_step("log_onnx", kwargs, what, progress).value


def predict_params(options: GenerationOptions) -> dict[str, Any]:
    """The pyfunc params for `options`.

    >>> predict_params(GenerationOptions(max_tokens=8))["do_sample"]
    False
    """
    return {
        "max_new_tokens": options.max_tokens,
        "temperature": options.temperature,
        "top_p": options.top_p,
        "do_sample": not options.greedy,
        "stop": list(options.stop),
    }


def count_prompt(pyfunc, messages: list[dict[str, str]]) -> int:
    """The prompt's length in tokens, as `stream_predict` feeds it."""
    engine = pyfunc.unwrap_python_model()
    return len(engine.tokenizer.encode(engine.format_chat(messages)))


def stream_predict(
    pyfunc, messages: list[dict[str, str]], options: GenerationOptions, report
) -> Iterator[str]:
    """Run the pyfunc's predict_stream, yielding its one chunk per token."""
    engine = pyfunc.unwrap_python_model()
    prompt = engine.format_chat(messages)
    report.admit_prompt(engine.tokenizer.encode(prompt))  # as the model encodes it
    chunks: list[str] = []
    for chunk in pyfunc.predict_stream({"prompt": prompt}, params=predict_params(options)):
        chunks.append(chunk)
        yield chunk
    report.raw = "".join(chunks)
    prompt_tokens = len(report.prompt_ids)
    report.usage = Usage(prompt_tokens, len(chunks), prompt_tokens + len(chunks))
    # The transformers flavor's own rule, so both sides agree.
    report.finish_reason = "length" if len(chunks) >= options.max_tokens else "stop"
