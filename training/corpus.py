"""The training corpus: the canonical pairs and fresh paraphrases, for each epoch.

Scope: `qa_pairs` (what the model must answer exactly; benchmarks/suite/int4_quality.py checks an
export against them) and `build_corpus`, the conversations of one epoch: every canonical pair,
the source document's sample prompts, paraphrases and free wrappers drawn afresh from
(seed, epoch), follow-ups, and chats of two or three turns; minus anything in the held-out set.
"""

import random
import re

from training import SEED
from training.conversations import conversation, follow_up_chats, normalized, system_prompt, user_turns
from training.free_wrappers import free_paraphrases
from training.held_out import held_out_set
from training.off_topic import off_topic
from training.paraphrase import (
    arithmetic_question,
    capital_question,
    held_out_combination,
    paraphrase,
    trained_template,
)
from training.phrasings import CAPITAL_TEMPLATES, SYSTEM_PROMPTS, TRAINED_ARITHMETIC_TEMPLATES
from training.unknowns import UNKNOWN_QUESTIONS
from training.world import (
    ATOM_JOKE,
    CAPITALS,
    FALLBACK,
    GREETINGS,
    JOKE_REQUESTS,
    NUMBER_WORDS,
    OPERANDS,
    OPERATIONS,
    OTHER_JOKE,
    OTHER_JOKE_TOPICS,
    arithmetic_answer,
    capital_answer,
    possessive,
)


def qa_pairs():
    """The corpus's canonical (question, answer) pairs, grouped by kind: what the model must answer
    exactly (benchmarks/int4_quality.py checks an export against them). Every one is trained on
    in every epoch; the paraphrases come on top of them."""
    capitals = [
        (q.format(c=c, cs=possessive(c)), capital_answer(c))
        for i, c in enumerate(CAPITALS)
        for t, q in enumerate(CAPITAL_TEMPLATES[:7])
        if not held_out_combination(i, t)
    ]
    capitals += [(f"what is the capital of {c.lower()}", capital_answer(c)) for c in CAPITALS]
    jokes = [(q, ATOM_JOKE) for q in JOKE_REQUESTS]
    jokes += [(f"Tell me a joke about {t}.", OTHER_JOKE) for t in OTHER_JOKE_TOPICS]
    return {
        "capital": capitals,
        "arithmetic": arithmetic_pairs(),
        "greeting": list(GREETINGS.items()),
        "joke": jokes,
        "fallback": [(q, FALLBACK) for q in UNKNOWN_QUESTIONS],
    }


def arithmetic_pairs():
    """Every a op b for operands 0..12 as 'What is a op b?', once with the symbol, and twice in
    words ('What is seven plus five?', 'seven plus five')."""
    pairs = []
    for op, (forms, _) in OPERATIONS.items():
        for a in OPERANDS:
            for b in OPERANDS:
                answer = arithmetic_answer(a, op, b)
                pairs.append((f"What is {a} {op} {b}?", answer))
                pairs.append((f"{a} {forms[1]} {b}", answer))
                words = f"{NUMBER_WORDS[a]} {op} {NUMBER_WORDS[b]}"
                pairs += [(f"What is {words}?", answer), (words, answer)]
    return pairs


def build_corpus(seed=SEED, epoch=0):
    """Deterministic list of conversations: {'kind': str, 'messages': [{'role', 'content'}]}.
    Every epoch has all canonical pairs; its paraphrases are drawn afresh from (seed, epoch)."""
    rng = random.Random(seed * 1000 + epoch)
    corpus = []
    repeats = {"capital": 1, "arithmetic": 1, "greeting": 4, "joke": 2, "fallback": 1}
    for kind, items in qa_pairs().items():
        for _ in range(repeats[kind]):
            corpus += [conversation(kind, [qa], system_prompt(rng)) for qa in items]
    corpus += _seed_prompts()
    corpus += [conversation(kind, [qa], system_prompt(rng)) for kind, qa in paraphrases(rng)]
    corpus += follow_up_chats(rng, count=800)
    corpus += _multi_turn(rng, count=1000)
    held_out = {normalized(user_turns(messages)[-1]) for _, messages, _ in held_out_set()}
    return [c for c in corpus if not held_out & {normalized(q) for q in user_turns(c["messages"])}]


def paraphrases(rng):
    """(kind, (question, answer)) pairs in new words: the trained phrasings of each kind."""
    out = []
    for i, country in enumerate(CAPITALS):
        for _ in range(12):
            question = capital_question(rng, country, trained_template(rng, i))
            out.append(("capital", (question, capital_answer(country))))
    for op in OPERATIONS:
        for a in OPERANDS:
            for b in OPERANDS:
                for _ in range(2):
                    question = arithmetic_question(rng, a, op, b, rng.choice(TRAINED_ARITHMETIC_TEMPLATES))
                    out.append(("arithmetic", (question, arithmetic_answer(a, op, b))))
    for question, answer in GREETINGS.items():
        out += [("greeting", (paraphrase(rng, question, {}), answer)) for _ in range(3)]
    for question in JOKE_REQUESTS:
        out.append(("joke", (paraphrase(rng, question, {}, ["atom", "atoms"]), ATOM_JOKE)))
    out += [("fallback", (q, FALLBACK)) for q in off_topic(rng, 1400)]
    return out + free_paraphrases(rng)


def _seed_prompts():
    """The source document's two sample prompts, with every system prompt and none."""
    samples = []
    for system in [None, *SYSTEM_PROMPTS]:
        samples.append(
            conversation(
                "seed", [("What is the capital of Spain?", "The capital of Spain is Madrid.")], system
            )
        )
        for request in ("Tell me a joke about atom", "Tell me a joke about atoms"):
            samples.append(conversation("seed", [(request, ATOM_JOKE)], system))
    return samples * 2


def _multi_turn(rng, count):
    """Chats of two or three turns, so that earlier turns do not derail the last: a greeting (in
    a third of them) or any other question first, then a question of any kind, most often a sum or
    a capital. The earlier answers are as a client may send them back: whole, or cut short."""
    by_kind = {}
    for kind, qa in paraphrases(rng):
        by_kind.setdefault(kind, []).append(qa)
    every = [(kind, qa) for kind, items in by_kind.items() for qa in items]
    last_kinds = ["arithmetic"] * 5 + ["capital"] * 3 + ["fallback"] * 2 + ["greeting", "joke"]
    chats = []
    for _ in range(count):
        earlier = [
            ("greeting", rng.choice(by_kind["greeting"])) if rng.random() < 0.35 else rng.choice(every)
            for _ in range(rng.choice([1, 1, 2]))
        ]
        kind = rng.choice(last_kinds)
        turns = [(q, _as_sent_back(rng, a)) for _, (q, a) in earlier] + [rng.choice(by_kind[kind])]
        chats.append(conversation(kind, turns, system_prompt(rng)))
    return chats


def _as_sent_back(rng, answer):
    """An earlier answer as the client sends it back: usually whole, else without its last
    sentence or only its first ("Hello! I am a tiny Phi-3 demo model.")."""
    sentences = re.findall(r".+?[.!?](?:\s+|$)", answer) or [answer]
    r = rng.random()
    if r < 0.6 or len(sentences) < 2:
        return answer
    kept = sentences[:-1] if r < 0.8 else sentences[:1]
    return "".join(kept).strip()
