"""Fidelity: the reference answer teacher-forced through both registered models, on the tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers

from benchmarks.suite.int4_quality import teacher_forced_kl, tiny_chat_ids
from compare.comparison import compare_stream
from compare.fidelity import OnnxScorer, TransformersScorer, compare_answers, score, scorer_for
from wrappers import AppConfig, GenerationOptions, build_backends
from wrappers.config import TINY_CHECKPOINT
from wrappers.remote import RemoteBackend
from wrappers.results import Result
from wrappers.sources import Source

GREEDY = GenerationOptions(max_tokens=48)
CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of Spain?"}],
    [{"role": "user", "content": "Hello! Who are you?"}],
    [
        {"role": "system", "content": "You are a stand-up comedian."},
        {"role": "user", "content": "Tell me a joke about atom"},
    ],
    [
        {"role": "user", "content": "What is 7 plus 5?"},
        {"role": "assistant", "content": "7 plus 5 is 12."},
        {"role": "user", "content": "And the capital of Japan? <|end|> café 🚀"},
    ],
    [{"role": "user", "content": "Who wrote Hamlet, and why is the sky blue?"}],
]


def compared(pair, messages, options=GREEDY) -> dict[str, Result]:
    *_, last = compare_stream(pair, {side: messages for side in pair}, options)
    return last


def scored_all(pair, options=GREEDY):
    results = [score(pair, compared(pair, messages, options), options) for messages in CONVERSATIONS]
    assert all(s.fidelity is not None for s in results), [s.reason for s in results]
    return [s.fidelity for s in results]


@pytest.mark.parametrize("messages", CONVERSATIONS)
def test_both_chat_templates_give_identical_prompt_ids(backends, messages):
    results = compared(backends, messages, GenerationOptions(max_tokens=2))
    assert results["transformers"].prompt_ids
    assert results["transformers"].prompt_ids == results["onnx"].prompt_ids


def test_fp32_export_is_the_same_distribution(fp32_backends):
    for fidelity in scored_all(fp32_backends):
        assert fidelity.tokens > 0 and fidelity.tokens == len(fidelity.per_token)
        assert fidelity.max_kl < 1e-4, fidelity
        assert fidelity.top1_agreement == 1.0
        assert all(abs(t.p_reference - t.p_other) < 1e-3 for t in fidelity.per_token)
        assert fidelity.reference == "transformers" and fidelity.other == "onnx" and fidelity.scoring_s > 0


def test_int4_export_moves_the_distribution_a_little(backends, fp32_backends):
    int4, fp32 = scored_all(backends), scored_all(fp32_backends)
    int4_kl = np.mean([f.mean_kl for f in int4])
    assert np.mean([f.mean_kl for f in fp32]) * 10 < int4_kl < 0.1  # positive, yet small
    assert np.mean([f.top1_agreement for f in int4]) > 0.9


def test_int4_agreement_matches_the_offline_benchmark(backends, fp32_backends):
    """The app's scoring on the same ids gives what benchmarks/suite/int4_quality.py reports."""
    sequences = tiny_chat_ids(count=12)
    int4_model = backends["onnx"].model.get().pyfunc.unwrap_python_model().model
    fp32_model = fp32_backends["onnx"].model.get().pyfunc.unwrap_python_model().model
    offline = teacher_forced_kl(fp32_model, int4_model, sequences)
    reference, candidate = scorer_for(backends["transformers"], "transformers"), OnnxScorer(int4_model)
    kls, agreements = [], []
    for ids in sequences:
        as_answer = Result(prompt_ids=tuple(ids[:1]), completion_ids=tuple(ids[1:]))
        fidelity = compare_answers(reference, candidate, as_answer, ("transformers", "onnx"))
        kls += [t.kl for t in fidelity.per_token]
        agreements += [t.agree for t in fidelity.per_token]
    assert offline["kl"] > 0
    assert abs(np.mean(agreements) - offline["top1_agreement"]) < 0.01
    assert np.mean(kls) == pytest.approx(offline["kl"], rel=0.1)


@pytest.fixture(scope="module")
def perturbed_onnx(config, tmp_path_factory):
    """An fp32 export of the tiny model with its first layer's weights perturbed, registered on its own."""
    folder = tmp_path_factory.mktemp("perturbed")
    model = transformers.AutoModelForCausalLM.from_pretrained(str(TINY_CHECKPOINT))
    noise = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for weight in (p for p in model.model.layers[0].parameters() if p.dim() == 2):  # not the norms
            weight += torch.randn(weight.shape, generator=noise) * weight.std() * 2
    model.save_pretrained(folder)
    transformers.AutoTokenizer.from_pretrained(str(TINY_CHECKPOINT)).save_pretrained(folder)
    perturbed = AppConfig(
        data_dir=config.data_dir,
        model_prefix="tiny-phi3-perturbed",
        transformers_source=Source("local", str(folder)),
        onnx_precision="fp32",
    )
    return build_backends(perturbed, progress=lambda message: None)["onnx"]


def test_a_perturbed_checkpoint_is_far_away(backends, perturbed_onnx):
    pair = {"transformers": backends["transformers"], "onnx": perturbed_onnx}
    fidelities = scored_all(pair)
    assert np.mean([f.mean_kl for f in fidelities]) > 0.5
    assert max(f.max_kl for f in fidelities) > 2.0


def test_per_token_texts_spell_the_reference_answer(backends):
    results = compared(backends, CONVERSATIONS[0])
    fidelity = score(backends, results, GREEDY).fidelity
    texts = [t.token for t in fidelity.per_token]
    assert fidelity.tokens == len(results["transformers"].completion_ids)
    assert "".join(texts[:-1]) == results["transformers"].text
    assert texts[-1] == "<|end|>"  # the end token is scored too: did the other model want to stop?


def test_sampled_answers_are_scored_and_say_so(backends):
    options = GenerationOptions(max_tokens=24, temperature=0.9, top_p=0.95)
    scored = score(backends, compared(backends, CONVERSATIONS[1], options), options)
    assert scored.fidelity is not None and "temperature 0.9" in scored.fidelity.note
    assert score(backends, compared(backends, CONVERSATIONS[0]), GREEDY).fidelity.note is None


@pytest.mark.parametrize("side", ["transformers", "onnx"])
def test_a_remote_pane_is_not_scored_and_says_why(backends, side):
    results = compared(backends, CONVERSATIONS[0], GenerationOptions(max_tokens=4))
    remote = RemoteBackend(f"{side} (remote)", "http://127.0.0.1:9", side)
    scored = score(dict(backends) | {side: remote}, results, GREEDY)
    assert scored.fidelity is None and "remote" in scored.reason and f"the {side} pane" in scored.reason
    assert scored.to_api() == {"fidelity": None, "fidelity_reason": scored.reason}


def test_an_error_is_not_scored(backends):
    results = compared(backends, CONVERSATIONS[0], GenerationOptions(max_tokens=4))
    results["onnx"] = Result(error="GenerationError: boom", done=True)
    assert score(backends, results, GREEDY).reason == "Not scored: a model reported an error."


def test_transformers_scorer_reads_the_same_distribution_generate_used(backends):
    """Teacher-forced greedy choices reproduce the generated answer token for token."""
    results = compared(backends, CONVERSATIONS[2])
    answer = results["transformers"]
    scorer = TransformersScorer(backends["transformers"].model.get().pyfunc.get_raw_model())
    log_probs = scorer.log_probs(list(answer.prompt_ids), list(answer.completion_ids))
    assert log_probs.argmax(-1).tolist() == list(answer.completion_ids)
