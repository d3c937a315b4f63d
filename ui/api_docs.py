"""Each API parameter's own description, on the API page and in gradio_client's `view_api`.

`gr.api` labels its parameters by position ("1st", "2nd") and describes none of them, so the
API page read 'The input value that is provided in the "1st" Api component.' and nothing more.
Here each input is labelled with its parameter's name and described from the function's
docstring `Args:` section (the format Gradio's own MCP support reads). An endpoint whose
docstring misses a parameter fails when the app is built, not silently on the page.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gradio as gr
from gradio.context import get_blocks_context
from gradio.utils import get_function_description, get_function_params


def endpoint(fn: Callable, update: type | None = None, **kwargs) -> None:
    """`gr.api(fn, **kwargs)`, its return described as one `update`, each parameter described."""
    if update is not None:  # gr.api describes a stream's return by its annotation: one update
        fn.__annotations__["return"] = update
    dependency = gr.api(fn, **kwargs)
    blocks = get_blocks_context().blocks
    describe(fn, [blocks[i] for i in dependency["inputs"]])


def describe(fn: Callable, inputs: Sequence[gr.components.Component]) -> None:
    """Label each of `fn`'s input components with its parameter's name and docstring description."""
    _, descriptions, _ = get_function_description(fn)
    names = [name for name, *_ in get_function_params(fn)]  # gr.Request and the like are left out
    missing = [name for name in names if not descriptions.get(name)]
    if missing:
        raise ValueError(f"{fn.__name__}'s docstring has no Args: line for {', '.join(missing)}.")
    for name, component in zip(names, inputs, strict=True):
        info = component.api_info() | {"additional_description": descriptions[name]}
        component.label = name
        component.api_info_as_input = lambda info=info: info  # what the API page and view_api read
