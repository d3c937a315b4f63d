"""The MLflow pyfunc `PythonModel` that runs an ONNX export with onnxruntime-genai.

MLflow stores this file with the model (models-from-code) and executes it on
load, so it imports only onnxruntime-genai, MLflow (and its pandas) and `wrappers.stops`
(shipped beside it through `code_paths`).

Input is the seed's `{"prompt": "<|user|>\\n...<|end|>\\n<|assistant|>\\n"}`; the
output is the completion string. Generation settings arrive as MLflow params.
`predict_stream` yields exactly one chunk per generated token (the end token
included); a chunk can be empty while a stop sequence might be starting or a
character is still incomplete, so callers can count completion tokens.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import mlflow
import onnxruntime_genai as og
import pandas as pd

from wrappers.stops import StopScanner

ARTIFACT_KEY = "onnx_model"
DEFAULT_PARAMS: dict[str, Any] = {
    "max_new_tokens": 256,
    "max_length": 0,  # 0: the model's context length
    "temperature": 0.0,
    "top_p": 1.0,
    "top_k": 50,
    "do_sample": False,
    "stop": [],
}


def session_options() -> dict[str, Any]:
    """ONNX Runtime settings applied at load, so published exports get them too.

    Left unset, the intra-op pool ran on one core of two here. Spinning stays on (the
    default): beside torch, token by token, turning it off cost this model a fifth of its
    decode speed and gained torch a few percent (see docs/benchmarks.md).
    """
    return {"intra_op_num_threads": os.cpu_count() or 1}


class Phi3OnnxModel(mlflow.pyfunc.PythonModel):
    """Phi-3 ONNX export served through onnxruntime-genai's generator loop."""

    def load_context(self, context) -> None:
        path = context.artifacts[ARTIFACT_KEY]
        config = og.Config(path)
        config.overlay(json.dumps({"model": {"decoder": {"session_options": session_options()}}}))
        self.model = og.Model(config)
        self.tokenizer = og.Tokenizer(self.model)
        with open(f"{path}/genai_config.json") as f:
            self.context_length = json.load(f)["model"]["context_length"]

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None):
        """Complete each prompt; one prompt gives a string, several a list.

        pyfunc hands over a DataFrame of the signature's columns; MLflow infers no schema
        from that hint, so the logged signature stays the one checked.
        """
        answers = ["".join(self._generate(p, params)) for p in _prompts(model_input)]
        return answers[0] if len(answers) == 1 else answers

    def predict_stream(self, context, model_input, params: dict[str, Any] | None = None):
        """Stream the completion of the first prompt, one chunk per token."""
        yield from self._generate(_prompts(model_input)[0], params)

    def format_chat(self, messages: list[dict[str, str]]) -> str:
        """Apply the checkpoint's chat template, ready for generation."""
        return self.tokenizer.apply_chat_template(json.dumps(messages), add_generation_prompt=True)

    def _generate(self, prompt: str, params: dict[str, Any] | None) -> Iterator[str]:
        settings = {**DEFAULT_PARAMS, **(params or {})}
        prompt_ids = self.tokenizer.encode(prompt)
        generator = og.Generator(self.model, self._search_options(settings, len(prompt_ids)))
        generator.append_tokens(prompt_ids)
        stream, stops = self.tokenizer.create_stream(), StopScanner(list(settings["stop"]))
        eos = set(self.tokenizer.eos_token_ids)
        while not generator.is_done():
            generator.generate_next_token()
            token = int(generator.get_next_tokens()[0])
            piece = "" if token in eos else stream.decode(token)
            chunk = stops.feed(piece)
            if stops.stopped:
                yield chunk
                return
            yield chunk + (stops.flush() if generator.is_done() else "")

    def _search_options(self, settings: dict[str, Any], prompt_len: int) -> og.GeneratorParams:
        limit = min(settings["max_length"] or self.context_length, self.context_length)
        if prompt_len >= limit:
            raise ValueError(
                f"The prompt has {prompt_len} tokens; this model's limit is {limit}. "
                "Shorten the conversation or clear it."
            )
        params = og.GeneratorParams(self.model)
        params.set_search_options(
            max_length=min(limit, prompt_len + int(settings["max_new_tokens"])),
            do_sample=bool(settings["do_sample"]),
            temperature=float(settings["temperature"]) or 1.0,
            top_p=float(settings["top_p"]),
            top_k=int(settings["top_k"]),
        )
        return params


def _prompts(model_input) -> list[str]:
    """Accept a DataFrame, a dict or a list of dicts, each with a "prompt"."""
    if hasattr(model_input, "to_dict"):
        return [str(p) for p in model_input["prompt"]]
    rows = model_input if isinstance(model_input, list) else [model_input]
    return [str(row["prompt"]) for row in rows]


mlflow.models.set_model(Phi3OnnxModel())
