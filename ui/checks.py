"""The checks the Chat tab and blind mode run before an action touches the page.

Each refuses with the schema's words (`compare/requests.py`), as the API does; the
number boxes' values are taken as a client's would be.
"""

from __future__ import annotations

from compare.service import Comparer
from compare.turns import messages_for
from ui.api import SIDES, input_error
from wrappers import GenerationOptions


def box_options(comparer: Comparer, max_tokens, temperature, top_p, stop) -> GenerationOptions:
    """The settings boxes' values as options, checked as an API request's are.

    A number box gives 64.0 for 64; a whole number is taken as one, and 2.5 is refused as it
    would be from a client.
    """
    whole = int(max_tokens) if isinstance(max_tokens, float) and max_tokens.is_integer() else max_tokens
    return comparer.options(whole, temperature, top_p, stop or "")


def check_send(comparer: Comparer, prompt, system, settings: tuple, turns: list) -> None:
    """Refuse a prompt the way the API would (`compare/requests.py`), and a conversation too long to send."""
    comparer.require_ready()
    if not (prompt or "").strip():
        raise input_error("Type a prompt first.")
    options = box_options(comparer, *settings)
    fields = {"max_tokens": options.max_tokens, "temperature": options.temperature, "top_p": options.top_p}
    comparer.check("prompt", {"prompt": prompt, "system_prompt": system or "", "stop": options.stop} | fields)
    # the token limit, and whether both sides can answer within the time limit on this machine
    comparer.check_fits({side: messages_for(turns or [], side, system, prompt) for side in SIDES}, options)
