"""Paraphrasing: the same question as people type it.

Scope: the surface of a question (an opening or an ending, punctuation, apostrophes, one typo
outside names and numbers, case) and the capital and arithmetic questions built on it; which
country-phrasing combinations are held out. Every draw comes from the `rng` passed in, in a fixed
order: reordering the draws changes the corpus, and so the weights.
"""

import re
import string

from training.phrasings import (
    CAPITAL_TEMPLATES,
    ENDINGS,
    HELD_OUT_PREFIXES,
    HELD_OUT_SUFFIXES,
    PREFIXES,
    SUFFIXES,
)
from training.world import NUMBER_WORDS, OPERATIONS, possessive

# How often paraphrase() adds an opening, an ending, writes in capitals only. Training uses more of
# them than the held-out set, whose rates stay as they were so that its figures stay comparable.
TRAINED_RATES = {"prefix": 0.35, "suffix": 0.25, "upper": 0.15}
HELD_OUT_RATES = {"prefix": 0.3, "suffix": 0.12, "upper": 0.05}


def paraphrase(rng, template, slots, protected=(), held_out=False):
    """Fill `template` and vary its surface: an opening or an ending, the final punctuation,
    apostrophes, one typo in a word outside `protected` (names and numbers: Iran and Iraq are one
    letter apart), and the case. `held_out` draws openings and endings from the held-out lists."""
    prefixes, suffixes = (HELD_OUT_PREFIXES, HELD_OUT_SUFFIXES) if held_out else (PREFIXES, SUFFIXES)
    rates = HELD_OUT_RATES if held_out else TRAINED_RATES
    if rng.random() < rates["prefix"] and not template.startswith("{"):
        template = rng.choice(prefixes) + template[0].lower() + template[1:]
    if rng.random() < rates["suffix"]:
        template = template.rstrip("?.!") + rng.choice(suffixes)
    text = template.format(**slots)
    if rng.random() < 0.4:
        text = text.rstrip("?.! ") + rng.choice(ENDINGS)
    if rng.random() < 0.1:
        text = text.replace("'", "")
    if rng.random() < 0.25:
        text = typo(rng, text, protected)
    return recase(rng, text, rates["upper"])


def typo(rng, text, protected=()):
    """One letter deleted, doubled, replaced or swapped with its neighbour, in one word of four
    letters or more that is not a protected name."""
    keep = {w.lower() for name in protected for w in re.findall(r"[A-Za-z]+", str(name))}
    words = [m for m in re.finditer(r"[A-Za-z]{4,}", text) if m.group().lower() not in keep]
    if not words:
        return text
    word = rng.choice(words)
    w, i = word.group(), rng.randrange(1, len(word.group()) - 1)
    edit = rng.randrange(4)
    if edit == 0:
        w = w[:i] + w[i + 1 :]
    elif edit == 1:
        w = w[:i] + w[i] + w[i:]
    elif edit == 2:
        w = w[:i] + rng.choice("abcdefghijklmnopqrstuvwxyz") + w[i + 1 :]
    else:
        w = w[:i] + w[i + 1] + w[i] + w[i + 2 :]
    return text[: word.start()] + w + text[word.end() :]


def recase(rng, text, upper=0.05):
    r = rng.random()
    if r < 0.2:
        return text.lower()
    if r < 0.2 + upper:
        return text.upper()
    if r < 0.25 + upper:
        return string.capwords(text)
    if r < 0.33 + upper:
        return text[:1].lower() + text[1:]
    return text


def country_forms(country):
    """How a user may name a country: "the Netherlands" also as "Netherlands".

    >>> country_forms("the Netherlands"), country_forms("Spain")
    (['the Netherlands', 'Netherlands'], ['Spain'])
    """
    return [country, country[4:]] if country.startswith("the ") else [country]


def held_out_combination(country_index, template_index):
    """About one country-phrasing combination in seven is never trained on; the two most common
    phrasings ("What is the capital of Spain?", "What's ...") are trained with every country."""
    return template_index >= 2 and (country_index * 3 + template_index) % 7 == 0


def trained_template(rng, country_index, among=None):
    """One of the first `among` phrasings, never a held-out combination with this country."""
    among = among or len(CAPITAL_TEMPLATES)
    t = rng.randrange(among)
    while held_out_combination(country_index, t):
        t = rng.randrange(among)
    return CAPITAL_TEMPLATES[t]


def capital_question(rng, country, template, held_out=False):
    c = rng.choice(country_forms(country))
    return paraphrase(rng, template, {"c": c, "cs": possessive(c)}, [c], held_out)


def arithmetic_question(rng, a, op, b, template, held_out=False):
    forms = OPERATIONS[op][0]
    words = rng.random() < 0.5
    x, y = (NUMBER_WORDS[a], NUMBER_WORDS[b]) if words else (a, b)
    protected = [x, y, *forms]
    return paraphrase(rng, template, {"a": x, "b": y, "op": rng.choice(forms)}, protected, held_out)


def paraphrase_place(rng, template, place):
    return paraphrase(rng, template, {"c": place, "cs": possessive(place)}, [place])


def escape_braces(text):
    return text.replace("{", "{{").replace("}", "}}")


def fill_place(rng, template, place):
    return template.format(c=place, cs=possessive(place))
