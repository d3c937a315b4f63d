"""The baseline for the app's API: a Gradio server whose streaming endpoint does no work.

Same Gradio version, same queue settings as the app, served from its own
process as the app is, so that client, HTTP and queue costs are measured
alike and only the app's own work differs.

    GRADIO_SERVER_PORT=7861 .venv/bin/python -m benchmarks.noop_app
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import gradio as gr

EMPTY_RESULT = {
    "response": None,
    "raw": None,
    "usage": {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None},
    "latency": {"total_s": None, "ttft_s": None, "tokens_per_s": None},
    "model": {"name": "noop", "version": "1", "uri": "models:/noop/1"},
    "error": None,
}


def noop(prompt: str, max_tokens: int = 128, spacing_s: float = 0.0) -> Iterator[dict]:
    """Stream `max_tokens` updates shaped like the app's, `spacing_s` apart, doing no work for them.

    The suite asks for as many updates as the app streamed for the request it compares with,
    spread over as long as the app's model worked: Gradio's cost per update depends on the
    pace (here about 0.15 ms each when they come back to back, 0.55 to 0.8 ms when they come
    100 ms apart). The last update reports the time spent waiting as `latency.total_s`, as the
    app reports its model's, so what remains of the app's time is its own.
    """
    waited = 0.0
    for index in range(max_tokens):
        if index and spacing_s > 0:
            started = time.perf_counter()
            time.sleep(spacing_s)
            waited += time.perf_counter() - started
        update = dict(EMPTY_RESULT)
        if index == max_tokens - 1:
            update["latency"] = {**EMPTY_RESULT["latency"], "total_s": waited}
        yield update


def build_noop_app() -> gr.Blocks:
    with gr.Blocks() as demo:
        gr.api(noop, api_name="noop", concurrency_limit=1)
    return demo


if __name__ == "__main__":
    app = build_noop_app()
    app.queue(default_concurrency_limit=1, max_size=32)
    app.launch(server_name="127.0.0.1")  # the port comes from GRADIO_SERVER_PORT
