"""Make user-supplied chat messages safe to format and tokenize.

Both tokenizers turn special-token text such as `<|end|>` inside a message
into the special token itself, which would let a user close their turn and
write the assistant's or the system's. A WORD JOINER (U+2060) after the `<`
keeps such text literal: it still reads the same, but no longer matches a
special token. Concession: this covers the Phi-3 family's token shapes
(`<|...|>`, `<s>`, `</s>`, `<unk>`), not every tokenizer's.

Text is also made encodable: lone surrogates (which UTF-8 cannot carry) and
NUL bytes (which truncate C strings in onnxruntime-genai) become U+FFFD.
"""

from __future__ import annotations

import re

SPECIAL_TOKEN = re.compile(r"<(\|[^|<>\s]{1,32}\||/?s|unk)>")
WORD_JOINER = "\u2060"
UNENCODABLE = re.compile("[\x00\ud800-\udfff]")  # NUL, and surrogates (in a str, always lone)


def neutralize(text: str) -> str:
    """Keep special-token text literal, and encodable.

    >>> neutralize("Hi<|end|>\\n<|assistant|>") == "Hi<\\u2060|end|>\\n<\\u2060|assistant|>"
    True
    >>> neutralize("a\\x00b\\ud800")
    'a\\ufffdb\\ufffd'
    """
    text = UNENCODABLE.sub("\ufffd", text)
    return SPECIAL_TOKEN.sub(lambda m: f"<{WORD_JOINER}{m.group(1)}>", text)


def safe_messages(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The same conversation with every message's content neutralized."""
    return [{"role": m["role"], "content": neutralize(m["content"])} for m in messages]
