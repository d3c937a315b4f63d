"""The tiny model beyond its templates, through the real app backends (the MLflow transformers
flavor and the ONNX int4 pyfunc): held-out phrasings it never saw, and held-out off-topic
questions it must answer with the fallback, not a confident wrong answer."""

from __future__ import annotations

import pytest

from training.held_out import held_out_set
from training.world import ATOM_JOKE, FALLBACK, NUMBER_WORDS, arithmetic_answer, capital_answer
from wrappers import GenerationOptions, run

pytestmark = pytest.mark.usefixtures("session_store")  # back to the shared store

SIDES = ["transformers", "onnx"]
GREEDY = GenerationOptions(max_tokens=40)
SPAIN = "The capital of Spain is Madrid."


def answer(backend, messages) -> str:
    result = run(backend, messages, GREEDY)
    assert result.error is None, result.error
    return result.text.strip()


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


# The held-out set's longest expected answer is 15 tokens: an answer still going at 24 is wrong at
# any length, and is marked so (cut), so the marks are those of an uncapped run, at 440 answers' cost.
HELD_OUT = GenerationOptions(max_tokens=24)


def held_out_answer(backend, messages) -> str:
    result = run(backend, messages, HELD_OUT)
    assert result.error is None, result.error
    cut = result.response["choices"][0]["finish_reason"] == "length"
    return result.text.strip() + (" [cut at 24 tokens]" if cut else "")


@pytest.fixture(scope="module")
def held_out_answers(backends):
    """Each side's greedy answer to every item of the held-out set."""
    items = held_out_set()
    return items, {side: [held_out_answer(backends[side], m) for _, m, _ in items] for side in SIDES}


def share(items, answers, wanted) -> float:
    marks = [got == expected for (kind, _, expected), got in zip(items, answers, strict=True) if wanted(kind)]
    assert len(marks) >= 50  # a share of a handful would say little
    return sum(marks) / len(marks)


# The issue's targets: 80% of all held-out phrasings, and of the capital phrasings and follow-ups
# alone, in both panes. The committed checkpoint is above them (see docs/tiny-model.md).
CAPITALS_FLOOR, PHRASINGS_FLOOR = 0.8, 0.8


@pytest.mark.parametrize("side", SIDES)
def test_held_out_phrasings_are_answered_correctly(held_out_answers, side):
    """Capital questions in phrasings, and country-phrasing combinations, that training never saw,
    with case changes, typos, openings and system prompts of the held-out lists; follow-ups; and
    sums in held-out wrappers ("Quick maths: 0 * 2")."""
    items, answers = held_out_answers
    capitals = share(items, answers[side], lambda kind: kind.startswith(("capital", "follow-up")))
    overall = share(items, answers[side], lambda kind: kind != "off-topic")
    print(
        f"\n{side}: held-out capital phrasings and follow-ups {capitals:.1%},"
        f" all held-out phrasings {overall:.1%}"
    )
    assert capitals >= CAPITALS_FLOOR
    assert overall >= PHRASINGS_FLOOR


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


# Earlier turns as a client may send them back: the answer whole, or cut short.
EARLIER_TURNS = [
    ("Hello", "Hello! I am a tiny Phi-3 demo model."),
    ("Hi there", "Hi there! I am a tiny Phi-3 demo model. How can I help you?"),
    ("Who are you?", "I am a tiny Phi-3 demo model."),
    ("Good evening", "Good evening!"),
    ("What is the capital of Kenya?", "The capital of Kenya is Nairobi."),
    ("Who painted the Mona Lisa?", FALLBACK),
    ("Tell me a joke about atoms", ATOM_JOKE),
    ("What is 2 plus 2?", "2 plus 2 is 4."),
]
SUMS = [(7, "plus", 5), (9, "minus", 11), (6, "times", 7), (12, "plus", 12), (0, "times", 9), (8, "minus", 3)]


@pytest.mark.parametrize("side", SIDES)
def test_sums_after_an_earlier_turn_are_answered(backends, side):
    """A sum asked after a greeting, a capital, a fallback, a joke or another sum gets the same
    answer as alone (the first retraining got "7 plus 5 is 10." after "Hello"). Not all do: a sum
    in words after an answer that names "Phi-3" may take that 3 for its first number, and a sum
    after another sum may take the earlier one's. Three retrained checkpoints got 18 to 20 of 24;
    the committed one gets 19 with transformers and 18 with ONNX int4, so the floor is 18."""
    marks = []
    for i, (question, earlier) in enumerate(EARLIER_TURNS):
        for a, op, b in SUMS[i % 2 :: 2]:
            words = i % 3 == 0
            x, y = (NUMBER_WORDS[a], NUMBER_WORDS[b]) if words else (a, b)
            messages = (
                user(question) + [{"role": "assistant", "content": earlier}] + user(f"What is {x} {op} {y}?")
            )
            marks.append(answer(backends[side], messages) == arithmetic_answer(a, op, b))
    print(f"\n{side}: sums after an earlier turn {sum(marks)}/{len(marks)}")
    assert sum(marks) >= 18


@pytest.mark.parametrize("side", SIDES)
def test_a_follow_up_question_is_about_the_new_country(backends, side):
    messages = user("What is the capital of Spain?") + [{"role": "assistant", "content": SPAIN}]
    assert answer(backends[side], messages + user("And of France?")) == "The capital of France is Paris."


def capital(country: str) -> str:
    return capital_answer(country)


# A second check, written in this file apart from the training package and its held-out lists, as
# a new user types: what the training reports could have been tuned to its own held-out set.
NEW_USER_QUESTIONS = [
    ("What's the capital of Kenya, please?", capital("Kenya")),
    ("capital of germany??", capital("Germany")),
    ("I'd like to know the capital of Japan", capital("Japan")),
    ("Can you remind me what the capital of Peru is?", capital("Peru")),
    ("Which city is Canada's capital?", capital("Canada")),
    ("Name Italy's capital city.", capital("Italy")),
    ("France capital city", capital("France")),
    ("Hey! What's the capital of Brazil?", capital("Brazil")),
    ("The capital of Australia, please.", capital("Australia")),
    ("Do you know Norway's capital?", capital("Norway")),
    ("tell me the capital of the netherlands", capital("the Netherlands")),
    ("Whats the capital city of South Korea", capital("South Korea")),
    ("Capital of Thailand is?", capital("Thailand")),
    ("I need Sweden's capital.", capital("Sweden")),
    ("what is the capitol of egypt", capital("Egypt")),
    ("Remind me: Greece's capital?", capital("Greece")),
    ("What is 3 plus 4?", "3 plus 4 is 7."),
    ("what's 7 times 8", "7 times 8 is 56."),
    ("eight minus three", "8 minus 3 is 5."),
    ("How much is twelve times twelve?", "12 times 12 is 144."),
    ("Could you tell me what 9 x 3 is?", "9 times 3 is 27."),
    ("6 * 7 = ?", "6 times 7 is 42."),
    ("quick: 11 - 4", "11 minus 4 is 7."),
    ("What is five times zero?", "5 times 0 is 0."),
    ("Result of 10 + 2?", "10 plus 2 is 12."),
    ("Hi! Can you do 4 + 4 for me?", "4 plus 4 is 8."),
    ("Who is the CEO of Apple?", FALLBACK),
    ("What's the weather in Paris today?", FALLBACK),
    ("How do I make pancakes?", FALLBACK),
    ("What is the population of France?", FALLBACK),
    ("Translate 'cat' into Spanish.", FALLBACK),
    ("Who wrote War and Peace?", FALLBACK),
    ("What is 100 times 3?", FALLBACK),
    ("Wer bist du?", FALLBACK),
    ("Explain neural networks.", FALLBACK),
    ("What is the capital of Bavaria?", FALLBACK),
    ("What is the largest ocean?", FALLBACK),
    ("Can you write a limerick?", FALLBACK),
    ("What is the GDP of Germany?", FALLBACK),
    ("What is 7 divided by 7?", FALLBACK),
    ("Which language do people speak in Kenya?", FALLBACK),
    ("Who is the prime minister of Canada?", FALLBACK),
]
NEW_USER_FOLLOW_UPS = [
    ("And France?", capital("France")),
    ("What about Japan?", capital("Japan")),
    ("and for kenya", capital("Kenya")),
    ("Germany?", capital("Germany")),
    ("How about Italy?", capital("Italy")),
    ("Ok and Peru", capital("Peru")),
    ("And its population?", FALLBACK),
    ("what about Narnia?", FALLBACK),
]


@pytest.mark.parametrize("side", SIDES)
def test_a_new_users_questions_are_answered(backends, side):
    """Questions and follow-ups (after "What is the capital of Spain?") that neither the corpus nor
    the training's held-out set has: a capital, a sum or the fallback, each as it should be."""
    spain = user("What is the capital of Spain?") + [{"role": "assistant", "content": SPAIN}]
    asked = [(user(q), want) for q, want in NEW_USER_QUESTIONS]
    asked += [(spain + user(q), want) for q, want in NEW_USER_FOLLOW_UPS]
    misses = [(m[-1]["content"], got) for m, want in asked if (got := answer(backends[side], m)) != want]
    print(f"\n{side}: a new user's questions {len(asked) - len(misses)}/{len(asked)}; misses {misses}")
    assert len(misses) <= 0.1 * len(asked)


def test_the_chat_tabs_examples_show_its_skills_and_its_fallback(backends):
    """Every example of the Chat tab gets a real answer in both panes, except exactly one, which
    shows the fallback."""
    from ui.chat_settings import EXAMPLES

    fallbacks = []
    for prompt, system in EXAMPLES:
        messages = ([{"role": "system", "content": system}] if system else []) + user(prompt)
        answers = {side: answer(backends[side], messages) for side in SIDES}
        assert answers["transformers"] == answers["onnx"], prompt
        assert answers["onnx"], prompt
        fallbacks += [prompt] if answers["onnx"] == FALLBACK else []
    assert fallbacks == ["Who won the 2022 football World Cup?"]
