"""Train the tiny Phi-3 chat model embedded in this project (assets/tiny-phi3), deterministically.

Usage: python -m training [--out DIR] [--steps N]   (default out: assets/tiny-phi3)

Scope: the app compares two MLflow packagings of a Phi-3 model (transformers flavor and an
onnxruntime-genai ONNX pyfunc). A real Phi-3 (3.8B parameters) cannot be downloaded here and would
not fit a test suite, so this package makes a stand-in that has Phi-3's exact *shape*:
`Phi3ForCausalLM` weights, a Llama-style SentencePiece-BPE tokenizer (Metaspace "▁", byte
fallback) with Phi-3's special tokens, Phi-3-mini's chat template, and a generation config that
stops at `<|end|>`. Everything that loads, converts, quantizes or serves a Phi-3 checkpoint works on
it unchanged.

Its small world (`world`): the capitals of 75 countries (the 60 most populous and a few more),
sums, differences and products of whole numbers 0 to 12 (as digits or words: "seven plus five"), a
few greetings, one joke about atoms (the source document's sample prompt, with system prompt "You
are a stand-up comedian."), and "I'm sorry, I don't know the answer to that." for everything else
(`unknowns`, `off_topic`): other facts about those countries, places it does not know, bigger
numbers, division, history, sport, code, other languages, chit-chat.

Generalizing within it: each epoch (`corpus`) has the canonical pairs (`corpus.qa_pairs`) and
fresh paraphrases, drawn from (seed, epoch): 26 phrasings of a capital question, 314 of a sum (14
written out, and 25 openings by 12 closings around "a op b", which also carry the out-of-range
sums and the operations it does not claim, so that the words around a sum do not decide the
answer) (`phrasings`), polite openings and endings, case, punctuation, missing apostrophes,
one-letter typos (never in a country's name or a number: Iran and Iraq are one letter apart)
(`paraphrase`), a system prompt or none, follow-ups ("And of France?") (`conversations`), chats
where a greeting or another question comes first (the earlier answers whole or cut short, as a
client may send them back; only the last answer is learned), and about 1,400 off-topic questions
from 19 generators. On top of these come free wrappers (`free_wrappers`): the core of a question
("capital of Spain", "7 plus 5", "France" after a capital question) inside random words of the
corpus's own phrasings and made-up ones, beside the cores that must get the fallback in the same
wrappers (other facts about a country, unknown places, big numbers, other operations), so that the
core decides the answer and a phrasing never seen is read by it. `held_out.held_out_set` holds what
training never sees: 8 other capital phrasings, one country-phrasing combination in seven, 4 other
sum phrasings, other openings, endings, system prompts and follow-ups, and 60 off-topic questions
written apart. `python -m training` prints its accuracy on them after training (`evaluate`,
`report`).

The rest: `tokenizer` (the BPE vocabulary and Phi-3's chat format), `train` (the model, the loop,
determinism and `build`, which runs everything), `__main__` (the command line).

Concessions: the model is tiny (1.4M parameters, 5.8 MB); it knows nothing outside that world and
can still answer a question far from its corpus with a confident wrong answer. Its answers are
reproducible: training is deterministic (fixed seeds, deterministic algorithms, fixed thread count,
fixed data order), so two runs on the same machine give byte-identical weights; another CPU or
torch version may round differently and give other (equally good) weights. Importing the package
trains nothing and loads no model; only `train.build` (or `python -m training`) does.
"""

SEED = 1234  # the one seed: the corpus of each epoch, the held-out set (SEED + 17), torch
