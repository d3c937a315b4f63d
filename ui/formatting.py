"""Pure functions that turn results into what the panes show. No Gradio here.

Text that a visitor, a file or a model supplied goes into Markdown only through
`plain` or `code`, so it is shown as the characters it holds and never becomes an
element (an image that calls out, a link) or markup.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from typing import Any

from compare.comparison import decode_timed
from compare.diff import MAX_CHANGED_SHARE, WordOp, changed_share, divergence, word_diff
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


def difference_html(left: Result, right: Result, names: tuple[str, str]) -> str:
    """Both answers aligned at their first differing token, then a word-level diff."""
    if not left.pieces and not right.pieces:
        return ""
    if left.error or right.error:
        return "<p>No difference view: a model reported an error.</p>"
    split = divergence(left.pieces, right.pieces)
    if split.at is None:
        count = len(left.pieces)
        return f"<p class='diff-same'>The two answers are identical, token for token ({count} tokens).</p>"
    rows = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{_aligned(split.skipped, split.before, tail)}</td></tr>"
        for name, tail in zip(names, (split.left, split.right), strict=True)
    )
    head = f"<p>First difference at token {split.at + 1} (highlighted), with the tokens around it:</p>"
    words = _words_view(left, right, names)
    return f"<div class='diff-view'>{head}<table class='diff-tokens'>{rows}</table>{words}</div>"


def _words_view(left: Result, right: Result, names: tuple[str, str]) -> str:
    """The word diff while it helps (most words shared); else both answers side by side."""
    ops = word_diff(left.text, right.text)
    share = changed_share(ops)
    if share >= MAX_CHANGED_SHARE:
        cells = "".join(
            f"<td><b>{html.escape(name)}</b><br>{html.escape(r.text)}</td>"
            for name, r in zip(names, (left, right), strict=True)
        )
        return (
            f"<p class='diff-apart'>The answers differ entirely ({share:.0%} of their words differ), "
            f"so there is no word diff; side by side:</p><table class='diff-side'><tr>{cells}</tr></table>"
        )
    return (
        f"<p>Word by word (<del>{html.escape(names[0])} only</del>, "
        f"<ins>{html.escape(names[1])} only</ins>):</p>"
        f"<p class='diff-words'>{_words_html(ops)}</p>"
    )


def _aligned(skipped: int, before: tuple[str, ...], tail: tuple[str, ...]) -> str:
    lead = "<span class='diff-skip'>…</span>" if skipped else ""
    shared = "".join(_token(t) for t in before)
    if not tail:
        return f"{lead}{shared}<mark class='diff-first'>(end of answer)</mark>"
    first, rest = tail[0], tail[1:]
    return f"{lead}{shared}<mark class='diff-first'>{_visible(first)}</mark>" + "".join(
        _token(t) for t in rest
    )


def _token(piece: str) -> str:
    return f"<span class='diff-token'>{_visible(piece)}</span>"


def _visible(piece: str) -> str:
    """A token's text with its spaces and line breaks made visible."""
    return html.escape(piece).replace(" ", "·").replace("\n", "↵") or "∅"


def _words_html(ops: list[WordOp]) -> str:
    parts = []
    for op in ops:
        if op.op == "equal":
            parts.append(html.escape(op.left))
            continue
        parts.append(f"<del>{html.escape(op.left)}</del>" if op.left else "")
        parts.append(f"<ins>{html.escape(op.right)}</ins>" if op.right else "")
    return "".join(parts)


def short_id(comparison_id: str) -> str:
    """The 8-character form of an id, as every table and label shows it."""
    return (comparison_id or "")[:8]


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
    weights_line = f"  \n**Weights**: {plain(weights)}" if weights else ""
    return (
        f"**URI**: {code(ref_uri)}  \n**Registered model**: {code(name)} version {code(version)}"
        f"{weights_line}\n\n"
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

    >>> print(fidelity_markdown(None, "Fidelity scoring is switched off."))
    **Fidelity**: Fidelity scoring is switched off\.
    """
    if fidelity is None:
        return f"**Fidelity**: {plain(reason or 'not scored.')}"
    worst = max(fidelity["per_token"], key=lambda t: t["kl"], default=None)
    worst_text = f" · worst token {plain(repr(worst['token']))} (KL {worst['kl']:.3g})" if worst else ""
    note = f"  \n<small>{plain(fidelity['note'])}</small>" if fidelity.get("note") else ""
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
    """One token of the strip; a token the pane does not show (the end token, or one a stop
    sequence cut) is a marker apart, so the strip's other text is exactly the pane's."""
    title = html.escape(
        f"KL {token['kl']:.3g} · p(reference) {token['p_reference']:.3f} · p(other) {token['p_other']:.3f}"
    )
    underline = "" if token.get("agree", True) else ";text-decoration:underline wavy"
    style = f"background:{kl_colour(token['kl'])};border-radius:3px{underline}"
    if token.get("hidden"):
        label = html.escape(token["token"] or "[not shown]")  # e.g. the token holding the stop
        note = html.escape(" · not shown in the pane")
        return (
            f'<span class="fidelity-token fidelity-hidden" title="{title}{note}" '
            f'style="{style};font-size:0.8em;opacity:0.75">{label}</span>'
        )
    text = html.escape(token["token"]).replace(" ", "&nbsp;").replace("\n", "↵")
    return f'<span class="fidelity-token" title="{title}" style="{style}">{text}</span>'
