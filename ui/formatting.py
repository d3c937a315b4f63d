"""Pure functions that turn results into what the panes show. No Gradio here."""

from __future__ import annotations

import html
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


KL_BANDS = (  # (upper bound in nats, background): where the strip turns from clear to red
    (1e-3, "transparent"),
    (1e-2, "#fde9c8"),
    (1e-1, "#fbc98a"),
    (1.0, "#f59a6b"),
    (float("inf"), "#e4574b"),
)


def fidelity_markdown(fidelity: dict | None, reason: str | None) -> str:
    """The one line under the verdict: mean KL, top-1 agreement, worst token, scoring time.

    >>> fidelity_markdown(None, "Fidelity scoring is switched off.")
    '**Fidelity**: Fidelity scoring is switched off.'
    """
    if fidelity is None:
        return f"**Fidelity**: {reason or 'not scored.'}"
    worst = max(fidelity["per_token"], key=lambda t: t["kl"], default=None)
    worst_text = f" · worst token {worst['token']!r} (KL {worst['kl']:.3g})" if worst else ""
    note = f"  \n<small>{fidelity['note']}</small>" if fidelity.get("note") else ""
    return (
        f"**Fidelity** ({fidelity['other']} on the {fidelity['reference']} answer's "
        f"{fidelity['tokens']} tokens): mean KL {fidelity['mean_kl']:.3g} nats/token · "
        f"top-1 agreement {fidelity['top1_agreement']:.0%}{worst_text} · "
        f"scored in {fidelity['scoring_s']:.3f} s, charged to neither side{note}"
    )


def fidelity_strip_html(fidelity: dict | None) -> str:
    """The reference answer, one span per token, coloured by its KL; hover shows the numbers."""
    if not fidelity or not fidelity["per_token"]:
        return ""
    spans = "".join(_token_span(t) for t in fidelity["per_token"])
    legend = " ".join(
        f'<span style="background:{colour};padding:0 4px">&lt; {bound:g}</span>'
        for bound, colour in KL_BANDS[:-1]
    )
    return (
        f'<div class="fidelity-strip" style="font-family:monospace;line-height:1.9">{spans}</div>'
        f"<small>KL per token (nats): {legend} "
        f'<span style="background:{KL_BANDS[-1][1]};padding:0 4px">≥ 1</span>; '
        "underlined: the models' top-1 tokens differ</small>"
    )


def kl_colour(kl: float) -> str:
    """The strip's background for a token's KL.

    >>> kl_colour(0.0), kl_colour(0.05), kl_colour(5.0)
    ('transparent', '#fbc98a', '#e4574b')
    """
    return next(colour for bound, colour in KL_BANDS if kl < bound)


def _token_span(token: dict) -> str:
    text = html.escape(token["token"]).replace(" ", "&nbsp;").replace("\n", "↵")
    title = html.escape(
        f"KL {token['kl']:.3g} · p(reference) {token['p_reference']:.3f} · p(other) {token['p_other']:.3f}"
    )
    underline = "" if token.get("agree", True) else ";text-decoration:underline wavy"
    style = f"background:{kl_colour(token['kl'])};border-radius:3px{underline}"
    return f'<span class="fidelity-token" title="{title}" style="{style}">{text}</span>'
