"""The tiny model beyond its templates, through the real app backends (the MLflow transformers
flavor and the ONNX int4 pyfunc): held-out phrasings it never saw, and held-out off-topic
questions it must answer with the fallback, not a confident wrong answer."""

from __future__ import annotations

import pytest

from tests.test_tiny_model import load_script
from wrappers import GenerationOptions, run
from wrappers.registry import use_store

SIDES = ["transformers", "onnx"]
GREEDY = GenerationOptions(max_tokens=40)
SCRIPT = load_script()
FALLBACK = SCRIPT.FALLBACK
SPAIN = "The capital of Spain is Madrid."


@pytest.fixture(autouse=True)
def session_store(config):
    """Other test modules point MLflow at stores of their own; come back to the shared one."""
    use_store(config.store_uri, config.artifact_root)


def answer(backend, messages) -> str:
    result = run(backend, messages, GREEDY)
    assert result.error is None, result.error
    return result.text.strip()


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def held_out_answers(backends):
    """Each side's greedy answer to every item of the held-out set."""
    items = SCRIPT.held_out_set()
    return items, {side: [answer(backends[side], messages) for _, messages, _ in items] for side in SIDES}


def share(items, answers, wanted) -> float:
    marks = [got == expected for (kind, _, expected), got in zip(items, answers, strict=True) if wanted(kind)]
    assert len(marks) >= 50  # a share of a handful would say little
    return sum(marks) / len(marks)


@pytest.mark.parametrize("side", SIDES)
def test_held_out_capital_phrasings_are_answered_correctly(held_out_answers, side):
    """Capital questions in phrasings, and country-phrasing combinations, that training never saw,
    with case changes, typos, openings and system prompts of the held-out lists; and follow-ups.
    The held-out *arithmetic* phrasings are printed, not held to 80%: the model falls back on most
    of them (19% right when this checkpoint was trained; see the README)."""
    items, answers = held_out_answers
    accuracy = share(items, answers[side], lambda kind: kind.startswith(("capital", "follow-up")))
    overall = share(items, answers[side], lambda kind: kind != "off-topic")
    print(
        f"\n{side}: held-out capital phrasings and follow-ups {accuracy:.1%},"
        f" all held-out phrasings {overall:.1%}"
    )
    assert accuracy >= 0.8


@pytest.mark.parametrize("side", SIDES)
def test_held_out_off_topic_questions_get_the_fallback(held_out_answers, side):
    """History, sport, code, other languages, trivia: questions written apart from the corpus."""
    items, answers = held_out_answers
    accuracy = share(items, answers[side], lambda kind: kind == "off-topic")
    print(f"\n{side}: held-out off-topic answered with the fallback {accuracy:.1%}")
    assert accuracy >= 0.8


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(
    "question",
    [
        "Spain's capital?",
        "capital of spain",
        "Which city is the capital of Spain?",
        "Tell me Spain's capital city.",
        "Please, what's the capital city of Spain?",
    ],
)
def test_the_issues_paraphrases_get_madrid(backends, side, question):
    assert answer(backends[side], user(question)) == SPAIN


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("seven plus five", "7 plus 5 is 12."),
        ("What is twelve times three?", "12 times 3 is 36."),
        ("How much is 9 - 11?", "9 minus 11 is -2."),
        ("What is 25 plus 5?", FALLBACK),  # outside the range it claims
        ("What is 8 divided by 2?", FALLBACK),  # an operation it does not claim
    ],
)
def test_arithmetic_in_numbers_and_words_within_its_range(backends, side, question, expected):
    assert answer(backends[side], user(question)) == expected


@pytest.mark.parametrize("side", SIDES)
def test_the_world_cup_question_gets_the_fallback(backends, side):
    assert answer(backends[side], user("Who won the 2022 football World Cup?")) == FALLBACK


@pytest.mark.parametrize("side", SIDES)
def test_a_follow_up_question_is_about_the_new_country(backends, side):
    messages = user("What is the capital of Spain?") + [{"role": "assistant", "content": SPAIN}]
    assert answer(backends[side], messages + user("And of France?")) == "The capital of France is Paris."


def test_the_chat_tabs_examples_show_its_skills_and_its_fallback(backends):
    """Every example of the Chat tab gets a real answer in both panes, except exactly one, which
    shows the fallback."""
    from app import EXAMPLES

    fallbacks = []
    for prompt, system in EXAMPLES:
        messages = ([{"role": "system", "content": system}] if system else []) + user(prompt)
        answers = {side: answer(backends[side], messages) for side in SIDES}
        assert answers["transformers"] == answers["onnx"], prompt
        assert answers["onnx"], prompt
        fallbacks += [prompt] if answers["onnx"] == FALLBACK else []
    assert fallbacks == ["Who won the 2022 football World Cup?"]
