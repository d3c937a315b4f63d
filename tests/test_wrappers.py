"""The foundation: both MLflow wrappers of the tiny Phi-3, logged, registered and loaded for real."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.models import convert_input_example_to_serving_input, validate_serving_input
from transformers import AutoTokenizer

from wrappers import GenerationOptions, run
from wrappers.config import ROOT, TINY_CHECKPOINT
from wrappers.onnx_backend import INPUT_EXAMPLE, predict_params

pytestmark = pytest.mark.usefixtures("session_store")  # back to the shared store

SIDES = ["transformers", "onnx"]
SPAIN = [{"role": "user", "content": "What is the capital of Spain?"}]
GREEDY = GenerationOptions(max_tokens=48)


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(TINY_CHECKPOINT)


def versions(name: str) -> list:
    return MlflowClient().search_model_versions(f"name = '{name}'")


def test_first_use_logs_and_registers_both_models_with_tags(backends):
    for backend in backends.values():
        ref = backend.model_ref()
        (version,) = versions(ref.name)
        assert ref.version == str(version.version) == "1"
        assert {"source", "source_hash", "precision", "version.mlflow", "version.onnxruntime-genai"} <= set(
            version.tags
        )
        assert version.description
    assert versions("tiny-phi3-onnx-int4")[0].tags["precision"] == "int4"


def test_second_start_loads_without_logging(backends, config):
    """A new process on the same store finds the registered versions and logs nothing."""
    runs_before = len(mlflow.search_runs(search_all_experiments=True))
    script = textwrap.dedent(f"""
        from pathlib import Path
        from wrappers import AppConfig, build_backends
        config = AppConfig(data_dir=Path({str(config.data_dir)!r}))
        for side, backend in build_backends(config, progress=lambda m: None).items():
            loaded = backend.model.get()
            print(side, loaded.logged_now, loaded.ref.version)
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    lines = sorted(line.split() for line in out.stdout.splitlines())
    assert lines == [["onnx", "False", "1"], ["transformers", "False", "1"]]
    assert len(mlflow.search_runs(search_all_experiments=True)) == runs_before
    assert [len(versions(b.model_ref().name)) for b in backends.values()] == [1, 1]


@pytest.mark.parametrize("side", SIDES)
def test_greedy_answer_to_the_seed_question_names_madrid(backends, side):
    result = run(backends[side], SPAIN, GREEDY)
    assert result.error is None
    assert "Madrid" in result.text
    assert result.response["choices"][0]["message"]["content"] == result.text
    assert result.response["object"] == "chat.completion"


@pytest.mark.parametrize("side", SIDES)
def test_usage_counts_equal_the_tokenizers_counts(backends, tokenizer, side):
    result = run(backends[side], SPAIN, GREEDY)
    prompt = tokenizer.apply_chat_template(SPAIN, tokenize=False, add_generation_prompt=True)
    prompt_tokens = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    # The completion is the answer plus the <|end|> token that ended it.
    completion_tokens = len(tokenizer(result.text, add_special_tokens=False)["input_ids"]) + 1
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (prompt_tokens, completion_tokens)
    assert result.usage.total_tokens == prompt_tokens + completion_tokens
    assert len(result.pieces) == completion_tokens


def test_transformers_raw_is_the_flavors_predict_output(backends):
    result = run(backends["transformers"], SPAIN, GREEDY)
    (completion,) = result.raw
    assert set(completion) == {"id", "object", "created", "model", "usage", "choices"}
    assert completion["choices"][0]["message"]["content"] == result.text
    assert completion["usage"]["completion_tokens"] == result.usage.completion_tokens


def test_onnx_raw_is_what_predict_returns(backends):
    pyfunc = backends["onnx"].model.get().pyfunc
    result = run(backends["onnx"], SPAIN, GREEDY)
    prompt = pyfunc.unwrap_python_model().format_chat(SPAIN)
    assert pyfunc.predict({"prompt": prompt}, params=predict_params(GREEDY)) == result.raw == result.text


def test_onnx_signature_takes_a_prompt_and_generation_params(backends):
    signature = backends["onnx"].model.get().pyfunc.metadata.signature
    assert signature.inputs.input_names() == ["prompt"]
    assert {"max_new_tokens", "max_length", "temperature", "top_p", "top_k", "do_sample", "stop"} == {
        param.name for param in signature.params.params
    }


def test_registered_onnx_model_keeps_its_input_example_and_answers_it(backends):
    """Logging no longer runs the input example (a full-size first start loaded the export
    again for it); the registered model must still carry it, and serve it as MLflow would."""
    loaded = backends["onnx"].model.get()
    example = loaded.pyfunc.input_example
    assert example == INPUT_EXAMPLE
    serving = convert_input_example_to_serving_input(INPUT_EXAMPLE)
    answer = validate_serving_input(loaded.ref.uri, serving)  # loads the registered version afresh
    assert "Madrid" in answer  # predict returns the answer itself


def test_transformers_signature_is_openai_chat(backends):
    signature = backends["transformers"].model.get().pyfunc.metadata.signature
    assert {"messages", "temperature", "max_tokens", "stop"} <= set(signature.inputs.input_names())


@pytest.mark.parametrize("side", SIDES)
def test_stop_sequence_cuts_the_answer_from_any_working_directory(backends, side, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    full = run(backends[side], SPAIN, GREEDY).text
    stop = "Madrid"
    result = run(backends[side], SPAIN, GenerationOptions(max_tokens=48, stop=(stop,)))
    assert result.error is None
    assert result.text == full[: full.index(stop)]
    assert result.response["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("side", SIDES)
def test_max_tokens_limits_the_completion(backends, side):
    result = run(backends[side], SPAIN, GenerationOptions(max_tokens=2))
    assert result.usage.completion_tokens == 2
    assert result.response["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("side", SIDES)
def test_streaming_yields_one_piece_per_token_that_join_to_the_answer(backends, side):
    from wrappers import stream_result

    partials = list(stream_result(backends[side], SPAIN, GREEDY))
    final = partials[-1]
    assert final.done and len(partials) == len(final.pieces) + 1
    assert "".join(final.pieces) == final.text
    assert final.latency.ttft_s < final.latency.total_s


@pytest.mark.parametrize(
    "messages",
    [
        SPAIN,
        [{"role": "user", "content": "What is 7 plus 5?"}],
        [
            {"role": "system", "content": "You are a stand-up comedian."},
            {"role": "user", "content": "Tell me a joke about atom"},
        ],
    ],
)
def test_fp32_onnx_and_transformers_produce_the_same_tokens(fp32_backends, messages):
    options = GenerationOptions(max_tokens=40)
    left, right = (run(fp32_backends[side], messages, options) for side in SIDES)
    assert left.error is None and right.error is None
    assert left.pieces == right.pieces
    assert left.usage == right.usage


def test_fp32_export_is_its_own_registered_model(fp32_backends):
    ref = fp32_backends["onnx"].model_ref()
    assert ref.name == "tiny-phi3-onnx-fp32"
    assert versions(ref.name)[0].tags["precision"] == "fp32"
