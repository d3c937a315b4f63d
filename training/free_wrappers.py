"""Free wrappers: the core of a question inside any words at all.

Scope: the cores ("capital of Spain", "7 plus 5", "France" after a capital question, and the
cores that must get the fallback), the words that may wrap them (the corpus's own, minus the words
that decide an answer), and the (kind, (question, answer)) pairs made of them. They are what
lifted the held-out phrasings from 74% to 90% (docs/tiny-model.md).
"""

import functools
import re

from training.off_topic import (
    CHIT_CHAT,
    HOWTO_UNKNOWNS,
    TASKS,
    gibberish,
    other_operation,
    out_of_range,
)
from training.paraphrase import (
    arithmetic_question,
    capital_question,
    escape_braces,
    paraphrase,
    paraphrase_place,
)
from training.phrasings import (
    ARITHMETIC_CLOSINGS,
    ARITHMETIC_OPENINGS,
    ARITHMETIC_TEMPLATES,
    CAPITAL_TEMPLATES,
    ENDINGS,
    FOLLOW_UP_UNKNOWNS,
    FOLLOW_UPS,
    PREFIXES,
    SUFFIXES,
    SYSTEM_PROMPTS,
)
from training.unknowns import COUNTRY_UNKNOWNS, OTHER_MATH, OTHER_OPERATIONS, UNKNOWN_PLACES
from training.world import (
    BIG_NUMBER_WORDS,
    CAPITALS,
    FALLBACK,
    GREETINGS,
    JOKE_REQUESTS,
    NUMBER_WORDS,
    OPERANDS,
    OPERATIONS,
    arithmetic_answer,
    capital_answer,
)

# Free wrappers: the core of a question ("capital of Spain", "7 plus 5", "France" after a capital
# question) inside any words at all, drawn from the corpus's own phrasings and made-up words. They
# teach that the core decides the answer, not the words around it, so that a phrasing never seen
# ("Could you name Spain's capital?") is read by its core. The same wrappers carry the cores that
# must get the fallback (other facts about a country, places it does not know, big numbers).
FREE_CAPITAL_CORES = [
    "capital of {c}",
    "capital city of {c}",
    "the capital of {c}",
    "the capital city of {c}",
    "{cs} capital",
    "{cs} capital city",
    "{c} capital",
    "{c} capital city",
    "{c}, capital",
    "{c}: capital",
]
# A known country in a question without "capital" gets the fallback, whatever else it asks.
BARE_COUNTRY_CORES = ["{c}", "{cs}", "the {w} of {c}", "{w} of {c}", "{cs} {w}", "{w} in {c}", "{c} {w}"]
FREE_FOLLOW_UP_CORES = ["{c}", "{c}", "{cs}", "of {c}", "for {c}", "{cs} capital", "capital of {c}"]
FREE_WORD_SOURCES = (
    PREFIXES
    + SUFFIXES
    + CAPITAL_TEMPLATES
    + ARITHMETIC_TEMPLATES
    + ARITHMETIC_OPENINGS
    + ARITHMETIC_CLOSINGS
    + FOLLOW_UPS
    + HOWTO_UNKNOWNS
    + TASKS
    + SYSTEM_PROMPTS
    + CHIT_CHAT
)
# Words that decide an answer never pad a wrapper: a country's other facts, greetings, jokes,
# numbers and operations, and "capital" itself.
DECIDING_SOURCES = (
    COUNTRY_UNKNOWNS
    + FOLLOW_UP_UNKNOWNS
    + list(GREETINGS)
    + JOKE_REQUESTS
    + NUMBER_WORDS
    + BIG_NUMBER_WORDS
    + OTHER_OPERATIONS
    + OTHER_MATH
    + [form for forms, _ in OPERATIONS.values() for form in forms]
    + ["capital", "capitals"]
)
# ...except the little words every question has.
COMMON_WORDS = {"what", "is", "the", "of", "in", "a", "an", "who", "how", "do", "me", "and", "it", "to"}


@functools.cache
def wrapper_words():
    """The words free wrappers are made of, sorted (a set's order would change from run to run)."""
    words = {w.lower() for text in FREE_WORD_SOURCES for w in re.findall(r"[A-Za-z']+", text)}
    deciding = {w.lower() for text in DECIDING_SOURCES for w in re.findall(r"[A-Za-z']+", text)}
    return tuple(sorted(words - (deciding - COMMON_WORDS) - {"c", "cs", "op"}))


def free_wrapper(rng, core):
    """`core` inside a few words before and after it, some of them made up, as a template for
    paraphrase() (which adds case, typos and punctuation)."""

    def some(counts):
        return [_some_word(rng, real=0.85) for _ in range(rng.choice(counts))]

    before, after = some([0, 1, 1, 2, 2, 3, 4, 5]), some([0, 0, 1, 1, 2, 3])
    opening = " ".join(before) + rng.choice([" ", " ", ", ", ": "]) if before else ""
    closing = " " + " ".join(after) if after else ""
    return (opening + core + closing).strip() + rng.choice(ENDINGS)


def free_paraphrases(rng):
    """(kind, (question, answer)) pairs in free wrappers: each country's capital, each sum, and as
    many cores that must get the fallback."""
    out = []
    for country in CAPITALS:
        for _ in range(4):
            question = capital_question(rng, country, free_wrapper(rng, rng.choice(FREE_CAPITAL_CORES)))
            out.append(("capital", (question, capital_answer(country))))
    for _ in range(150):
        template = free_wrapper(rng, rng.choice(COUNTRY_UNKNOWNS))
        out.append(("fallback", (paraphrase_place(rng, template, rng.choice(list(CAPITALS))), FALLBACK)))
    for _ in range(100):
        template = free_wrapper(rng, rng.choice(FREE_CAPITAL_CORES))
        out.append(("fallback", (paraphrase_place(rng, template, rng.choice(UNKNOWN_PLACES)), FALLBACK)))
    for _ in range(100):  # a country without "capital": "What is the GDP of Germany?"
        template = free_wrapper(rng, rng.choice(BARE_COUNTRY_CORES).replace("{w}", _some_word(rng)))
        out.append(("fallback", (paraphrase_place(rng, template, rng.choice(list(CAPITALS))), FALLBACK)))
    for _ in range(500):
        op, a, b = rng.choice(list(OPERATIONS)), rng.choice(OPERANDS), rng.choice(OPERANDS)
        question = arithmetic_question(rng, a, op, b, free_wrapper(rng, "{a} {op} {b}"))
        out.append(("arithmetic", (question, arithmetic_answer(a, op, b))))
    for _ in range(250):
        template = free_wrapper(rng, "{a} {op} {b}")
        sum_ = out_of_range(rng, template) if rng.random() < 0.6 else other_operation(rng, template)
        out.append(("fallback", (paraphrase(rng, escape_braces(sum_), {}), FALLBACK)))
    return out


def _some_word(rng, real=0.7):
    """A word of the corpus's phrasings (with probability `real`), or one made up."""
    return rng.choice(wrapper_words()) if rng.random() < real else gibberish(rng, 1)
