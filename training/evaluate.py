"""Evaluation: the trained model's greedy answers to the held-out set and to the corpus.

Scope: `evaluate` returns [(kind, question, expected, answer)] for the held-out set and every 8th
canonical pair; `report` turns them into figures.
"""

import torch

from training.conversations import ask
from training.corpus import qa_pairs
from training.held_out import held_out_set


def evaluate(model, tokenizer):
    """Greedy answers to the held-out set and to every 8th canonical pair: [(kind, question, expected,
    answer)]. The canonical pairs are trained on; they show what was learned, not generalization."""
    canonical = [(f"corpus: {k}", ask(q, None), a) for k, items in qa_pairs().items() for q, a in items][::8]
    results = []
    for kind, messages, expected in held_out_set() + canonical:
        results.append((kind, messages[-1]["content"], expected, answer(model, tokenizer, messages)))
    return results


def answer(model, tokenizer, messages, max_new_tokens=40):
    """The model's greedy answer to `messages`, stopping at its generation config's end tokens."""
    enc = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()
