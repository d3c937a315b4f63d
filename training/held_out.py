"""The held-out set: what training never sees, on which the report and the tests measure.

Scope: `held_out_set`, drawn from its own seed out of the held-out phrasings, openings, endings,
system prompts and follow-ups (`phrasings`), and the 60 off-topic questions written here, apart
from the generators. `corpus.build_corpus` drops any conversation whose question is in it.
"""

import random

from training import SEED
from training.conversations import ask, follow_up_chats
from training.paraphrase import arithmetic_question, capital_question, held_out_combination
from training.phrasings import CAPITAL_TEMPLATES, HELD_OUT_ARITHMETIC_TEMPLATES, HELD_OUT_CAPITAL_TEMPLATES
from training.world import CAPITALS, FALLBACK, OPERANDS, OPERATIONS, arithmetic_answer, capital_answer

# The held-out off-topic set: written apart from the generators of off_topic.py, never trained on.
HELD_OUT_OFF_TOPIC = [
    # history
    "Who won the 2022 football World Cup?",
    "When did the Berlin Wall fall?",
    "Who was the first emperor of China?",
    "Why did the Titanic sink?",
    "What year did Columbus reach America?",
    "Who built the pyramids?",
    "When was the Magna Carta signed?",
    "What was the Ottoman Empire?",
    "Who was the first man on the moon?",
    "How did the Second World War end?",
    # sport
    "Who has won the most Olympic gold medals?",
    "How long is a marathon?",
    "Which team won the 2019 Rugby World Cup?",
    "Who is the greatest tennis player of all time?",
    "How many rings are on the Olympic flag?",
    "What is offside in soccer?",
    "How many points is a touchdown worth?",
    "Who holds the 100m world record?",
    "Is Messi better than Ronaldo?",
    "When is the next Formula 1 race?",
    # code
    "Write a Python script that downloads a web page.",
    "How do I center a div in CSS?",
    "What is a segmentation fault?",
    "Write a SQL query to count the rows of a table.",
    "Convert this list to a set in Python: [1, 2, 2, 3]",
    "What does git rebase do?",
    "How do I exit vim?",
    "Explain recursion with an example.",
    "What is the difference between a list and a tuple?",
    "Write hello world in Haskell.",
    # other languages
    "Quelle heure est-il ?",
    "¿Cuál es tu comida favorita?",
    "Wie spät ist es?",
    "Mi piace la pizza.",
    "Wat ben jij?",
    "Как тебя зовут?",
    "今天天气怎么样？",
    "お名前は何ですか？",
    "Você fala português?",
    "Salut, tu vas bien ?",
    # science, trivia and chit-chat
    "How far away is the Moon?",
    "What is the chemical symbol for gold?",
    "How many bones are in the human body?",
    "What is the tallest building in the world?",
    "Why do cats purr?",
    "What is the capital of Freedonia?",
    "What is the capital of Scotland Yard?",
    "Which city is the capital of Narnia's neighbour, Archenland?",
    "What is the population of Spain?",
    "What currency does Japan use?",
    "Who is the king of Norway?",
    "What is 250 plus 250?",
    "What is 15 times 15?",
    "What is 81 divided by 9?",
    "Do you like pizza?",
    "Can you recommend a movie?",
    "What's the meaning of the word serendipity?",
    "Sing me a song.",
    "What are you doing this weekend?",
    "Write me a haiku about autumn.",
]


def held_out_set():
    """[(kind, messages, expected answer)]: the held-out phrasings (kinds 'capital: new phrasing',
    'capital: new combination', 'arithmetic: new phrasing', 'follow-up') then the held-out
    off-topic questions (kind 'off-topic', expected: the fallback)."""
    rng = random.Random(SEED + 17)
    items = []
    countries = list(CAPITALS)
    for template in HELD_OUT_CAPITAL_TEMPLATES:
        for country in rng.sample(countries, 8):
            question = capital_question(rng, country, template, held_out=True)
            items.append(("capital: new phrasing", ask(question, rng), capital_answer(country)))
    combos = [(i, t) for i in range(len(countries)) for t in range(len(CAPITAL_TEMPLATES))]
    for i, t in rng.sample([c for c in combos if held_out_combination(*c)], 48):
        question = capital_question(rng, countries[i], CAPITAL_TEMPLATES[t], held_out=True)
        items.append(("capital: new combination", ask(question, rng), capital_answer(countries[i])))
    for template in HELD_OUT_ARITHMETIC_TEMPLATES:
        for _ in range(8):
            op, a, b = rng.choice(list(OPERATIONS)), rng.choice(OPERANDS), rng.choice(OPERANDS)
            question = arithmetic_question(rng, a, op, b, template, held_out=True)
            items.append(("arithmetic: new phrasing", ask(question, rng), arithmetic_answer(a, op, b)))
    for chat in follow_up_chats(rng, 16, held_out=True):
        items.append(("follow-up", chat["messages"][:-1], chat["messages"][-1]["content"]))
    items += [("off-topic", ask(q, rng), FALLBACK) for q in HELD_OUT_OFF_TOPIC]
    return items
