"""What an int4 export gives up for its speed: how far its answers move from the fp32 export's.

Two measures, both through onnxruntime-genai:

- the KL divergence of the int4 next-token distribution from the fp32 one, teacher-forced:
  the same ids are fed to both exports, by the app's own fidelity code (`compare/fidelity.py`),
  and every position counts. On the
  shaped model (random weights) it is a relative measure only: which export moves further;
- on the tiny model, which has learned a corpus, the share of corpus questions whose greedy
  answer is still exactly right.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from compare.fidelity import divergence, onnx_log_probs
from training.corpus import build_corpus, qa_pairs
from training.tokenizer import render
from wrappers.config import TINY_CHECKPOINT


def teacher_forced_kl(reference, candidate, sequences: list[list[int]]) -> dict[str, float]:
    """Mean KL(reference || candidate) per position, and how often both pick the same top token.

    `reference` and `candidate` are export folders or loaded `og.Model`s. Every position after
    the first token counts: the app's own fidelity scoring (`compare/fidelity.py`) on sequences
    that are all answer.
    """
    kls, same = [], []
    for ids in sequences:
        expected, got = (onnx_log_probs(_model(m), ids[:1], ids[1:]) for m in (reference, candidate))
        kl, agree = divergence(expected, got)
        kls.append(kl)
        same.append(agree)
    return {"kl": float(np.concatenate(kls).mean()), "top1_agreement": float(np.concatenate(same).mean())}


def random_sequences(vocab: int, count: int = 4, length: int = 48, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, vocab, length).tolist() for _ in range(count)]


_MODELS: dict[Path, object] = {}


def _model(folder):
    """An export folder's `og.Model`, loaded once; an `og.Model` as it is."""
    import onnxruntime_genai as og

    if not isinstance(folder, str | Path):
        return folder
    if folder not in _MODELS:
        _MODELS[folder] = og.Model(str(folder))
    return _MODELS[folder]


def corpus_accuracy(folder: Path, every: int = 5) -> float:
    """Share of the tiny model's corpus questions (every `every`-th) answered exactly right, greedily."""
    questions = [qa for items in _tiny_corpus().values() for qa in items][::every]
    model = _model(folder)
    import onnxruntime_genai as og

    tokenizer = og.Tokenizer(model)
    right = 0
    for question, answer in questions:
        messages = json.dumps([{"role": "user", "content": question}])
        ids = tokenizer.encode(tokenizer.apply_chat_template(messages, add_generation_prompt=True))
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(ids) + 48, do_sample=False)
        generator, out = og.Generator(model, params), []
        generator.append_tokens(ids)
        while not generator.is_done():
            generator.generate_next_token()
            out.append(int(generator.get_next_tokens()[0]))
        right += tokenizer.decode(out).strip() == answer
    return right / len(questions)


def tiny_chat_ids(count: int = 40) -> list[list[int]]:
    """Token ids of `count` whole conversations from the tiny model's corpus, spread over it."""
    import transformers

    corpus = build_corpus()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(TINY_CHECKPOINT))
    chosen = corpus[:: max(1, len(corpus) // count)][:count]
    return [tokenizer(render(c["messages"]), add_special_tokens=False)["input_ids"] for c in chosen]


def _tiny_corpus() -> dict[str, list[tuple[str, str]]]:
    """The (question, answer) pairs the tiny model was trained on."""
    return qa_pairs()
