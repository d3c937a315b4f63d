"""Pure functions that turn results into what the panes show. No Gradio here."""

from __future__ import annotations

import json
from typing import Any

from wrappers import Latency, Result, Usage

ERROR_TITLE = "Error"


def usage_markdown(usage: Usage) -> str:
    """A one-line token count; unknown counts show as a dash.

    >>> usage_markdown(Usage(11, 5, 16))
    '**Tokens**: prompt 11 · completion 5 · total 16'
    """
    return (
        f"**Tokens**: prompt {_n(usage.prompt_tokens)} · completion {_n(usage.completion_tokens)}"
        f" · total {_n(usage.total_tokens)}"
    )


def latency_markdown(latency: Latency) -> str:
    """Total time, time to first token and decode speed.

    >>> latency_markdown(Latency(1.5, 0.25, 20.0))
    '**Latency**: total 1.500 s · first token 0.250 s · decode 20.0 tokens/s'
    """
    speed = "–" if latency.tokens_per_s is None else f"{latency.tokens_per_s:.1f}"
    network = "" if latency.network_s is None else f" · of which network {_s(latency.network_s)}"
    return (
        f"**Latency**: total {_s(latency.total_s)} · first token {_s(latency.ttft_s)}"
        f" · decode {speed} tokens/s{network}"
    )


def raw_json(raw: Any) -> str:
    """What predict returned, as JSON text (a string shows with its quotes)."""
    return "" if raw is None else json.dumps(raw, indent=2, ensure_ascii=False)


def assistant_message(result: Result) -> dict[str, Any]:
    """The chat bubble for a (possibly partial) result; errors are marked."""
    if result.error:
        text = f"{result.text}\n\n⚠️ {result.error}" if result.text else f"⚠️ {result.error}"
        return {"role": "assistant", "content": text, "metadata": {"title": ERROR_TITLE}}
    return {"role": "assistant", "content": result.text}


def conversation(history: list[dict[str, Any]], system_prompt: str, prompt: str) -> list[dict[str, str]]:
    """The model's messages: system prompt, earlier good turns, and the new prompt.

    Turns that ended in an error are left out, with the prompt that caused them.

    >>> history = [{"role": "user", "content": [{"type": "text", "text": "Hi"}]},
    ...            {"role": "assistant", "content": "Hello!"}]
    >>> [m["content"] for m in conversation(history, "", "Bye")]
    ['Hi', 'Hello!', 'Bye']
    """
    system_prompt = system_prompt or ""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    for message in history or []:
        if (message.get("metadata") or {}).get("title") == ERROR_TITLE:
            if messages and messages[-1]["role"] == "user":
                messages.pop()
            continue
        messages.append({"role": message["role"], "content": plain_text(message["content"])})
    return messages + [{"role": "user", "content": prompt}]


def plain_text(content: Any) -> str:
    """Gradio may hand back message content as a list of blocks; join their text."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text", ""))
    return "".join(plain_text(part) for part in content or [])


def model_card_markdown(
    ref_uri: str | None,
    name: str | None,
    version: str | None,
    signature: str,
    streaming_note: str,
    weights: str = "",
) -> str:
    weights_line = f"  \n**Weights**: {weights}" if weights else ""
    return (
        f"**URI**: `{ref_uri}`  \n**Registered model**: `{name}` version `{version}`{weights_line}\n\n"
        f"**Signature** (as MLflow prints it):\n```\n{signature}\n```\n\n*Streaming*: {streaming_note}"
    )


def _n(value: int | None) -> str:
    return "–" if value is None else str(value)


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f} s"
