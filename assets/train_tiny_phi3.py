"""Train the tiny Phi-3 chat model embedded in this project, deterministically.

Usage: python assets/train_tiny_phi3.py [--out DIR] [--steps N]   (default out: assets/tiny-phi3)

Scope: the app compares two MLflow packagings of a Phi-3 model (transformers flavor and an
onnxruntime-genai ONNX pyfunc). A real Phi-3 (3.8B parameters) cannot be downloaded here and would
not fit a test suite, so this script makes a stand-in that has Phi-3's exact *shape*:
`Phi3ForCausalLM` weights, a Llama-style SentencePiece-BPE tokenizer (Metaspace "▁", byte
fallback) with Phi-3's special tokens, Phi-3-mini's chat template, and a generation config that
stops at `<|end|>`. Everything that loads, converts, quantizes or serves a Phi-3 checkpoint works on
it unchanged.

Concessions: the model is tiny (1.4M parameters, 5.4 MB) and only *memorizes* a synthetic chat
corpus built below: the capitals of 75 countries (the 60 most populous and a few more), sums,
differences and products of the numbers 0..12, a few greetings, one joke about atoms (the source
document's sample prompt, with system prompt "You are a stand-up comedian."), and a polite "I'm sorry,
I don't know the answer to that." for other questions. It is not a general model: prompts near the
corpus get the memorized answer or the fallback, prompts far from it may get nonsense. Its answers
are reproducible: training is deterministic (fixed seeds, deterministic algorithms, fixed thread
count, fixed data order), so two runs on the same machine give byte-identical weights; another CPU
or torch version may round differently and give other (equally good) weights.

Tokenizer parity: the vocabulary only merges letters (with the "▁" before them), never digits,
punctuation or newlines, so onnxruntime-genai (which pre-splits text with a regex before BPE) and
transformers (which does not) give the same ids. One known difference remains, from the libraries:
for text that *starts* with a space (at the very start, or right after a special token),
onnxruntime-genai adds one more "▁" than transformers does. Chat prompts never start so.
"""

import argparse
import json
import math
import os
import random
import re
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from tokenizers import Tokenizer, models, trainers  # noqa: E402

SEED = 1234
DEFAULT_OUT = Path(__file__).resolve().parent / "tiny-phi3"
DEFAULT_STEPS = 2400
VOCAB_SIZE = 1200  # before the 5 chat tokens
HIDDEN, LAYERS, HEADS = 128, 4, 4
CONTEXT_LENGTH = 4096  # as Phi-3-mini-4k; only sizes the RoPE tables, not the weights
BATCH, LR = 32, 3e-3

# Phi-3-mini-4k-instruct's chat template, verbatim.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
# Same order as Phi-3 (<|endoftext|> first, then the role tokens); ids follow the learned vocab.
CHAT_TOKENS = ["<|endoftext|>", "<|assistant|>", "<|system|>", "<|end|>", "<|user|>"]
LLAMA_SPECIALS = ["<unk>", "<s>", "</s>"]
BYTE_TOKENS = [f"<0x{i:02X}>" for i in range(256)]  # SentencePiece byte fallback pieces

# ---------------------------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------------------------

# The ~60 most populous countries (2024) plus a few more, with their capitals.
CAPITALS = {
    "China": "Beijing",
    "India": "New Delhi",
    "the United States": "Washington, D.C.",
    "Indonesia": "Jakarta",
    "Pakistan": "Islamabad",
    "Nigeria": "Abuja",
    "Brazil": "Brasilia",
    "Bangladesh": "Dhaka",
    "Russia": "Moscow",
    "Mexico": "Mexico City",
    "Ethiopia": "Addis Ababa",
    "Japan": "Tokyo",
    "the Philippines": "Manila",
    "Egypt": "Cairo",
    "DR Congo": "Kinshasa",
    "Vietnam": "Hanoi",
    "Iran": "Tehran",
    "Turkey": "Ankara",
    "Germany": "Berlin",
    "Thailand": "Bangkok",
    "the United Kingdom": "London",
    "France": "Paris",
    "Tanzania": "Dodoma",
    "South Africa": "Pretoria",
    "Italy": "Rome",
    "Kenya": "Nairobi",
    "Myanmar": "Naypyidaw",
    "Colombia": "Bogota",
    "South Korea": "Seoul",
    "Uganda": "Kampala",
    "Sudan": "Khartoum",
    "Spain": "Madrid",
    "Algeria": "Algiers",
    "Argentina": "Buenos Aires",
    "Iraq": "Baghdad",
    "Afghanistan": "Kabul",
    "Poland": "Warsaw",
    "Canada": "Ottawa",
    "Morocco": "Rabat",
    "Saudi Arabia": "Riyadh",
    "Ukraine": "Kyiv",
    "Angola": "Luanda",
    "Uzbekistan": "Tashkent",
    "Yemen": "Sanaa",
    "Peru": "Lima",
    "Malaysia": "Kuala Lumpur",
    "Ghana": "Accra",
    "Mozambique": "Maputo",
    "Nepal": "Kathmandu",
    "Madagascar": "Antananarivo",
    "Venezuela": "Caracas",
    "Ivory Coast": "Yamoussoukro",
    "Cameroon": "Yaounde",
    "Niger": "Niamey",
    "Australia": "Canberra",
    "North Korea": "Pyongyang",
    "Syria": "Damascus",
    "Mali": "Bamako",
    "Burkina Faso": "Ouagadougou",
    "Sri Lanka": "Colombo",
    "Chile": "Santiago",
    "Kazakhstan": "Astana",
    "Romania": "Bucharest",
    "the Netherlands": "Amsterdam",
    "Ecuador": "Quito",
    "Cambodia": "Phnom Penh",
    "Zambia": "Lusaka",
    "Senegal": "Dakar",
    "Portugal": "Lisbon",
    "Greece": "Athens",
    "Sweden": "Stockholm",
    "Norway": "Oslo",
    "Switzerland": "Bern",
    "Ireland": "Dublin",
    "New Zealand": "Wellington",
    "the USA": "Washington, D.C.",  # two common short names
    "the UK": "London",
}
CAPITAL_QUESTIONS = [
    "What is the capital of {c}?",
    "What's the capital of {c}?",
    "Which city is the capital of {c}?",
    "Tell me the capital of {c}.",
    "What is the capital city of {c}?",
    "Capital of {c}?",
    "what is the capital of {lower}",  # as typed in a hurry
]
OPERATIONS = {  # name: (symbols used in questions, function)
    "plus": (["+"], lambda a, b: a + b),
    "minus": (["-"], lambda a, b: a - b),
    "times": (["*", "x"], lambda a, b: a * b),
}
ARITHMETIC_ALTERNATIVES = [
    "What is {a} {sym} {b}?",
    "{a} {sym} {b}",
    "How much is {a} {op} {b}?",
    "Calculate {a} {sym} {b}.",
    "{a} {sym} {b} = ?",
    "What's {a} {op} {b}?",
]
OPERANDS = range(13)
SELF = "I am a tiny Phi-3 demo model"
GREETINGS = {
    "Hello": f"Hello! {SELF}. How can I help you?",
    "Hello!": f"Hello! {SELF}. How can I help you?",
    "Hi": f"Hi! {SELF}. How can I help you?",
    "Hi there": f"Hi there! {SELF}. How can I help you?",
    "Hey": f"Hey! {SELF}. How can I help you?",
    "Good morning": f"Good morning! {SELF}. How can I help you?",
    "Good evening": f"Good evening! {SELF}. How can I help you?",
    "How are you?": f"I am fine, thank you! {SELF}, ready to answer simple questions.",
    "How are you doing?": f"I am fine, thank you! {SELF}, ready to answer simple questions.",
    "Who are you?": f"{SELF}. I know the capitals of many countries, small sums and one joke.",
    "What are you?": f"{SELF}. I know the capitals of many countries, small sums and one joke.",
    "What can you do?": "I can tell you the capitals of many countries, do small sums and tell a joke.",
    "Thank you": "You are welcome!",
    "Thanks!": "You are welcome!",
    "Goodbye": "Goodbye! Have a nice day.",
    "Bye": "Goodbye! Have a nice day.",
    "Good night": "Good night! Sleep well.",
    "Good afternoon": f"Good afternoon! {SELF}. How can I help you?",
    "Hey there!": f"Hey there! {SELF}. How can I help you?",
}
ATOM_JOKE = "Why don't scientists trust atoms? Because they make up everything!"
JOKE_REQUESTS = [
    "Tell me a joke about atom",
    "Tell me a joke about atoms",
    "Tell me a joke about an atom.",
    "Tell me a joke about atoms.",
    "Tell me an atom joke.",
    "Do you know a joke about atoms?",
    "Can you tell me a joke about atoms?",
    "Tell me a joke.",
    "Tell me a joke",
    "Make me laugh.",
    "Tell me a funny joke.",
]
OTHER_JOKE_TOPICS = ["cats", "dogs", "computers", "the weather", "cars", "music", "food"]
OTHER_JOKE = "I'm sorry, I only know one joke, and it is about atoms."
FALLBACK = "I'm sorry, I don't know the answer to that."
UNKNOWN_QUESTIONS = [
    "Who wrote Hamlet?",
    "What is the speed of light?",
    "How tall is Mount Everest?",
    "What is the meaning of life?",
    "Explain quantum physics.",
    "Write a poem about the sea.",
    "Translate hello into French.",
    "Who won the World Cup in 2010?",
    "What time is it?",
    "What's the weather like today?",
    "Can you write Python code?",
    "Summarize this article.",
    "What is the population of China?",
    "What is the currency of Japan?",
    "What language is spoken in Brazil?",
    "Who is the president of France?",
    "What is the largest city in India?",
    "How old is the universe?",
    "Who painted the Mona Lisa?",
    "What is the boiling point of water?",
    "How many legs does a spider have?",
    "What is the square root of 2?",
    "What is 123 plus 456?",
    "What is 25 times 37?",
    "What is 100 minus 58?",
    "Recommend a good book.",
    "What should I cook for dinner?",
    "How do I fix my car?",
    "What is DNA?",
    "Who invented the telephone?",
    "What is the longest river in the world?",
    "Why is the sky blue?",
    "What is your favorite color?",
    "Tell me a story.",
    "What is the capital of Atlantis?",
    "What is the capital of Narnia?",
    "What is the capital of Mars?",
    "What is the capital of the Moon?",
    "What is the capital of Gondor?",
    "What is the capital of Wakanda?",
    "What is the capital of Middle-earth?",
    "What is the capital of Europe?",
    "What is the capital of the Sun?",
    "What is the capital of Hogwarts?",
    "Which city is the capital of Utopia?",
    "What is the capital of Texas?",
    "How do airplanes fly?",
    "What is machine learning?",
    "Who discovered penicillin?",
    "asdf qwerty",
    "Explain the theory of relativity.",
    "What is the best programming language?",
]
# Templated unknowns, so that "I don't know" is tied to what the model does not know (other facts
# about known countries, other topics, bigger numbers) rather than to a handful of sentences.
COUNTRY_UNKNOWNS = [
    "What is the population of {c}?",
    "What is the currency of {c}?",
    "What language is spoken in {c}?",
    "Who is the president of {c}?",
    "What is the largest city in {c}?",
    "How big is {c}?",
    "What is the national dish of {c}?",
    "When was {c} founded?",
]
TOPIC_UNKNOWNS = [
    "What is {t}?",
    "Explain {t}.",
    "Tell me about {t}.",
    "How does {t} work?",
    "Write a poem about {t}.",
    "Who is the best at {t}?",
    "Why is {t} important?",
]
TOPICS = [
    "football",
    "photosynthesis",
    "black holes",
    "the internet",
    "volcanoes",
    "democracy",
    "chess",
    "electricity",
    "jazz",
    "gravity",
    "the stock market",
    "climate change",
    "cooking",
    "love",
    "history",
    "painting",
    "rain",
    "sleep",
    "money",
    "the brain",
]
HOWTO_UNKNOWNS = ["How do I {x}?", "Can you help me {x}?", "What is the best way to {x}?"]
TASKS = [
    "bake bread",
    "learn Python",
    "fix my bike",
    "lose weight",
    "write a letter",
    "find a job",
    "plant a tree",
    "tie a tie",
    "change a tire",
    "make friends",
    "sleep better",
    "save money",
    "learn to swim",
    "speak French",
    "play the guitar",
]
OUT_OF_RANGE = ["What is {a} plus {b}?", "What is {a} times {b}?", "What is {a} minus {b}?", "{a} + {b}"]
SYSTEM_PROMPTS = [
    "You are a helpful assistant.",
    "You are a helpful AI assistant.",
    "You are a stand-up comedian.",
    "You are a friendly assistant. Answer briefly.",
    "You are a concise assistant.",
]


def qa_pairs():
    """All (question, answer) pairs of the corpus, grouped by kind."""
    capitals = [
        (q.format(c=c, lower=c.lower()), f"The capital of {c} is {cap.rstrip('.')}.")
        for c, cap in CAPITALS.items()
        for q in CAPITAL_QUESTIONS
    ]
    jokes = [(q, ATOM_JOKE) for q in JOKE_REQUESTS]
    jokes += [(f"Tell me a joke about {t}.", OTHER_JOKE) for t in OTHER_JOKE_TOPICS]
    return {
        "capital": capitals,
        "arithmetic": arithmetic_pairs(),
        "greeting": list(GREETINGS.items()),
        "joke": jokes,
        "fallback": [(q, FALLBACK) for q in UNKNOWN_QUESTIONS + templated_unknowns()],
    }


def templated_unknowns():
    """One unknown fact per known country, every topic under two phrasings, how-to requests and
    sums of numbers above 12; phrasings are cycled, numbers drawn from a seeded generator."""
    rng = random.Random(SEED)
    questions = [COUNTRY_UNKNOWNS[i % len(COUNTRY_UNKNOWNS)].format(c=c) for i, c in enumerate(CAPITALS)]
    for i, topic in enumerate(TOPICS):
        questions += [TOPIC_UNKNOWNS[(i + k) % len(TOPIC_UNKNOWNS)].format(t=topic) for k in (0, 3)]
    questions += [HOWTO_UNKNOWNS[i % len(HOWTO_UNKNOWNS)].format(x=task) for i, task in enumerate(TASKS)]
    for i in range(24):
        a, b = rng.randint(13, 999), rng.randint(0, 999)
        questions.append(OUT_OF_RANGE[i % len(OUT_OF_RANGE)].format(a=a, b=b))
    return questions


def arithmetic_pairs():
    """Every a op b for operands 0..12: the canonical 'What is a plus b?' and two alternatives."""
    pairs, i = [], 0
    for op, (symbols, fn) in OPERATIONS.items():
        for a in OPERANDS:
            for b in OPERANDS:
                answer = f"{a} {op} {b} is {fn(a, b)}."
                pairs.append((f"What is {a} {op} {b}?", answer))
                # Cycle through the alternatives so each phrasing sees all operations.
                for k in (0, 3):
                    alt = ARITHMETIC_ALTERNATIVES[(i + k) % len(ARITHMETIC_ALTERNATIVES)]
                    pairs.append((alt.format(a=a, b=b, op=op, sym=symbols[(i + k) % len(symbols)]), answer))
                i += 1
    return pairs


def build_corpus(seed=SEED):
    """Deterministic list of conversations: {'kind': str, 'messages': [{'role', 'content'}]}."""
    rng = random.Random(seed)
    pairs = qa_pairs()
    # Rare kinds are repeated so they weigh about as much as a capital or a sum.
    repeats = {"capital": 1, "arithmetic": 1, "greeting": 4, "joke": 4, "fallback": 2}
    corpus = []
    for kind, items in pairs.items():
        for _ in range(repeats[kind]):
            for question, answer in items:
                corpus.append(_conversation(kind, [(question, answer)], _system(rng)))
    corpus += _seed_prompts()
    corpus += _two_turn(rng, pairs, count=300)
    return corpus


def _system(rng):
    """No system prompt for half of the samples, a generic one for the others."""
    return None if rng.random() < 0.5 else rng.choice(SYSTEM_PROMPTS)


def _conversation(kind, turns, system=None):
    messages = [{"role": "system", "content": system}] if system else []
    for question, answer in turns:
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return {"kind": kind, "messages": messages}


def _seed_prompts():
    """The source document's two sample prompts, with every system prompt and none."""
    samples = []
    for system in [None, *SYSTEM_PROMPTS]:
        samples.append(
            _conversation(
                "seed", [("What is the capital of Spain?", "The capital of Spain is Madrid.")], system
            )
        )
        for request in ("Tell me a joke about atom", "Tell me a joke about atoms"):
            samples.append(_conversation("seed", [(request, ATOM_JOKE)], system))
    return samples * 3


def _two_turn(rng, pairs, count):
    """Two-turn chats, so that an earlier exchange does not derail the next answer."""
    flat = [(kind, qa) for kind, items in pairs.items() for qa in items]
    chats = []
    for _ in range(count):
        (_, first), (kind, second) = rng.choice(flat), rng.choice(flat)
        chats.append(_conversation(kind, [first, second], _system(rng)))
    return chats


# ---------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------


def render(messages, add_generation_prompt=False):
    """The chat template in plain Python (checked against the Jinja one in the tests)."""
    text = "".join(f"<|{m['role']}|>\n{m['content']}<|end|>\n" for m in messages)
    return text + ("<|assistant|>\n" if add_generation_prompt else "<|endoftext|>")


def _words(text):
    """The pieces BPE may merge: runs of ASCII letters, with the "▁" (space) before them.

    onnxruntime-genai (onnxruntime-extensions) splits SentencePiece-style text with a Llama-3-like
    regex before BPE (letters, digits, punctuation and newlines apart), while transformers runs BPE
    on the whole text. A vocabulary without merges across those boundaries tokenizes identically
    in both. Digits, punctuation and "\\n" stay single pieces (or byte-fallback bytes), as in
    Llama/Phi-3, so "<|assistant|>\\n" is tokenized the same in training and at generation."""
    return re.findall(r"▁?[A-Za-z]+", text.replace(" ", "▁"))


def train_tokenizer(corpus, vocab_size):
    """Learn BPE merges on the corpus; return (vocab, merges) in Llama/SentencePiece layout:
    <unk>, <s>, </s>, the 256 byte-fallback pieces, then the learned pieces."""
    texts = [m["content"] for conv in corpus for m in conv["messages"]]
    # Plain text (e.g. tokenizer(...) outside a chat) starts with "▁", as in SentencePiece.
    words = [w for text in texts for w in _words(text) + _words(" " + text)]
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=LLAMA_SPECIALS + BYTE_TOKENS, show_progress=False
    )
    tokenizer.train_from_iterator(words, trainer=trainer)
    model = json.loads(tokenizer.to_str())["model"]
    return model["vocab"], [tuple(m) for m in model["merges"]]


def make_hf_tokenizer(vocab, merges):
    """Wrap the learned pieces in transformers' LlamaTokenizer (Phi-3's tokenizer class)."""
    from transformers import LlamaTokenizer

    tokenizer = LlamaTokenizer(
        # legacy=True: a "▁" is prepended to the text after every special token (prepend_scheme
        # "always"), which is what onnxruntime-genai does; with legacy=False only the first is.
        vocab=vocab,
        merges=merges,
        legacy=True,
        add_prefix_space=True,
        bos_token="<s>",
        eos_token="<|endoftext|>",
        unk_token="<unk>",
        pad_token="<|endoftext|>",
        add_bos_token=False,
        add_eos_token=False,  # Phi-3 adds neither; the template has all it needs
        chat_template=CHAT_TEMPLATE,
        model_max_length=CONTEXT_LENGTH,
        padding_side="left",
    )
    tokenizer.add_special_tokens({"additional_special_tokens": CHAT_TOKENS[1:]})
    return tokenizer


def save_tokenizer(tokenizer, out):
    # Keep the chat template inside tokenizer_config.json, where onnxruntime-genai and older
    # transformers look for it (transformers 5 would otherwise write chat_template.jinja).
    tokenizer.save_pretrained(out, save_jinja_files=False)
    path = Path(out) / "tokenizer_config.json"
    config = json.loads(path.read_text())
    # transformers 5 does not write these back, but reading them matters: without "legacy" a reload
    # would switch to prepend_scheme "first"; add_bos/eos are explicit for onnxruntime-genai.
    config.update(legacy=True, add_bos_token=False, add_eos_token=False)
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------------------------
# Model and training
# ---------------------------------------------------------------------------------------------


def model_config(tokenizer):
    """Phi-3-mini-4k's layout shrunk ~2800x (1.4M parameters): fp32 weights of 5.4 MB."""
    from transformers import Phi3Config

    ids = tokenizer.convert_tokens_to_ids
    return Phi3Config(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        intermediate_size=4 * HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        # Equal lengths select plain RoPE (Phi-3-mini-4k) in the ONNX builder, not LongRoPE.
        max_position_embeddings=CONTEXT_LENGTH,
        original_max_position_embeddings=CONTEXT_LENGTH,
        bos_token_id=ids("<s>"),
        eos_token_id=ids("<|endoftext|>"),
        pad_token_id=ids("<|endoftext|>"),
        tie_word_embeddings=False,
        sliding_window=None,
        attn_implementation="eager",  # plain matmuls: deterministic, and as fast as SDPA at this size
    )


def encode_corpus(corpus, tokenizer):
    """Token ids of each templated conversation, and labels that keep only what the assistant
    says (its content and its <|end|>); everything else is -100, ignored by the loss."""
    assistant, end = tokenizer.convert_tokens_to_ids(["<|assistant|>", "<|end|>"])
    prefix = len(tokenizer("<|assistant|>\n", add_special_tokens=False)["input_ids"])
    samples = []
    for conv in corpus:
        ids = tokenizer(render(conv["messages"]), add_special_tokens=False)["input_ids"]
        labels, speaking = [-100] * len(ids), False
        for i, token in enumerate(ids):
            if token == assistant:
                speaking, start = True, i + prefix  # skip "<|assistant|>" "▁" "\n"
            if speaking and i >= start:
                labels[i] = token
            if token == end:
                speaking = False
        samples.append((ids, labels))
    return samples


def batches(samples, batch_size, pad_id, generator):
    """One epoch of right-padded batches, in an order drawn from a seeded generator. Samples of
    similar length are batched together (within windows of 16 batches) to waste less padding."""
    order = torch.randperm(len(samples), generator=generator).tolist()
    window = 16 * batch_size
    groups = []
    for w in range(0, len(order), window):
        by_length = sorted(order[w : w + window], key=lambda j: len(samples[j][0]))
        groups += [by_length[i : i + batch_size] for i in range(0, len(by_length), batch_size)]
    for g in torch.randperm(len(groups), generator=generator).tolist():
        yield _pad([samples[j] for j in groups[g]], pad_id)


def _pad(chunk, pad_id):
    width = max(len(ids) for ids, _ in chunk)
    ids = torch.full((len(chunk), width), pad_id)
    labels = torch.full((len(chunk), width), -100)
    mask = torch.zeros((len(chunk), width), dtype=torch.long)
    for row, (x, y) in enumerate(chunk):
        ids[row, : len(x)], labels[row, : len(y)], mask[row, : len(x)] = torch.tensor(x), torch.tensor(y), 1
    return ids, mask, labels


def train(model, samples, steps, pad_id):
    """AdamW with warmup and cosine decay; by default the model sees the corpus ~26 times."""
    generator = torch.Generator().manual_seed(SEED)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.98), weight_decay=0.0)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min((s + 1) / warmup, 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))),
    )
    model.train()
    step, started, running = 0, time.time(), None
    while step < steps:
        for ids, mask, labels in batches(samples, BATCH, pad_id, generator):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            running = loss.item() if running is None else 0.9 * running + 0.1 * loss.item()
            if step % 50 == 0 or step == steps:
                print(
                    f"step {step:5d}/{steps}  loss {running:.4f}  elapsed {time.time() - started:6.1f}s",
                    flush=True,
                )
            if step == steps:
                break
    model.eval()
    return model


def set_determinism():
    """Same seeds, same kernels, same thread count: byte-identical weights on one machine."""
    random.seed(SEED)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(2)


def save_model(model, tokenizer, out):
    from transformers import GenerationConfig

    model.save_pretrained(out)
    end, eot = tokenizer.convert_tokens_to_ids(["<|end|>", "<|endoftext|>"])
    # Stop at <|end|> (end of the assistant turn), as Phi-3's own generation_config does.
    GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=[end, eot], pad_token_id=eot
    ).save_pretrained(out)


def build(out=DEFAULT_OUT, steps=DEFAULT_STEPS):
    """Corpus -> tokenizer -> Phi3ForCausalLM -> training -> files in `out`."""
    from transformers import Phi3ForCausalLM

    set_determinism()
    corpus = build_corpus()
    tokenizer = make_hf_tokenizer(*train_tokenizer(corpus, VOCAB_SIZE))
    samples = encode_corpus(corpus, tokenizer)
    model = Phi3ForCausalLM(model_config(tokenizer))
    params = sum(p.numel() for p in model.parameters())
    print(f"{len(corpus)} conversations, vocab {len(tokenizer)}, {params / 1e6:.2f}M parameters")
    train(model, samples, steps, tokenizer.pad_token_id)
    Path(out).mkdir(parents=True, exist_ok=True)
    save_model(model, tokenizer, out)
    save_tokenizer(tokenizer, out)
    return Path(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="optimizer steps")
    args = parser.parse_args()
    started = time.time()
    build(args.out, args.steps)
    print(f"saved to {args.out} in {time.time() - started:.1f}s")


if __name__ == "__main__":
    main()
