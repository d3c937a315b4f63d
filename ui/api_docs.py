"""Each API parameter's own description, on the API page and in gradio_client's `view_api`.

`gr.api` labels its parameters by position ("1st", "2nd") and describes none of them, so the
API page read 'The input value that is provided in the "1st" Api component.' and nothing more.
Here each input is labelled with its parameter's name and described from the function's
docstring `Args:` section (the format Gradio's own MCP support reads), or, for the settings
every endpoint shares, from `SHARED`. An endpoint with a parameter described nowhere fails
when the app is built, not silently on the page.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gradio as gr
from gradio.context import get_blocks_context
from gradio.utils import get_function_description, get_function_params

SHARED = {  # the request settings, the same on every endpoint that takes them
    "prompt": "The user's message, sent to both models (a non-empty string).",
    "system_prompt": 'An optional system message sent before the conversation ("" for none).',
    "max_tokens": "The most new tokens each model may generate (1 to the server's limit, 4,096 at most).",
    "temperature": "0 for greedy decoding (the same answer every time); up to 2 samples more freely.",
    "top_p": "Sample only from the likeliest tokens holding this share of probability (0 < top_p <= 1).",
    "stop": "Stop sequences, one per line; an answer ends before the first one it would write.",
    "fidelity": "After both answers, score them through both models (verdict.fidelity); false skips it.",
}


def add_endpoint(fn: Callable, update: type | None = None, **kwargs) -> None:
    """`gr.api(fn, **kwargs)`, its return described as one `update`, each parameter described."""
    dependency = gr.api(described(fn, update) if update is not None else fn, **kwargs)
    blocks = get_blocks_context().blocks
    describe(fn, [blocks[i] for i in dependency["inputs"]])


def described(endpoint: Callable, update: type) -> Callable:
    """gr.api describes what an endpoint returns by its return annotation: for a stream, one update."""
    endpoint.__annotations__["return"] = update
    return endpoint


def describe(fn: Callable, inputs: Sequence[gr.components.Component]) -> None:
    """Label each of `fn`'s input components with its parameter's name and docstring description."""
    _, own, _ = get_function_description(fn)
    descriptions = SHARED | {name: text for name, text in own.items() if text}
    names = [name for name, *_ in get_function_params(fn)]  # gr.Request and the like are left out
    missing = [name for name in names if not descriptions.get(name)]
    if missing:
        raise ValueError(f"{fn.__name__}'s docstring has no Args: line for {', '.join(missing)}.")
    for name, component in zip(names, inputs, strict=True):
        info = component.api_info() | {"additional_description": descriptions[name]}
        component.label = name
        component.api_info_as_input = lambda info=info: info  # what the API page and view_api read
