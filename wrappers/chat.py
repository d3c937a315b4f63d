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


CHARS_PER_TOKEN = 16  # generous: Phi-3's longest tokens are 16 characters; English averages about 4


def max_characters(max_prompt_tokens: int) -> int:
    """The most characters a conversation under the token limit can have."""
    return max_prompt_tokens * CHARS_PER_TOKEN


def check_length(messages: list[dict[str, str]], max_prompt_tokens: int) -> None:
    """Refuse, before any tokenizing, a conversation that cannot fit the token limit.

    >>> check_length([{"role": "user", "content": "x" * 32}], max_prompt_tokens=2)  # fits
    >>> check_length([{"role": "user", "content": "x" * 40}], max_prompt_tokens=2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: The conversation has 40 characters; the limit is 32 (2 tokens). Shorten ...
    """
    size, limit = sum(len(m["content"]) for m in messages), max_characters(max_prompt_tokens)
    if size > limit:
        raise ValueError(
            f"The conversation has {size} characters; the limit is {limit} ({max_prompt_tokens} tokens). "
            "Shorten the prompt, or press Clear to start a new conversation."
        )
