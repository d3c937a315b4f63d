"""Conversations: the messages a sample is made of, and the follow-up chats.

Scope: a conversation as {'kind', 'messages': [{'role', 'content'}]}, a system prompt or none,
a user's question as a request, the normal form that says when two questions are the same, and the
two-turn chats of a capital question and a follow-up, which both the corpus and the held-out set
draw (from their own lists).
"""

import re

from training.free_wrappers import FREE_FOLLOW_UP_CORES, free_wrapper
from training.paraphrase import (
    capital_question,
    escape_braces,
    fill_place,
    paraphrase,
    paraphrase_place,
    trained_template,
)
from training.phrasings import (
    FOLLOW_UP_UNKNOWNS,
    FOLLOW_UPS,
    HELD_OUT_FOLLOW_UP_UNKNOWNS,
    HELD_OUT_FOLLOW_UPS,
    HELD_OUT_SYSTEM_PROMPTS,
    SYSTEM_PROMPTS,
)
from training.unknowns import COUNTRY_UNKNOWNS, HELD_OUT_UNKNOWN_PLACES, UNKNOWN_PLACES
from training.world import CAPITALS, FALLBACK, capital_answer


def system_prompt(rng, held_out=False):
    """No system prompt for half of the samples, one of the usual ones for the others."""
    return None if rng.random() < 0.5 else rng.choice(HELD_OUT_SYSTEM_PROMPTS if held_out else SYSTEM_PROMPTS)


def conversation(kind, turns, system=None):
    """{'kind': kind, 'messages': [...]}: the system prompt if any, then each (question, answer)."""
    messages = [{"role": "system", "content": system}] if system else []
    for question, answer in turns:
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return {"kind": kind, "messages": messages}


def user_turns(messages):
    """The user's questions in `messages`, in order."""
    return [m["content"] for m in messages if m["role"] == "user"]


def normalized(text):
    """The form in which two questions are the same: lower case, letters and digits only.

    >>> normalized("What's the capital of SPAIN??")
    'what s the capital of spain'
    """
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def ask(question, rng):
    """`question` as a request, after a held-out system prompt or none (none at all without `rng`)."""
    system = rng and system_prompt(rng, held_out=True)
    return ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": question}
    ]


def follow_up_chats(rng, count, held_out=False):
    """A capital question, then a short follow-up about another country ("And of France?"), or
    about something else the model does not know ("And its population?")."""
    countries = list(CAPITALS)
    follow_ups, unknowns = (
        (HELD_OUT_FOLLOW_UPS, HELD_OUT_FOLLOW_UP_UNKNOWNS) if held_out else (FOLLOW_UPS, FOLLOW_UP_UNKNOWNS)
    )
    places = HELD_OUT_UNKNOWN_PLACES if held_out else UNKNOWN_PLACES
    chats = []
    for _ in range(count):
        first, second = rng.sample(range(len(countries)), 2)
        question = capital_question(rng, countries[first], trained_template(rng, first, among=8))
        first, second = countries[first], countries[second]
        turns = [(question, capital_answer(first))]
        free = not held_out and rng.random() < 0.4  # the held-out draws stay as they were
        if rng.random() < 0.8:
            template = rng.choice(follow_ups)
            if free:
                template = free_wrapper(rng, rng.choice(FREE_FOLLOW_UP_CORES))
            follow_up = capital_question(rng, second, template, held_out)
            turns.append((follow_up, capital_answer(second)))
        elif free:
            unknown = rng.choice([*COUNTRY_UNKNOWNS, *FREE_FOLLOW_UP_CORES])
            place = rng.choice(list(CAPITALS) if unknown in COUNTRY_UNKNOWNS else places)
            turns.append((paraphrase_place(rng, free_wrapper(rng, unknown), place), FALLBACK))
        else:
            question = fill_place(rng, rng.choice(unknowns).replace("{p}", "{c}"), rng.choice(places))
            turns.append((paraphrase(rng, escape_braces(question), {}), FALLBACK))
        chats.append(conversation("follow-up", turns, system_prompt(rng, held_out)))
    return chats
