"""The tiny model's world: what it knows, and the answers it gives.

Scope: the capitals of 75 countries, plus, minus and times of whole numbers 0 to 12 (as digits or
words), a few greetings, one joke about atoms, and the fallback for everything else; with the
functions that write an answer ("The capital of Spain is Madrid.", "7 plus 5 is 12.").
The questions live elsewhere: `phrasings` (how people ask), `unknowns` and `off_topic` (what it
does not know). Changing any of it changes the corpus, and so the committed weights.
"""

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
OPERATIONS = {  # name: (how a question may write it, function)
    "plus": (["plus", "+"], lambda a, b: a + b),
    "minus": (["minus", "-"], lambda a, b: a - b),
    "times": (["times", "*", "x", "multiplied by"], lambda a, b: a * b),
}
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


def capital_answer(country):
    """The answer to a capital question.

    >>> capital_answer("Spain"), capital_answer("the United States")
    ('The capital of Spain is Madrid.', 'The capital of the United States is Washington, D.C.')
    """
    return f"The capital of {country} is {CAPITALS[country].rstrip('.')}."


def possessive(name):
    """>>> possessive("Spain"), possessive("the Philippines")
    ("Spain's", "the Philippines'")
    """
    return name + ("'" if name.endswith("s") else "'s")


def arithmetic_answer(a, op, b):
    """>>> arithmetic_answer(7, "plus", 5), arithmetic_answer(3, "minus", 9)
    ('7 plus 5 is 12.', '3 minus 9 is -6.')
    """
    return f"{a} {op} {b} is {OPERATIONS[op][1](a, b)}."
