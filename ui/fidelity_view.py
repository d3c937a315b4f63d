"""The fidelity line and token strip under the verdict. Pure functions, no Gradio.

They show what `compare/fidelity.py` scored (the API's `FidelityInfo`): the line in Markdown, text
from a model through `plain`; the strip in HTML, each token through `html.escape`.
"""

from __future__ import annotations

import html

from ui.formatting import plain

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
