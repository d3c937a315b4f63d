"""Pure functions that turn results into what the panes show. No Gradio here.

Text that a visitor, a file or a model supplied goes into Markdown only through
`plain` or `code`, so it is shown as the characters it holds and never becomes an
element (an image that calls out, a link) or markup.

The difference view under the verdict is in `ui/difference.py`, and the fidelity line and
token strip in `ui/fidelity_view.py`.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from typing import Any

from compare.comparison import decode_timed
from compare.turns import STOPPED, Answer, Turn
from wrappers import Latency, Result, Usage

STOPPED_NOTE = "⏹ Stopped. This turn is kept here but not sent to either model again."
MARKDOWN_SIGNS = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>:])")  # ":" too: no bare URL becomes a link
BACKTICKS = re.compile(r"`+")


def plain(text: object) -> str:
    """`text` for a Markdown component, shown as typed on one line: no HTML, no Markdown.

    >>> print(plain('<img src="x"> ![a](http://h) **c**'))
    &lt;img src="x"&gt; \!\[a\]\(http\://h\) \*\*c\*\*
    """
    return MARKDOWN_SIGNS.sub(r"\\\1", html.escape(str(text).replace("\n", " "), quote=False))


def code(text: object) -> str:
    """`text` as an inline code span that no backtick inside it can close.

    >>> code("a`b"), code("x")
    ('`` a`b ``', '`x`')
    """
    text = str(text).replace("\n", " ")
    fence = "`" * (max((len(run) for run in BACKTICKS.findall(text)), default=0) + 1)
    return f"{fence} {text} {fence}" if len(fence) > 1 or text.startswith("`") else f"{fence}{text}{fence}"


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
    '**Latency**: total 1.50 s · first token 250 ms · decode 20.0 tokens/s'
    """
    network = "" if latency.network_s is None else f" · of which network {duration(latency.network_s)}"
    return (
        f"**Latency**: total {duration(latency.total_s)} · first token {duration(latency.ttft_s)}"
        f" · decode {speed(latency.tokens_per_s)} tokens/s{network}"
    )


def metrics_markdown(results: Mapping[str, Result]) -> str:
    """One table, a column per side, the better figure of each timed row marked with ✓.

    A decode speed shows only once its side has `MIN_TIMED_TOKENS` tokens after the first (the
    verdict's rule, `decode_timed`); it is compared (✓) only when both sides have them.
    """
    sides = list(results)
    speeds = {s: r.latency.tokens_per_s if decode_timed(r) else _TOO_SHORT for s, r in results.items()}
    rows = [
        ("Time to first token", {s: r.latency.ttft_s for s, r in results.items()}, duration, min),
        ("Decode speed (tokens/s)", speeds, _speed_cell, max),
        ("Total time", {s: r.latency.total_s for s, r in results.items()}, duration, min),
        ("Prompt tokens", {s: r.usage.prompt_tokens for s, r in results.items()}, _n, None),
        ("Completion tokens", {s: r.usage.completion_tokens for s, r in results.items()}, _n, None),
    ]
    lines = ["| | " + " | ".join(sides) + " |", "|---|" + "---:|" * len(sides)]
    for name, values, show, better in rows:
        best = _best(values, better) if better else None
        cells = [f"**{show(v)}** ✓" if s == best else show(v) for s, v in values.items()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


_TOO_SHORT = "too short"  # a decode speed on fewer than MIN_TIMED_TOKENS tokens: not a figure


def _speed_cell(value) -> str:
    return value if value == _TOO_SHORT else speed(value)


def _best(values: Mapping[str, float | str | None], pick) -> str | None:
    if _TOO_SHORT in values.values():
        return None
    known = {s: v for s, v in values.items() if v is not None}
    if len(known) < 2 or len(set(known.values())) == 1:
        return None
    return pick(known, key=known.get)


def duration(seconds: float | None) -> str:
    """Milliseconds below a second, seconds above; three significant figures.

    >>> duration(0.01234), duration(2.5), duration(None)
    ('12.3 ms', '2.50 s', '–')
    """
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    return f"{seconds:.{2 if seconds < 10 else 1 if seconds < 100 else 0}f} s"


def speed(tokens_per_s: float | None) -> str:
    """Tokens per second, to three significant figures (whole numbers from 100 up).

    >>> speed(3456.7), speed(20.0), speed(None)
    ('3,457', '20.0', '–')
    """
    if tokens_per_s is None:
        return "–"
    return f"{tokens_per_s:,.0f}" if tokens_per_s >= 100 else f"{tokens_per_s:.1f}"


def raw_json(raw: Any) -> str:
    """What predict returned, as JSON text (a string shows with its quotes)."""
    return "" if raw is None else json.dumps(raw, indent=2, ensure_ascii=False)


def answer_text(answer: Answer | Result, stopped: bool = False) -> str:
    """A pane's bubble text: the answer, then any error or stop note as plain text.

    >>> answer_text(Answer("Par", "model crashed"))
    'Par\\n\\n⚠️ model crashed'
    """
    notes = [f"⚠️ {answer.error}"] if answer.error else []
    notes += [STOPPED_NOTE] if stopped else []
    return "\n\n".join([answer.text, *notes] if answer.text else notes)


def chat_messages(turns: list[Turn], side: str) -> list[dict[str, str]]:
    """One pane's messages: every turn's prompt and this side's answer, as text (`pane_text`)."""
    messages = []
    for turn in turns:
        answer = turn.answers.get(side, Answer())
        messages += [
            {"role": "user", "content": pane_text(turn.prompt)},
            {"role": "assistant", "content": pane_text(answer_text(answer, turn.status == STOPPED))},
        ]
    return messages


def pane_text(text: str) -> str:
    """A chat pane's message, shown as typed: the panes render no Markdown (`render_markdown=False`)
    but do render HTML, so its three HTML characters are escaped.

    >>> pane_text('<img src="x"> & ![a](b)')
    '&lt;img src="x"&gt; &amp; ![a](b)'
    """
    return html.escape(text, quote=False)


def short_id(comparison_id: str) -> str:
    """The 8-character form of an id, as every table and label shows it."""
    return (comparison_id or "")[:8]


def model_card_markdown(
    ref_uri: str | None,
    name: str | None,
    version: str | None,
    signature: str,
    streaming_note: str,
    weights: str = "",
) -> str:
    weights_line = f"  \n**Weights**: {plain(weights)}" if weights else ""
    return (
        f"**URI**: {code(ref_uri)}  \n**Registered model**: {code(name)} version {code(version)}"
        f"{weights_line}\n\n"
        f"**Signature** (as MLflow prints it):\n```\n{signature}\n```\n\n*Streaming*: {streaming_note}"
    )


def _n(value: int | None) -> str:
    return "–" if value is None else str(value)
