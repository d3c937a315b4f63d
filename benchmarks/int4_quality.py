"""What an int4 export gives up for its speed: how far its answers move from the fp32 export's.

Two measures, both through onnxruntime-genai:

- the KL divergence of the int4 next-token distribution from the fp32 one, teacher-forced:
  the same ids are fed to both exports one at a time, and every position counts. On the
  shaped model (random weights) it is a relative measure only: which export moves further;
- on the tiny model, which has learned a corpus, the share of corpus questions whose greedy
  answer is still exactly right.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from wrappers.config import ROOT, TINY_CHECKPOINT


def teacher_forced_kl(reference: Path, candidate: Path, sequences: list[list[int]]) -> dict[str, float]:
    """Mean KL(reference || candidate) per position, and how often both pick the same top token."""
    kls, same = [], []
    for ids in sequences:
        expected, got = _log_probs(reference, ids), _log_probs(candidate, ids)
        kls.append((np.exp(expected) * (expected - got)).sum(-1))
        same.append(expected.argmax(-1) == got.argmax(-1))
    return {"kl": float(np.concatenate(kls).mean()), "top1_agreement": float(np.concatenate(same).mean())}


def random_sequences(vocab: int, count: int = 4, length: int = 48, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, vocab, length).tolist() for _ in range(count)]


def _log_probs(folder: Path, ids: list[int]) -> np.ndarray:
    """Next-token log-probabilities after each prefix of `ids`, as a [len(ids), vocab] array."""
    model = _model(folder)
    import onnxruntime_genai as og

    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + 1, do_sample=False)
    generator, rows = og.Generator(model, params), []
    for token in ids:  # one at a time: the pruned LM head only scores the last position
        generator.append_tokens([int(token)])
        rows.append(np.asarray(generator.get_logits(), dtype=np.float64).reshape(-1))
    logits = np.stack(rows)
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


_MODELS: dict[Path, object] = {}


def _model(folder: Path):
    import onnxruntime_genai as og

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

    script = _training_script()
    corpus = script.build_corpus()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(TINY_CHECKPOINT))
    chosen = corpus[:: max(1, len(corpus) // count)][:count]
    return [tokenizer(script.render(c["messages"]), add_special_tokens=False)["input_ids"] for c in chosen]


def _tiny_corpus() -> dict[str, list[tuple[str, str]]]:
    """The (question, answer) pairs the tiny model was trained on."""
    return _training_script().qa_pairs()


def _training_script():
    """assets/train_tiny_phi3.py, the one definition of the tiny model's corpus."""
    sys.path.insert(0, str(ROOT / "assets"))
    try:
        import train_tiny_phi3
    finally:
        sys.path.remove(str(ROOT / "assets"))
    return train_tiny_phi3
