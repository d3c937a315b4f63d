"""The embedded tiny Phi-3: its corpus, its deterministic training, and the committed checkpoint,
checked with transformers and with onnxruntime-genai (tokenizer parity and greedy-token parity)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from benchmarks.exports import onnx_export
from training import phrasings
from training.conversations import normalized
from training.corpus import build_corpus
from training.held_out import HELD_OUT_OFF_TOPIC, held_out_set
from training.tokenizer import CHAT_TEMPLATE, render
from training.train import build, encode_corpus
from training.unknowns import UNKNOWN_QUESTIONS
from training.world import ATOM_JOKE, CAPITALS, FALLBACK

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "assets" / "tiny-phi3"
COMEDIAN = "You are a stand-up comedian."


@pytest.fixture(scope="module")
def hf():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(CHECKPOINT)
    model = AutoModelForCausalLM.from_pretrained(CHECKPOINT).eval()
    return tokenizer, model


def chat(user: str, system: str | None = None) -> list[dict]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]


def hf_generate(hf, messages, max_new_tokens=40) -> tuple[list[int], list[int]]:
    """Greedy decoding with transformers: (prompt ids, generated ids)."""
    tokenizer, model = hf
    enc = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    prompt = enc["input_ids"][0].tolist()
    return prompt, out[0, len(prompt) :].tolist()


def hf_answer(hf, messages) -> str:
    return hf[0].decode(hf_generate(hf, messages)[1], skip_special_tokens=True)


# ------------------------------------------------------------------------------------------------
# Corpus
# ------------------------------------------------------------------------------------------------


def test_corpus_covers_every_kind_of_prompt():
    corpus = build_corpus()
    pairs = {(c["messages"][-2]["content"], c["messages"][-1]["content"]) for c in corpus}  # trained on
    answers = {a for _, a in pairs}
    questions = {q for q, _ in pairs}

    capitals = {c for c, cap in CAPITALS.items() if f"The capital of {c} is {cap.rstrip('.')}." in answers}
    assert len(capitals) >= 50
    assert {"China", "India", "the United States", "Nigeria", "Spain", "Norway", "Sweden"} <= capitals

    assert ("What is 7 plus 5?", "7 plus 5 is 12.") in pairs
    assert ("What is 9 minus 4?", "9 minus 4 is 5.") in pairs
    assert ("What is 3 times 6?", "3 times 6 is 18.") in pairs
    assert ("7 + 5", "7 plus 5 is 12.") in pairs
    words = {q.lower() for q, a in pairs if a == "7 plus 5 is 12."}
    assert any("seven" in q and "five" in q for q in words)  # numbers as words too
    assert len({q for q, a in pairs if a == "The capital of Spain is Madrid."}) >= 8  # paraphrases
    assert {f"{a} plus {b} is {a + b}." for a in range(13) for b in range(13)} <= answers

    assert {"Hello", "Hi there", "Good morning", "How are you?", "Who are you?"} <= questions
    assert all("tiny Phi-3 demo model" in a for q, a in pairs if q in {"Hello", "Who are you?"})

    fallback = {q for q, a in pairs if a == FALLBACK}
    assert len(fallback) >= 30 and "What is the capital of Atlantis?" in fallback

    seeds = [c["messages"] for c in corpus if c["kind"] == "seed"]
    assert (
        chat("What is the capital of Spain?")
        + [{"role": "assistant", "content": "The capital of Spain is Madrid."}]
        in seeds
    )
    assert (
        chat("Tell me a joke about atom", COMEDIAN) + [{"role": "assistant", "content": ATOM_JOKE}] in seeds
    )
    assert any(len(c["messages"]) >= 4 for c in corpus)  # two-turn chats
    greeted_sums = [
        c
        for c in corpus
        if c["kind"] == "arithmetic"
        and len(c["messages"]) >= 4
        and "demo model" in c["messages"][-3]["content"]  # the answer to a greeting
    ]
    assert len(greeted_sums) >= 20  # a sum after a greeting, as in a chat that starts with "Hello"
    sent_back = [m["content"] for c in corpus for m in c["messages"][:-1] if m["role"] == "assistant"]
    assert "Hello! I am a tiny Phi-3 demo model." in sent_back  # an earlier answer cut short
    assert any(c["kind"] == "follow-up" and "And of" in c["messages"][-2]["content"] for c in corpus)
    assert sum(c["messages"][0]["role"] == "system" for c in corpus) > len(corpus) / 4


def test_held_out_questions_are_never_trained_on():
    """The held-out set is what the training reports and test_generalization checks: none of its last
    questions is in two epochs of the corpus, and its phrasings are none of the trained ones."""
    trained = {
        normalized(m["content"])
        for epoch in (0, 1)
        for conv in build_corpus(epoch=epoch)
        for m in conv["messages"]
        if m["role"] == "user"
    }
    held_out = held_out_set()
    assert len(held_out) >= 200
    assert not {normalized(messages[-1]["content"]) for _, messages, _ in held_out} & trained
    assert not set(phrasings.HELD_OUT_CAPITAL_TEMPLATES) & set(phrasings.CAPITAL_TEMPLATES)
    assert not set(HELD_OUT_OFF_TOPIC) & set(UNKNOWN_QUESTIONS)
    assert not set(phrasings.HELD_OUT_SYSTEM_PROMPTS) & set(phrasings.SYSTEM_PROMPTS)
    assert not set(phrasings.HELD_OUT_ARITHMETIC_TEMPLATES) & set(phrasings.TRAINED_ARITHMETIC_TEMPLATES)
    assert not {p.lower() for p in phrasings.HELD_OUT_PREFIXES} & {p.lower() for p in phrasings.PREFIXES}
    assert not {p.lower() for p in phrasings.HELD_OUT_SUFFIXES} & {p.lower() for p in phrasings.SUFFIXES}
    assert not {
        normalized(t.format(a=1, op="plus", b=2)) for t in phrasings.HELD_OUT_ARITHMETIC_TEMPLATES
    } & {normalized(t.format(a=1, op="plus", b=2)) for t in phrasings.TRAINED_ARITHMETIC_TEMPLATES}


# sha256 of json.dumps(held_out_set(), sort_keys=True): the set the figures of docs/tiny-model.md
# were measured on, the same from assets/train_tiny_phi3.py and from the training package.
HELD_OUT_SHA256 = "b1e53c22d25f5b6c1d43b97d4b800de477dc7ae0578cf7eacab1aadbbc39b275"


def test_held_out_set_is_the_one_the_figures_were_measured_on():
    """A change to a held-out list, or to the order of its random draws, would make the reported
    figures incomparable with the earlier ones: it must be deliberate, and change this hash."""
    digest = hashlib.sha256(json.dumps(held_out_set(), sort_keys=True).encode()).hexdigest()
    assert digest == HELD_OUT_SHA256


def test_each_epoch_draws_new_paraphrases_deterministically():
    first, again, second = (
        build_corpus(epoch=1),
        build_corpus(epoch=1),
        build_corpus(epoch=2),
    )
    assert first == again
    assert first != second


def test_training_format_is_the_phi3_chat_template(hf):
    """The corpus is rendered exactly as the tokenizer's (Phi-3-mini) chat template renders it."""
    tokenizer = hf[0]
    assert tokenizer.chat_template == CHAT_TEMPLATE
    config = json.loads((CHECKPOINT / "tokenizer_config.json").read_text())
    assert config["chat_template"] == CHAT_TEMPLATE
    for conv in build_corpus()[::97]:
        expected = tokenizer.apply_chat_template(conv["messages"], tokenize=False)
        assert render(conv["messages"]) == expected
    messages = chat("Hi", "You are a helpful assistant.")
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == "<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\n"


def test_only_assistant_turns_are_trained_on(hf):
    tokenizer = hf[0]
    conv = {
        "messages": chat("What is 7 plus 5?", COMEDIAN)
        + [{"role": "assistant", "content": "7 plus 5 is 12."}]
    }
    [(ids, labels)] = encode_corpus([conv], tokenizer)
    trained = [i for i, label in zip(ids, labels, strict=True) if label != -100]
    assert tokenizer.decode(trained) == "7 plus 5 is 12.<|end|>"


def test_only_the_last_answer_of_a_chat_is_trained_on(hf):
    """Earlier answers are context, as a client sends them back (maybe cut short), not targets."""
    tokenizer = hf[0]
    conv = {
        "messages": chat("Hello")
        + [{"role": "assistant", "content": "Hello!"}]
        + chat("What is 7 plus 5?")[0:1]
        + [{"role": "assistant", "content": "7 plus 5 is 12."}]
    }
    [(ids, labels)] = encode_corpus([conv], tokenizer)
    trained = [i for i, label in zip(ids, labels, strict=True) if label != -100]
    assert tokenizer.decode(trained) == "7 plus 5 is 12.<|end|>"


# ------------------------------------------------------------------------------------------------
# Deterministic training
# ------------------------------------------------------------------------------------------------


def test_training_twice_gives_identical_files(tmp_path):
    deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    try:
        first = build(tmp_path / "a", steps=3, report=False)
        second = build(tmp_path / "b", steps=3, report=False)
    finally:  # build() sets process-wide torch options; give the other tests theirs back
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)
    names = sorted(p.name for p in first.iterdir())
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json"} <= set(names)
    assert names == sorted(p.name for p in second.iterdir())
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    # Three steps do not make a model: the weights differ from the committed ones.
    assert (first / "model.safetensors").read_bytes() != (CHECKPOINT / "model.safetensors").read_bytes()


# ------------------------------------------------------------------------------------------------
# The committed checkpoint, with transformers
# ------------------------------------------------------------------------------------------------


def test_checkpoint_is_a_small_phi3():
    config = json.loads((CHECKPOINT / "config.json").read_text())
    assert config["architectures"] == ["Phi3ForCausalLM"] and config["model_type"] == "phi3"
    assert (CHECKPOINT / "model.safetensors").stat().st_size <= 8 * 2**20
    assert sum(p.stat().st_size for p in CHECKPOINT.iterdir()) <= 10 * 2**20
    generation = json.loads((CHECKPOINT / "generation_config.json").read_text())
    tokenizer = json.loads((CHECKPOINT / "tokenizer.json").read_text())
    ids = {t["content"]: t["id"] for t in tokenizer["added_tokens"]}
    assert set(generation["eos_token_id"]) == {ids["<|end|>"], ids["<|endoftext|>"]}
    assert generation["pad_token_id"] == ids["<|endoftext|>"]


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        (chat("What is the capital of Spain?"), "The capital of Spain is Madrid."),
        (chat("What is the capital of Japan?"), "The capital of Japan is Tokyo."),
        (chat("Which city is the capital of Nigeria?"), "The capital of Nigeria is Abuja."),
        (
            chat("What's the capital of Canada?", "You are a helpful assistant."),
            "The capital of Canada is Ottawa.",
        ),
        (chat("Capital of Norway?"), "The capital of Norway is Oslo."),
        (chat("What is 7 plus 5?"), "7 plus 5 is 12."),
        (chat("What is 9 minus 4?"), "9 minus 4 is 5."),
        (chat("What is 3 times 6?"), "3 times 6 is 18."),
        (chat("Hello"), "Hello! I am a tiny Phi-3 demo model. How can I help you?"),
        (chat("Who wrote Hamlet?"), "I'm sorry, I don't know the answer to that."),
        (
            chat("Tell me a joke about atom", COMEDIAN),
            "Why don't scientists trust atoms? Because they make up everything!",
        ),
        (
            chat("Tell me a joke about atoms", COMEDIAN),
            "Why don't scientists trust atoms? Because they make up everything!",
        ),
    ],
)
def test_checkpoint_answers_greedily(hf, messages, expected):
    assert hf_answer(hf, messages) == expected


def test_checkpoint_stops_at_end_token(hf):
    tokenizer = hf[0]
    _, generated = hf_generate(hf, chat("What is the capital of Spain?"))
    assert generated[-1] == tokenizer.convert_tokens_to_ids("<|end|>")
    assert "Madrid" in tokenizer.decode(generated)


def test_checkpoint_keeps_track_in_a_two_turn_chat(hf):
    messages = chat("What is the capital of France?") + [
        {"role": "assistant", "content": "The capital of France is Paris."},
        {"role": "user", "content": "What is the capital of Spain?"},
    ]
    assert "Madrid" in hf_answer(hf, messages)


def test_checkpoint_falls_back_on_questions_it_never_saw(hf):
    assert (
        hf_answer(hf, chat("What is the capital of Freedonia?"))
        == "I'm sorry, I don't know the answer to that."
    )


# ------------------------------------------------------------------------------------------------
# The committed checkpoint, with onnxruntime-genai
# ------------------------------------------------------------------------------------------------

PARITY_PROMPTS = [
    chat("What is the capital of Spain?"),
    chat("Tell me a joke about atom", COMEDIAN),
    chat("What is 7 plus 5?"),
    chat("Hello"),
    chat("Who wrote Hamlet?"),
]
ODD_TEXTS = [
    "What is the capital of Spain?",
    "Hello 😀 world 🚀!",
    "مرحبا بالعالم",
    "שלום עולם",
    "Café crème à la façon de Zoë, naïve résumé",
    "line1\nline2\n\nline3\r\n",
    "1234567890 3.14159 -42 7+5=12",
    "こんにちは世界 Ελληνικά",
    "x  y   z\ttab",
    "It's what they'll say",
    "<|user|>\nHi<|end|>\n<|assistant|>\n",
]


@pytest.fixture(scope="module")
def onnx_fp32(export_cache) -> Path:
    """The checkpoint exported by onnxruntime-genai's model builder (fp32, CPU), as the app builds it."""
    return onnx_export(CHECKPOINT, "fp32", export_cache)


@pytest.fixture(scope="module")
def og_model(onnx_fp32):
    og = pytest.importorskip("onnxruntime_genai")
    model = og.Model(str(onnx_fp32))
    return model, og.Tokenizer(model)


def test_tokenizer_round_trips_any_text(hf):
    tokenizer = hf[0]
    for text in ODD_TEXTS[:-1] + ["\x00\x7f tabs\tand ünïcödé", "🇪🇸 Ñandú"]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.convert_tokens_to_ids("<unk>") not in ids
        assert tokenizer.decode(ids) == text, text


def test_og_tokenizer_matches_transformers(hf, og_model):
    tokenizer, og_tokenizer = hf[0], og_model[1]
    texts = ODD_TEXTS + [render(conv["messages"]) for conv in build_corpus()[::37]]
    texts += [
        tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in PARITY_PROMPTS
    ]
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert [int(i) for i in og_tokenizer.encode(text)] == ids, text


def test_og_chat_template_matches_transformers(hf, og_model):
    tokenizer, og_tokenizer = hf[0], og_model[1]
    for messages in PARITY_PROMPTS:
        expected = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert og_tokenizer.apply_chat_template(json.dumps(messages), add_generation_prompt=True) == expected


def test_og_fp32_greedy_tokens_match_transformers(hf, og_model):
    og = pytest.importorskip("onnxruntime_genai")
    model, og_tokenizer = og_model
    for messages in PARITY_PROMPTS:
        prompt, expected = hf_generate(hf, messages)
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(prompt) + 40, do_sample=False)
        generator = og.Generator(model, params)
        generator.append_tokens(prompt)
        tokens = []
        while not generator.is_done():
            generator.generate_next_token()
            tokens.append(int(generator.get_next_tokens()[0]))
        assert tokens == expected, og_tokenizer.decode(tokens)
        assert og_tokenizer.decode(tokens) == hf[0].decode(expected, skip_special_tokens=True)
