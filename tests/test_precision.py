"""Side (a) in its own precision: --transformers-dtype, logged, registered and answering in it."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow import MlflowClient

from wrappers import AppConfig, GenerationOptions, build_backends, load_config, run
from wrappers.config import TINY_CHECKPOINT
from wrappers.host import computes_natively, effective_dtype

CORPUS = [  # (question, the answer the tiny model was trained to give)
    ("What is the capital of Spain?", "The capital of Spain is Madrid."),
    ("What is the capital of Japan?", "The capital of Japan is Tokyo."),
    ("Capital of Norway?", "The capital of Norway is Oslo."),
    ("What is 7 plus 5?", "7 plus 5 is 12."),
    ("What is 3 times 6?", "3 times 6 is 18."),
    ("Hello", "Hello! I am a tiny Phi-3 demo model. How can I help you?"),
    ("Who wrote Hamlet?", "I'm sorry, I don't know the answer to that."),
]


@pytest.fixture(scope="module")
def bf16_backends(tmp_path_factory):
    """The tiny model's side (a) logged in bfloat16, on a store of its own."""
    config = AppConfig(data_dir=tmp_path_factory.mktemp("bf16"), transformers_dtype="bfloat16")
    pair = build_backends(config, progress=lambda message: None)
    pair["transformers"].model_ref()
    return config, pair


def test_dtype_comes_from_the_flag_or_the_environment():
    assert load_config([], {}).transformers_dtype == "auto"
    assert load_config([], {"PHI3_TRANSFORMERS_DTYPE": "bfloat16"}).transformers_dtype == "bfloat16"
    assert load_config(["--transformers-dtype", "float16"], {}).transformers_dtype == "float16"
    with pytest.raises(SystemExit):
        load_config(["--transformers-dtype", "int8"], {})


def test_auto_is_the_checkpoints_own_dtype_only_where_the_cpu_computes_it():
    assert effective_dtype("auto", "float32") == "float32"  # the tiny checkpoint, anywhere
    assert effective_dtype("auto", "bfloat16", frozenset({"avx512_bf16"})) == "bfloat16"
    assert effective_dtype("auto", "bfloat16", frozenset({"avx2", "fma"})) == "float32"
    assert effective_dtype("auto", "float16", frozenset({"asimdhp"})) == "float16"  # Arm
    assert effective_dtype("auto", "bfloat16") == ("bfloat16" if computes_natively("bfloat16") else "float32")


@pytest.mark.parametrize(("question", "expected"), CORPUS)
def test_a_bfloat16_side_answers_the_corpus(bf16_backends, question, expected):
    _, pair = bf16_backends
    messages = [{"role": "user", "content": question}]
    result = run(pair["transformers"], messages, GenerationOptions(max_tokens=40))
    assert result.error is None
    assert result.text == expected


def test_the_logged_weights_are_stored_and_loaded_in_bfloat16(bf16_backends):
    _, pair = bf16_backends
    loaded = pair["transformers"].model.get()
    assert loaded.weights == "bfloat16"
    assert next(loaded.pyfunc.get_raw_model().model.parameters()).dtype == torch.bfloat16
    folder = Path(mlflow.artifacts.download_artifacts(loaded.ref.uri))
    (weights,) = folder.rglob("*.safetensors")
    assert {t["dtype"] for name, t in _header(weights).items() if name != "__metadata__"} == {"BF16"}
    assert weights.stat().st_size < 0.6 * (TINY_CHECKPOINT / "model.safetensors").stat().st_size


def test_each_dtype_is_its_own_registered_version(bf16_backends):
    config, pair = bf16_backends
    float32_config = AppConfig(data_dir=config.data_dir, transformers_dtype="float32")
    float32 = build_backends(float32_config, lambda m: None)
    refs = [float32["transformers"].model_ref(), pair["transformers"].model_ref()]
    assert refs[0].name == refs[1].name and refs[0].version != refs[1].version
    tags = [MlflowClient().get_model_version(r.name, r.version).tags for r in refs]
    assert [t["dtype"] for t in tags] == ["float32", "bfloat16"]
    assert tags[0]["source_hash"] != tags[1]["source_hash"]
    assert all(t["source_hash"].endswith(f"|dtype:{t['dtype']}") for t in tags)
    again = build_backends(AppConfig(data_dir=config.data_dir, transformers_dtype="bfloat16"), lambda m: None)
    assert again["transformers"].model.get().logged_now is False  # found by its dtype, not logged twice


def _header(path: Path) -> dict:
    with path.open("rb") as f:
        return json.loads(f.read(int.from_bytes(f.read(8), "little")))
