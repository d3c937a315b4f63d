"""The tokenizer: Phi-3's chat format on a BPE vocabulary learned from the corpus.

Scope: Phi-3-mini's chat template and special tokens, the template in plain Python (`render`),
learning the merges (`train_tokenizer`), wrapping them in transformers' LlamaTokenizer
(SentencePiece layout: Metaspace "▁", byte fallback) and saving it where onnxruntime-genai reads it.

Tokenizer parity: the vocabulary only merges letters (with the "▁" before them), never digits,
punctuation or newlines, so onnxruntime-genai (which pre-splits text with a regex before BPE) and
transformers (which does not) give the same ids. One known difference remains, from the libraries:
for text that *starts* with a space (at the very start, or right after a special token),
onnxruntime-genai adds one more "▁" than transformers does. Chat prompts never start so.
"""

import json
import re
from pathlib import Path

from tokenizers import Tokenizer, models, trainers

VOCAB_SIZE = 1500  # before the 5 chat tokens
CONTEXT_LENGTH = 4096  # as Phi-3-mini-4k; only sizes the RoPE tables, not the weights
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


def render(messages, add_generation_prompt=False):
    r"""The chat template in plain Python (checked against the Jinja one in the tests).

    >>> render([{"role": "user", "content": "Hi"}], add_generation_prompt=True)
    '<|user|>\nHi<|end|>\n<|assistant|>\n'
    """
    text = "".join(f"<|{m['role']}|>\n{m['content']}<|end|>\n" for m in messages)
    return text + ("<|assistant|>\n" if add_generation_prompt else "<|endoftext|>")


def _words(text):
    """The pieces BPE may merge: runs of ASCII letters, with the "▁" (space) before them.

    onnxruntime-genai (onnxruntime-extensions) splits SentencePiece-style text with a Llama-3-like
    regex before BPE (letters, digits, punctuation and newlines apart), while transformers runs BPE
    on the whole text. A vocabulary without merges across those boundaries tokenizes identically
    in both. Digits, punctuation and "\\n" stay single pieces (or byte-fallback bytes), as in
    Llama/Phi-3, so "<|assistant|>\\n" is tokenized the same in training and at generation.

    >>> _words("What's 7 plus 5?")
    ['What', 's', '▁plus']
    """
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
