"""Train the tiny Phi-3 chat model embedded in this project, deterministically.

Usage: python assets/train_tiny_phi3.py [--out DIR] [--steps N]   (default out: assets/tiny-phi3)

Scope: the app compares two MLflow packagings of a Phi-3 model (transformers flavor and an
onnxruntime-genai ONNX pyfunc). A real Phi-3 (3.8B parameters) cannot be downloaded here and would
not fit a test suite, so this script makes a stand-in that has Phi-3's exact *shape*:
`Phi3ForCausalLM` weights, a Llama-style SentencePiece-BPE tokenizer (Metaspace "▁", byte
fallback) with Phi-3's special tokens, Phi-3-mini's chat template, and a generation config that
stops at `<|end|>`. Everything that loads, converts, quantizes or serves a Phi-3 checkpoint works on
it unchanged.

Its small world: the capitals of 75 countries (the 60 most populous and a few more), sums,
differences and products of whole numbers 0 to 12 (as digits or words: "seven plus five"), a few
greetings, one joke about atoms (the source document's sample prompt, with system prompt "You are
a stand-up comedian."), and "I'm sorry, I don't know the answer to that." for everything else:
other facts about those countries, places it does not know, bigger numbers, division, history,
sport, code, other languages, chit-chat.

Generalizing within it: each epoch has the canonical pairs (`qa_pairs`) and fresh paraphrases,
drawn from (seed, epoch): 26 phrasings of a capital question, 314 of a sum (14 written out, and 25
openings by 12 closings around "a op b", which also carry the out-of-range sums and the operations
it does not claim, so that the words around a sum do not decide the answer), polite openings and
endings, case, punctuation, missing apostrophes, one-letter typos (never in a country's name or a
number: Iran and Iraq are one letter apart), a system prompt or none, follow-ups ("And of
France?"), chats where a greeting or another question comes first (the earlier answers whole or cut
short, as a client may send them back; only the last answer is learned), and about 1,400 off-topic
questions from 19 generators. On top of these come free wrappers: the core of a question ("capital
of Spain", "7 plus 5", "France" after a capital question) inside random words of the corpus's own
phrasings and made-up ones, beside the cores that must get the fallback in the same wrappers (other
facts about a country, unknown places, big numbers, other operations), so that the core decides
the answer and a phrasing never seen is read by it. `held_out_set` holds what training never
sees: 8 other capital phrasings, one country-phrasing combination in seven, 4 other sum phrasings,
other openings, endings, system prompts and follow-ups, and 60 off-topic questions written apart.
The script prints its accuracy on them after training.

Concessions: the model is tiny (1.4M parameters, 5.8 MB); it knows nothing outside that world and
can still answer a question far from its corpus with a confident wrong answer. Its answers are
reproducible: training is deterministic (fixed seeds, deterministic algorithms, fixed thread count,
fixed data order), so two runs on the same machine give byte-identical weights; another CPU or
torch version may round differently and give other (equally good) weights.

Tokenizer parity: the vocabulary only merges letters (with the "▁" before them), never digits,
punctuation or newlines, so onnxruntime-genai (which pre-splits text with a regex before BPE) and
transformers (which does not) give the same ids. One known difference remains, from the libraries:
for text that *starts* with a space (at the very start, or right after a special token),
onnxruntime-genai adds one more "▁" than transformers does. Chat prompts never start so.
"""

import argparse
import functools
import json
import math
import os
import random
import re
import string
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Idle OpenMP threads sleep instead of spinning: on a busy machine, spinning threads made each step
# ten times slower (measured). Results are the same either way.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from tokenizers import Tokenizer, models, trainers  # noqa: E402

SEED = 1234
DEFAULT_OUT = Path(__file__).resolve().parent / "tiny-phi3"
DEFAULT_STEPS = 2600
VOCAB_SIZE = 1500  # before the 5 chat tokens
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
# How people ask for a capital. Slots: {c} the country as typed, {cs} its possessive.
CAPITAL_TEMPLATES = [
    "What is the capital of {c}?",
    "What's the capital of {c}?",
    "Which city is the capital of {c}?",
    "Tell me the capital of {c}.",
    "What is the capital city of {c}?",
    "Capital of {c}?",
    "capital of {c}",
    "{cs} capital?",
    "What is {cs} capital?",
    "Tell me {cs} capital city.",
    "What city is the capital of {c}?",
    "The capital of {c} is?",
    "{c} capital",
    "{c}: capital?",
    "What is the name of the capital of {c}?",
    "Which city is {cs} capital?",
    "Do you know the capital of {c}?",
    "I want to know the capital of {c}.",
    "What's {cs} capital city?",
    "capital city of {c}?",
    "Give me the capital of {c}.",
    "Which is the capital of {c}?",
    "In {c}, what is the capital?",
    "Tell me what the capital of {c} is.",
    "the capital of {c}?",
    "What is the capital of the country {c}?",
]
# Never trained on: the held-out phrasings the script reports on.
HELD_OUT_CAPITAL_TEMPLATES = [
    "Which city serves as the capital of {c}?",
    "Say the capital of {c}.",
    "What would be the capital of {c}?",
    "{c}, capital city?",
    "Could you name {cs} capital?",
    "what city is {cs} capital",
    "Do you happen to know the capital city of {c}?",
    "Name the capital of {c}.",
]
# Polite or chatty openings and endings; the held-out ones are only in the held-out set.
PREFIXES = [
    "Please, ",
    "Please ",
    "Can you tell me ",
    "Could you tell me ",
    "Hey, ",
    "Hi, ",
    "Hello! ",
    "Quick question: ",
    "Excuse me, ",
    "Tell me, ",
    "I'd like to know ",
    "So, ",
    "Ok, ",
    "Question: ",
    "I was wondering, ",
    "May I ask: ",
    "Hi there! ",
    "Dear assistant, ",
    "Hey there, ",
    "Yo, ",
    "One question: ",
    "Help me out: ",
    "Right, ",
    "Well, ",
    "Now, ",
    "Hmm, ",
    "Quick one: ",
    "Could you please tell me ",
    "Can you please tell me ",
    "I need to know ",
    "Tell me please, ",
    "Pardon me, ",
    "Hi assistant, ",
    "Good day! ",
    "Greetings! ",
    "Another question: ",
    "I have a question: ",
    "Hello there, ",
    "Just wondering, ",
    "Out of interest, ",
    "By the way, ",
    "Help! ",
]
HELD_OUT_PREFIXES = [
    "Kindly tell me ",
    "Would you tell me ",
    "Sorry to bother you, but ",
    "Good morning! ",
    "Let me ask you: ",
]
SUFFIXES = [
    " please",
    ", please",
    " thanks",
    ", thank you",
    " pls",
    " :)",
    " thx",
    " thank you!",
    " please?",
    " ty",
    " asap",
    " quickly",
    " for my homework",
    " I forgot",
    " again",
    " exactly",
    " by the way",
    " (for a quiz)",
    " - thanks",
    " cheers",
    " :D",
    " lol",
    " please and thank you",
    " right?",
]
HELD_OUT_SUFFIXES = [" Thanks a lot!", " if you know", " (just curious)"]
ENDINGS = ["?", "", ".", "??", " ?", "!", "?!", "..."]  # what a question may end with

OPERATIONS = {  # name: (how a question may write it, function)
    "plus": (["plus", "+"], lambda a, b: a + b),
    "minus": (["minus", "-"], lambda a, b: a - b),
    "times": (["times", "*", "x", "multiplied by"], lambda a, b: a * b),
}
ARITHMETIC_TEMPLATES = [
    "What is {a} {op} {b}?",
    "What's {a} {op} {b}?",
    "How much is {a} {op} {b}?",
    "Calculate {a} {op} {b}.",
    "{a} {op} {b} = ?",
    "{a} {op} {b}",
    "{a} {op} {b}?",
    "Compute {a} {op} {b}.",
    "What does {a} {op} {b} make?",
    "Tell me {a} {op} {b}.",
    "{a} {op} {b} =",
    "Work out {a} {op} {b}.",
    "What is the result of {a} {op} {b}?",
    "How much does {a} {op} {b} make?",
]
# Sums are also asked inside words of all kinds: every opening with every closing is trained, so
# that what surrounds "a op b" does not decide between an answer and the fallback; the range and
# the operation do (the same wrappers carry the out-of-range and other-operation questions).
ARITHMETIC_OPENINGS = [
    "What is",
    "what's",
    "How much is",
    "Calculate",
    "Compute",
    "Tell me",
    "Work out",
    "Evaluate",
    "Figure out",
    "Give me",
    "Find",
    "Help me with",
    "Answer this:",
    "Math question:",
    "Here is a sum:",
    "Can you calculate",
    "Could you compute",
    "Do you know",
    "I need the answer to",
    "Please compute",
    "Try this:",
    "Sum:",
    "What's the answer to",
    "Do the math:",
    "Check this:",
]
ARITHMETIC_CLOSINGS = [
    "?",
    "",
    ".",
    " =",
    " = ?",
    " equals?",
    " equals what?",
    " is what?",
    " is how much?",
    ", please.",
    " exactly?",
    " in your head?",
]
TRAINED_ARITHMETIC_TEMPLATES = ARITHMETIC_TEMPLATES + [
    f"{opening} {{a}} {{op}} {{b}}{closing}"
    for opening in ARITHMETIC_OPENINGS
    for closing in ARITHMETIC_CLOSINGS
]
HELD_OUT_ARITHMETIC_TEMPLATES = [
    "Can you work out {a} {op} {b} for me?",
    "Quick maths: {a} {op} {b}",
    "What do you get for {a} {op} {b}?",
    "Solve {a} {op} {b}.",
]
OPERANDS = range(13)  # the range the model claims: whole numbers 0 to 12, as digits or words
NUMBER_WORDS = "zero one two three four five six seven eight nine ten eleven twelve".split()  # noqa: SIM905
BIG_NUMBER_WORDS = [
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
    "fifty",
    "hundred",
    "thousand",
]
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
    "Hello! Who are you?": f"{SELF}. I know the capitals of many countries, small sums and one joke.",
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
# Places that have no capital the model knows: fictional, sub-national, planets, continents.
UNKNOWN_PLACES = [
    "Atlantis",
    "Narnia",
    "Mars",
    "the Moon",
    "Gondor",
    "Wakanda",
    "Middle-earth",
    "Europe",
    "the Sun",
    "Hogwarts",
    "Utopia",
    "Texas",
    "California",
    "Bavaria",
    "Ontario",
    "Quebec",
    "Florida",
    "Asia",
    "Africa",
    "Antarctica",
    "Jupiter",
    "Venus",
    "Mordor",
    "Westeros",
    "Oz",
    "El Dorado",
    "Neverland",
    "Tatooine",
    "Springfield",
    "Gotham",
    "Lilliput",
    "Sokovia",
    "Latveria",
    "Genovia",
    "Bavaria",
    "Siberia",
    "Patagonia",
    "Tuscany",
    "Catalonia",
    "Alaska",
    "Hawaii",
    "Kansas",
    "Ohio",
    "Yorkshire",
    "the Sahara",
    "the Amazon",
    "the ocean",
    "my house",
    "the world",
    "the galaxy",
    "Lapland",
    "Arcadia",
]
# Other facts about known countries: the country is known, the question is not.
COUNTRY_UNKNOWNS = [
    "What is the population of {c}?",
    "What is the currency of {c}?",
    "What language is spoken in {c}?",
    "Who is the president of {c}?",
    "What is the largest city in {c}?",
    "How big is {c}?",
    "What is the national dish of {c}?",
    "When was {c} founded?",
    "Tell me about {c}.",
    "What is the flag of {c}?",
    "Is {c} a nice place to visit?",
    "What is the weather like in {c}?",
    "Who won the last election in {c}?",
    "What is {cs} national anthem?",
    "How many people live in {c}?",
    "What is the highest mountain in {c}?",
    "What sport is popular in {c}?",
    "Where is {c}?",
]
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
# Operations the model does not claim, asked in the sums' own wrappers ("Calculate 8 divided by 2.").
# No equations ("Solve x + 3 = 7."): their words are a sum's words, and they taught it to refuse sums.
OTHER_OPERATIONS = ["divided by", "/", "to the power of", "modulo", "percent of"]
OTHER_MATH = ["What is the square root of {a}?", "Is {a} a prime number?", "What is {a} squared?"]
SYSTEM_PROMPTS = [
    "You are a helpful assistant.",
    "You are a helpful AI assistant.",
    "You are a stand-up comedian.",
    "You are a friendly assistant. Answer briefly.",
    "You are a concise assistant.",
    "You are a geography expert.",
    "You are a math tutor.",
    "Answer in one sentence.",
    "You are a chatbot.",
    "Be polite and brief.",
]
HELD_OUT_SYSTEM_PROMPTS = ["You are a knowledgeable travel guide.", "Reply briefly and accurately."]
FOLLOW_UPS = [
    "And of {c}?",
    "What about {c}?",
    "And {c}?",
    "How about {c}?",
    "And the capital of {c}?",
    "And for {c}?",
    "Same for {c}.",
    "and {c}",
    "What about {cs}?",
    "Then {c}?",
    "Also {c}?",
    "{c}?",
    "And in {c}?",
    "What of {c}?",
    "Next: {c}.",
    "Same question for {c}.",
    "And {cs} capital?",
    "What about the capital of {c}?",
    "Tell me {cs} too.",
    "Another one: {c}",
]
HELD_OUT_FOLLOW_UPS = ["And what about {c}?", "Now {c}?", "Okay, and {c}?"]
FOLLOW_UP_UNKNOWNS = [
    "And its population?",
    "What language do they speak there?",
    "Who is its president?",
    "And of {p}?",
    "What about {p}?",
    "Is it big?",
    "Why?",
    "And its currency?",
]
HELD_OUT_FOLLOW_UP_UNKNOWNS = ["How many people live there?", "And how about {p}?"]
# The held-out off-topic set: written apart from the generators above, never trained on.
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
HELD_OUT_UNKNOWN_PLACES = ["Freedonia", "Ruritania", "Pluto", "Saturn", "Bohemia"]

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


def capital_answer(country):
    return f"The capital of {country} is {CAPITALS[country].rstrip('.')}."


def possessive(name):
    return name + ("'" if name.endswith("s") else "'s")


def held_out_combination(country_index, template_index):
    """About one country-phrasing combination in seven is never trained on; the two most common
    phrasings ("What is the capital of Spain?", "What's ...") are trained with every country."""
    return template_index >= 2 and (country_index * 3 + template_index) % 7 == 0


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


def arithmetic_answer(a, op, b):
    return f"{a} {op} {b} is {OPERATIONS[op][1](a, b)}."


# ---------------------------------------------------------------------------------------------
# Paraphrasing: the same question as people type it
# ---------------------------------------------------------------------------------------------


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
    """How a user may name a country: "the Netherlands" also as "Netherlands"."""
    return [country, country[4:]] if country.startswith("the ") else [country]


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


# ---------------------------------------------------------------------------------------------
# The training corpus: the canonical pairs and fresh paraphrases, for each epoch
# ---------------------------------------------------------------------------------------------


def build_corpus(seed=SEED, epoch=0):
    """Deterministic list of conversations: {'kind': str, 'messages': [{'role', 'content'}]}.
    Every epoch has all canonical pairs; its paraphrases are drawn afresh from (seed, epoch)."""
    rng = random.Random(seed * 1000 + epoch)
    corpus = []
    repeats = {"capital": 1, "arithmetic": 1, "greeting": 4, "joke": 2, "fallback": 1}
    for kind, items in qa_pairs().items():
        for _ in range(repeats[kind]):
            corpus += [_conversation(kind, [qa], _system(rng)) for qa in items]
    corpus += _seed_prompts()
    corpus += [_conversation(kind, [qa], _system(rng)) for kind, qa in paraphrases(rng)]
    corpus += _follow_ups(rng, count=800)
    corpus += _multi_turn(rng, count=1000)
    held_out = {_normal(_user_turns(messages)[-1]) for _, messages, _ in held_out_set()}
    return [c for c in corpus if not held_out & {_normal(q) for q in _user_turns(c["messages"])}]


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


def off_topic(rng, count):
    """`count` questions outside the model's world, drawn evenly from every generator."""
    generators = [
        lambda: rng.choice(UNKNOWN_QUESTIONS),
        lambda: _fill(rng, rng.choice(CAPITAL_TEMPLATES), rng.choice(UNKNOWN_PLACES)),
        lambda: _fill(rng, rng.choice(COUNTRY_UNKNOWNS), rng.choice(list(CAPITALS))),
        lambda: _fill(rng, rng.choice(COUNTRY_UNKNOWNS), rng.choice(list(CAPITALS))),
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
        lambda: _out_of_range(rng),
        lambda: _out_of_range(rng),
        lambda: _other_operation(rng),
        lambda: rng.choice(OTHER_MATH).format(a=rng.randint(0, 99)),
        lambda: _gibberish(rng),
    ]
    questions = []
    for i in range(count):
        question = generators[i % len(generators)]()
        questions.append(paraphrase(rng, question.replace("{", "{{").replace("}", "}}"), {}))
    return questions


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
        out.append(("fallback", (_free_fill(rng, template, rng.choice(list(CAPITALS))), FALLBACK)))
    for _ in range(100):
        template = free_wrapper(rng, rng.choice(FREE_CAPITAL_CORES))
        out.append(("fallback", (_free_fill(rng, template, rng.choice(UNKNOWN_PLACES)), FALLBACK)))
    for _ in range(100):  # a country without "capital": "What is the GDP of Germany?"
        template = free_wrapper(rng, rng.choice(BARE_COUNTRY_CORES).replace("{w}", _some_word(rng)))
        out.append(("fallback", (_free_fill(rng, template, rng.choice(list(CAPITALS))), FALLBACK)))
    for _ in range(500):
        op, a, b = rng.choice(list(OPERATIONS)), rng.choice(OPERANDS), rng.choice(OPERANDS)
        question = arithmetic_question(rng, a, op, b, free_wrapper(rng, "{a} {op} {b}"))
        out.append(("arithmetic", (question, arithmetic_answer(a, op, b))))
    for _ in range(250):
        template = free_wrapper(rng, "{a} {op} {b}")
        sum_ = _out_of_range(rng, template) if rng.random() < 0.6 else _other_operation(rng, template)
        out.append(("fallback", (paraphrase(rng, _braces(sum_), {}), FALLBACK)))
    return out


def _some_word(rng, real=0.7):
    """A word of the corpus's phrasings (with probability `real`), or one made up."""
    return rng.choice(wrapper_words()) if rng.random() < real else _gibberish(rng, 1)


def _free_fill(rng, template, place):
    return paraphrase(rng, template, {"c": place, "cs": possessive(place)}, [place])


def _braces(text):
    return text.replace("{", "{{").replace("}", "}}")


def _fill(rng, template, place):
    return template.format(c=place, cs=possessive(place))


def _out_of_range(rng, template=None):
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


def _other_operation(rng, template=None):
    """An operation the model does not claim, on numbers of its range, in the sums' wrappers."""
    a, b = rng.randint(0, 12), rng.randint(1, 12)
    if rng.random() < 0.5:
        a, b = NUMBER_WORDS[a], NUMBER_WORDS[b]
    template = template or rng.choice(TRAINED_ARITHMETIC_TEMPLATES)
    return template.format(a=a, b=b, op=rng.choice(OTHER_OPERATIONS))


def _gibberish(rng, count=None):
    letters = "abcdefghijklmnopqrstuvwxyz"
    return " ".join(
        "".join(rng.choice(letters) for _ in range(rng.randint(2, 8)))
        for _ in range(count or rng.randint(1, 4))
    )


def _system(rng, held_out=False):
    """No system prompt for half of the samples, one of the usual ones for the others."""
    return None if rng.random() < 0.5 else rng.choice(HELD_OUT_SYSTEM_PROMPTS if held_out else SYSTEM_PROMPTS)


def _conversation(kind, turns, system=None):
    messages = [{"role": "system", "content": system}] if system else []
    for question, answer in turns:
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return {"kind": kind, "messages": messages}


def _user_turns(messages):
    return [m["content"] for m in messages if m["role"] == "user"]


def _normal(text):
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


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
    return samples * 2


def _follow_ups(rng, count, held_out=False):
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
            turns.append((_free_fill(rng, free_wrapper(rng, unknown), place), FALLBACK))
        else:
            question = _fill(rng, rng.choice(unknowns).replace("{p}", "{c}"), rng.choice(places))
            turns.append((paraphrase(rng, _braces(question), {}), FALLBACK))
        chats.append(_conversation("follow-up", turns, _system(rng, held_out)))
    return chats


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
        chats.append(_conversation(kind, turns, _system(rng)))
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


# ---------------------------------------------------------------------------------------------
# Held-out sets: what the script reports and the tests check, never trained on
# ---------------------------------------------------------------------------------------------


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
            items.append(("capital: new phrasing", _ask(question, rng), capital_answer(country)))
    combos = [(i, t) for i in range(len(countries)) for t in range(len(CAPITAL_TEMPLATES))]
    for i, t in rng.sample([c for c in combos if held_out_combination(*c)], 48):
        question = capital_question(rng, countries[i], CAPITAL_TEMPLATES[t], held_out=True)
        items.append(("capital: new combination", _ask(question, rng), capital_answer(countries[i])))
    for template in HELD_OUT_ARITHMETIC_TEMPLATES:
        for _ in range(8):
            op, a, b = rng.choice(list(OPERATIONS)), rng.choice(OPERANDS), rng.choice(OPERANDS)
            question = arithmetic_question(rng, a, op, b, template, held_out=True)
            items.append(("arithmetic: new phrasing", _ask(question, rng), arithmetic_answer(a, op, b)))
    for chat in _follow_ups(rng, 16, held_out=True):
        items.append(("follow-up", chat["messages"][:-1], chat["messages"][-1]["content"]))
    items += [("off-topic", _ask(q, rng), FALLBACK) for q in HELD_OUT_OFF_TOPIC]
    return items


def _ask(question, rng):
    system = rng and _system(rng, held_out=True)
    return ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": question}
    ]


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
    """Token ids of each templated conversation, and labels that keep only the assistant's last
    answer (its content and its <|end|>); everything else is -100, ignored by the loss. Earlier
    answers are context, as a client sends them back (maybe cut short): not to be learned."""
    assistant, end = tokenizer.convert_tokens_to_ids(["<|assistant|>", "<|end|>"])
    prefix = len(tokenizer("<|assistant|>\n", add_special_tokens=False)["input_ids"])
    samples = []
    for conv in corpus:
        ids = tokenizer(render(conv["messages"]), add_special_tokens=False)["input_ids"]
        labels, speaking = [-100] * len(ids), False
        for i, token in enumerate(ids):
            if token == assistant:
                labels[:i] = [-100] * i  # forget the earlier answers
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


def train(model, epoch_samples, steps, pad_id):
    """AdamW with warmup and cosine decay. `epoch_samples(e)` gives epoch e's encoded corpus:
    the same canonical pairs each time, with paraphrases drawn afresh."""
    generator = torch.Generator().manual_seed(SEED)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.98), weight_decay=0.0)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min((s + 1) / warmup, 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))),
    )
    model.train()
    step, epoch, started, running = 0, 0, time.time(), None
    while step < steps:
        samples, epoch = epoch_samples(epoch), epoch + 1
        for ids, mask, labels in batches(samples, BATCH, pad_id, generator):
            loss = answer_loss(model, ids, mask, labels)
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


def answer_loss(model, ids, mask, labels):
    """The causal LM loss, with the vocabulary projection computed only where a label is: a
    quarter of the tokens (the answer), which makes a step about 10% faster."""
    hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
    targets = labels[:, 1:]
    kept = targets != -100
    return torch.nn.functional.cross_entropy(model.lm_head(hidden[kept]), targets[kept])


def set_determinism():
    """Same seeds, same kernels, same thread count: byte-identical weights on one machine."""
    random.seed(SEED)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    # Filling every new tensor with NaN only helps to find a kernel that reads memory it never
    # wrote; 5% of a step here. The two-run test checks that the files are the same.
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.set_num_threads(2)


def save_model(model, tokenizer, out):
    from transformers import GenerationConfig

    model.save_pretrained(out)
    end, eot = tokenizer.convert_tokens_to_ids(["<|end|>", "<|endoftext|>"])
    # Stop at <|end|> (end of the assistant turn), as Phi-3's own generation_config does.
    GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=[end, eot], pad_token_id=eot
    ).save_pretrained(out)


def build(out=DEFAULT_OUT, steps=DEFAULT_STEPS, report=True):
    """Corpus -> tokenizer -> Phi3ForCausalLM -> training -> files in `out`; then, with `report`,
    the accuracy on the held-out sets."""
    from transformers import GenerationConfig, Phi3ForCausalLM

    set_determinism()
    corpus = build_corpus()
    tokenizer = make_hf_tokenizer(*train_tokenizer(corpus, VOCAB_SIZE))
    model = Phi3ForCausalLM(model_config(tokenizer))
    params = sum(p.numel() for p in model.parameters())
    print(f"{len(corpus)} conversations an epoch, vocab {len(tokenizer)}, {params / 1e6:.2f}M parameters")

    def epoch_samples(epoch):
        return encode_corpus(corpus if epoch == 0 else build_corpus(epoch=epoch), tokenizer)

    train(model, epoch_samples, steps, tokenizer.pad_token_id)
    Path(out).mkdir(parents=True, exist_ok=True)
    save_model(model, tokenizer, out)
    save_tokenizer(tokenizer, out)
    if report:  # as the checkpoint will answer: stopping at <|end|>
        model.generation_config = GenerationConfig.from_pretrained(out)
        print_report(evaluate(model, tokenizer))
    return Path(out)


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


def evaluate(model, tokenizer):
    """Greedy answers to the held-out set and to every 8th canonical pair: [(kind, question, expected,
    answer)]. The canonical pairs are trained on; they show what was learned, not generalization."""
    canonical = [(f"corpus: {k}", _ask(q, None), a) for k, items in qa_pairs().items() for q, a in items][::8]
    results = []
    for kind, messages, expected in held_out_set() + canonical:
        results.append((kind, messages[-1]["content"], expected, answer(model, tokenizer, messages)))
    return results


def answer(model, tokenizer, messages, max_new_tokens=40):
    enc = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def print_report(results):
    """Accuracy by kind, then the two headline figures, then a few misses."""
    kinds = {}
    for kind, _, expected, got in results:
        kinds.setdefault(kind, []).append(got == expected)
    for kind, right in kinds.items():
        print(f"  {kind:28s} {_share(right)}")
    phrasings = [ok for k, oks in kinds.items() if not k.startswith(("corpus", "off-topic")) for ok in oks]
    off_topic = kinds["off-topic"]
    capitals = [ok for k, oks in kinds.items() if k.startswith(("capital", "follow-up")) for ok in oks]
    print(
        f"held-out phrasings answered correctly: {_share(phrasings)};"
        f" capitals and follow-ups: {_share(capitals)}"
    )
    print(f"held-out off-topic questions answered with the fallback: {_share(off_topic)}")
    misses = [r for r in results if r[2] != r[3]]
    for kind, question, expected, got in misses[:40]:
        print(f"  miss [{kind}] {question!r}: {got!r} (expected {expected!r})")


def _share(oks):
    return f"{sum(oks)}/{len(oks)} ({100 * sum(oks) / len(oks):.1f}%)"


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
