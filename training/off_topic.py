"""Off-topic questions: everything far from the tiny model's world, which gets the fallback.

Scope: the words of 19 generators (topics, how-tos, history, people, sport, code, other
languages, chit-chat, arithmetic out of its range or of other operations, gibberish) and
`off_topic`, which draws from all of them in turn. The held-out off-topic questions are written
apart, in `held_out`.
"""

from training.paraphrase import fill_place, paraphrase
from training.phrasings import CAPITAL_TEMPLATES, TRAINED_ARITHMETIC_TEMPLATES
from training.unknowns import (
    COUNTRY_UNKNOWNS,
    OTHER_MATH,
    OTHER_OPERATIONS,
    UNKNOWN_PLACES,
    UNKNOWN_QUESTIONS,
)
from training.world import BIG_NUMBER_WORDS, CAPITALS, NUMBER_WORDS, OPERATIONS

TOPIC_UNKNOWNS = [
    "What is {t}?",
    "Explain {t}.",
    "Tell me about {t}.",
    "How does {t} work?",
    "Write a poem about {t}.",
    "Who is the best at {t}?",
    "Why is {t} important?",
    "What do you think about {t}?",
    "Give me facts about {t}.",
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
    "evolution",
    "the Roman Empire",
    "tennis",
    "quantum computing",
    "vaccines",
    "philosophy",
    "poetry",
    "dinosaurs",
    "the ocean",
    "bitcoin",
]
HOWTO_UNKNOWNS = ["How do I {x}?", "Can you help me {x}?", "What is the best way to {x}?", "Teach me to {x}."]
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
    "start a company",
    "train a dog",
]
HISTORY = (
    [
        "When did {e} start?",
        "When did {e} end?",
        "Why did {e} happen?",
        "What caused {e}?",
        "Who won {e}?",
        "How long did {e} last?",
        "What happened during {e}?",
    ],
    [
        "World War I",
        "World War II",
        "the French Revolution",
        "the Cold War",
        "the Renaissance",
        "the Industrial Revolution",
        "the American Civil War",
        "the Russian Revolution",
        "the Black Death",
        "the Crusades",
        "the Battle of Hastings",
        "the Ming dynasty",
        "the Viking age",
        "the Great Depression",
    ],
)
PEOPLE = (
    ["Who was {e}?", "When was {e} born?", "What did {e} do?", "Why is {e} famous?", "How did {e} die?"],
    [
        "Napoleon",
        "Julius Caesar",
        "Cleopatra",
        "Albert Einstein",
        "Isaac Newton",
        "Marie Curie",
        "Leonardo da Vinci",
        "Shakespeare",
        "Mozart",
        "Gandhi",
        "Abraham Lincoln",
        "Genghis Khan",
        "Queen Victoria",
        "Charles Darwin",
        "Ada Lovelace",
        "Elon Musk",
        "Taylor Swift",
    ],
)
SPORTS = (
    [
        "How many players are on a {e} team?",
        "What are the rules of {e}?",
        "Who is the best {e} player?",
        "How do you play {e}?",
        "Is {e} fun?",
        "Who invented {e}?",
    ],
    ["football", "tennis", "basketball", "cricket", "rugby", "golf", "baseball", "hockey", "volleyball"],
)
COMPETITIONS = ["World Cup", "Super Bowl", "Champions League", "Tour de France", "Wimbledon", "NBA Finals"]
COMPETITION_QUESTIONS = ["Who won the {y} {e}?", "Where was the {y} {e} held?", "Who won the {e} in {y}?"]
CODE = (
    ["Write a {l} function to {e}.", "How do I {e} in {l}?", "Show me {l} code to {e}.", "{l}: how to {e}?"],
    [
        "reverse a string",
        "sort a list",
        "read a file",
        "parse JSON",
        "sum a list of numbers",
        "print hello world",
        "make an HTTP request",
        "remove duplicates from a list",
        "count words",
    ],
)
LANGUAGES = ["Python", "JavaScript", "Java", "C++", "Rust", "Go", "SQL", "Bash", "Ruby"]
SNIPPETS = [
    "print('hello')",
    "for i in range(10): print(i)",
    "SELECT * FROM users;",
    "console.log(x)",
    "def f(x): return x * 2",
    "git commit -m 'fix'",
    "int main() { return 0; }",
    "x = [1, 2, 3]",
    "import numpy as np",
    "while True: pass",
    "ls -la",
    "let x = 5;",
]
SNIPPET_QUESTIONS = ["What does `{e}` do?", "Fix this code: {e}", "Why does {e} fail?", "Explain {e}", "{e}"]
FOREIGN = [  # chit-chat and questions in other languages
    "Bonjour, comment ça va ?",
    "Quel temps fait-il ?",
    "Je ne comprends pas.",
    "Où est la gare ?",
    "Hola, ¿qué tal?",
    "¿Cómo te llamas?",
    "¿Dónde está el baño?",
    "Buenos días",
    "Gracias, amigo",
    "Guten Tag, wie geht es Ihnen?",
    "Was machst du?",
    "Ich habe Hunger.",
    "Wo ist der Bahnhof?",
    "Ciao, come va?",
    "Che ore sono?",
    "Buongiorno a tutti",
    "Olá, tudo bem?",
    "Obrigado pela ajuda",
    "Hoe gaat het met je?",
    "Goedemorgen",
    "Jak się masz?",
    "Dzień dobry",
    "Merhaba, nasılsın?",
    "Привет, как дела?",
    "Спасибо большое",
    "你好，你叫什么名字？",
    "谢谢你",
    "こんにちは、元気ですか？",
    "ありがとうございます",
    "مرحبا، كيف حالك؟",
    "शुक्रिया",
    "안녕하세요",
    "Hej, hur mår du?",
    "Tack så mycket",
]
CHIT_CHAT = [
    "What is your favorite movie?",
    "Do you like music?",
    "Are you human?",
    "I'm bored.",
    "Tell me a secret.",
    "What should I do today?",
    "Do you have feelings?",
    "Can you sing?",
    "Where do you live?",
    "What do you dream about?",
    "Are you smarter than me?",
    "I love you.",
    "Do you believe in ghosts?",
    "What is your name?",
    "How old are you?",
    "Can you keep a secret?",
    "Let's play a game.",
]


def off_topic(rng, count):
    """`count` questions outside the model's world, drawn evenly from every generator."""
    generators = [
        lambda: rng.choice(UNKNOWN_QUESTIONS),
        lambda: fill_place(rng, rng.choice(CAPITAL_TEMPLATES), rng.choice(UNKNOWN_PLACES)),
        lambda: fill_place(rng, rng.choice(COUNTRY_UNKNOWNS), rng.choice(list(CAPITALS))),
        lambda: fill_place(rng, rng.choice(COUNTRY_UNKNOWNS), rng.choice(list(CAPITALS))),
        lambda: rng.choice(TOPIC_UNKNOWNS).format(t=rng.choice(TOPICS)),
        lambda: rng.choice(HOWTO_UNKNOWNS).format(x=rng.choice(TASKS)),
        lambda: rng.choice(HISTORY[0]).format(e=rng.choice(HISTORY[1])),
        lambda: rng.choice(PEOPLE[0]).format(e=rng.choice(PEOPLE[1])),
        lambda: rng.choice(SPORTS[0]).format(e=rng.choice(SPORTS[1])),
        lambda: rng.choice(COMPETITION_QUESTIONS).format(
            e=rng.choice(COMPETITIONS), y=rng.randint(1950, 2015)
        ),
        lambda: rng.choice(CODE[0]).format(e=rng.choice(CODE[1]), l=rng.choice(LANGUAGES)),
        lambda: rng.choice(SNIPPET_QUESTIONS).format(e=rng.choice(SNIPPETS)),
        lambda: rng.choice(FOREIGN),
        lambda: rng.choice(CHIT_CHAT),
        lambda: out_of_range(rng),
        lambda: out_of_range(rng),
        lambda: other_operation(rng),
        lambda: rng.choice(OTHER_MATH).format(a=rng.randint(0, 99)),
        lambda: gibberish(rng),
    ]
    questions = []
    for i in range(count):
        question = generators[i % len(generators)]()
        questions.append(paraphrase(rng, question.replace("{", "{{").replace("}", "}}"), {}))
    return questions


def out_of_range(rng, template=None):
    """Arithmetic the model does not claim: an operand above 12 (often just above: 13 to 20), as
    digits or words, in the sums' own wrappers."""
    op = rng.choice(list(OPERATIONS))
    a, b = rng.randint(0, 12), rng.choice([rng.randint(13, 20), rng.randint(13, 99), rng.randint(100, 9999)])
    if rng.random() < 0.5:
        a, b = b, a
    if rng.random() < 0.3:
        big = rng.choice(BIG_NUMBER_WORDS)
        a, b = (big, NUMBER_WORDS[rng.randint(0, 12)]) if rng.random() < 0.5 else (NUMBER_WORDS[b % 13], big)
    template = template or rng.choice(TRAINED_ARITHMETIC_TEMPLATES)
    return template.format(a=a, b=b, op=rng.choice(OPERATIONS[op][0]))


def other_operation(rng, template=None):
    """An operation the model does not claim, on numbers of its range, in the sums' wrappers."""
    a, b = rng.randint(0, 12), rng.randint(1, 12)
    if rng.random() < 0.5:
        a, b = NUMBER_WORDS[a], NUMBER_WORDS[b]
    template = template or rng.choice(TRAINED_ARITHMETIC_TEMPLATES)
    return template.format(a=a, b=b, op=rng.choice(OTHER_OPERATIONS))


def gibberish(rng, count=None):
    letters = "abcdefghijklmnopqrstuvwxyz"
    return " ".join(
        "".join(rng.choice(letters) for _ in range(rng.randint(2, 8)))
        for _ in range(count or rng.randint(1, 4))
    )
