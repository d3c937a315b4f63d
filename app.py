"""The side-by-side chat app: one prompt, two MLflow packagings of Phi-3.

`build_app` arranges the tabs and the API; `main` reads the configuration,
starts logging or loading the models in the background, and launches.
Decisions live in `wrappers` and `compare`, the tabs and formatting in `ui`.
"""

from __future__ import annotations

from collections.abc import Mapping

import gradio as gr

from compare.records import Recorder
from ui.api import Comparer, register_api
from ui.chat import CSS, chat_tab
from ui.panels import batch_tab, history_tab
from wrappers import load_config
from wrappers.backend import MlflowBackend
from wrappers.config import Limits
from wrappers.startup import Startup, load_all, warm_up

TITLE = "Phi-3 in MLflow: transformers flavor vs ONNX pyfunc"


def build_app(
    backends: Mapping[str, MlflowBackend],
    startup: Startup | None = None,
    limits: Limits | None = None,
    recorder: Recorder | None = None,
) -> gr.Blocks:
    """The Blocks UI plus the named API endpoints. Loads no model."""
    comparer = Comparer(backends, limits or Limits(), recorder, startup)
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(
            "### Phi-3 in MLflow, side by side\n"
            "One prompt goes to both packagings of the same model: the **transformers** flavor and the "
            "**onnx** pyfunc.",
            elem_id="header",
        )
        status = gr.Markdown(elem_id="startup-status")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                chat = chat_tab(demo, comparer, status)
            batch_tab(comparer)
            history_tab(chat)
        register_api(comparer)
    return demo


def main(argv: list[str] | None = None) -> None:
    from wrappers import build_backends

    config = load_config(argv)
    startup = Startup(["transformers", "onnx"])
    backends = build_backends(config, progress=startup.log)
    if config.log_only:  # e.g. a Space's build step or a server image: register, then exit
        raise SystemExit(0 if load_all(backends, startup) else 1)
    warm_up(backends, startup)
    demo = build_app(backends, startup, config.limits, Recorder())
    demo.queue(default_concurrency_limit=config.limits.concurrency, max_size=config.limits.queue_size)
    demo.launch(
        server_name=config.host, server_port=config.port, auth=config.auth, theme=gr.themes.Soft(), css=CSS
    )


if __name__ == "__main__":
    main()
