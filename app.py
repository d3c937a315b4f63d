"""The side-by-side chat app: one prompt, two MLflow packagings of Phi-3.

`build_app` arranges the tabs and the API; `main` reads the configuration,
starts logging or loading the models in the background, and launches.
Decisions live in `wrappers` and `compare`, the tabs and formatting in `ui`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import gradio as gr
from starlette.middleware import Middleware

from compare.arena import Arena
from compare.interrupted import end_interrupted
from compare.recorder import Recorder
from compare.service import Comparer
from ui.api import MODEL_EVENTS, SIDES, register_api
from ui.api_docs import add_endpoint
from ui.arena import register_arena_api
from ui.chat import CSS, chat_tab
from ui.fair_queue import QueueShare
from ui.gate import RequestGate
from ui.history import CSS as HISTORY_CSS
from ui.history import history_tab
from ui.leaderboard import Board, leaderboard_api
from ui.login import LoginThrottle
from ui.panels import BATCH_EVENTS, batch_tab
from ui.replay import register_replay_api
from wrappers import load_config
from wrappers.backend import MlflowBackend
from wrappers.config import export_trusted_proxies
from wrappers.limits import Limits
from wrappers.limits_fit import fit_limits
from wrappers.startup import Startup, load_all, warm_up

TITLE = "Phi-3 in MLflow: transformers flavor vs ONNX pyfunc"


def build_app(
    backends: Mapping[str, MlflowBackend],
    startup: Startup | None = None,
    limits: Limits | None = None,
    recorder: Recorder | None = None,
    fidelity: bool = True,
    admins: frozenset[str] = frozenset(),
    notice: str | None = None,
) -> gr.Blocks:
    """The Blocks UI plus the named API endpoints. Loads no model.

    `admins` (user names) see everyone's history; everyone else sees their own. `notice`: a warning
    shown at the top of the page (a Space whose records will not survive a restart).
    """
    comparer = Comparer(backends, limits or Limits(), recorder, fidelity, startup)
    arena = Arena(SIDES)
    with gr.Blocks(title=TITLE, delete_cache=(3600, 3600)) as demo:  # uploads and downloads: an hour
        gr.Markdown(
            "### Phi-3 in MLflow, side by side\n"
            "One prompt goes to both packagings of the same model: the **transformers** flavor and the "
            "**onnx** pyfunc.",
            elem_id="header",
        )
        if notice:
            gr.Markdown(f"⚠️ **{notice}**", elem_id="storage-notice")
        status = gr.Markdown(elem_id="startup-status")
        with gr.Tabs() as tabs:
            with gr.Tab("Chat", id="chat"):
                chat = chat_tab(demo, comparer, arena, status)
            batch_tab(comparer)
            history_tab(chat, tabs, comparer.write_records, admins)
        register_api(comparer)
        register_arena_api(comparer, arena)
        register_replay_api(comparer)
        add_endpoint(leaderboard_api, Board, api_name="leaderboard")
    return demo


def login_throttle(limits: Limits) -> Middleware:
    return Middleware(
        LoginThrottle, free_failures=limits.login_free_failures, base_delay_s=limits.login_delay_s
    )


def queue_share(limits: Limits) -> QueueShare:
    """Each client's share of the queue (ui/fair_queue.py)."""
    return QueueShare(
        limits.session_requests,
        limits.address_requests,
        limits.address_batches,
        frozenset({BATCH_EVENTS}),
        alone=frozenset({MODEL_EVENTS}),
    )


def import_evaluation_flavors() -> None:
    """Import, once and alone, the MLflow flavor modules a batch's evaluation sets autologging up for.

    mlflow.genai.evaluate imports them (mlflow.pytorch, mlflow.transformers, ...) while holding
    MLflow's import-hook lock; a comparison or a trace export importing anything at that moment
    takes Python's import lock and then waits for MLflow's: a deadlock that froze every model
    thread when a batch's first evaluation met a running comparison (seen under a flood).
    """
    import torch  # noqa: F401 - the libraries the models load anyway: evaluation sets up their flavors
    import transformers  # noqa: F401
    from mlflow.models.evaluation.utils.trace import configure_autologging_for_evaluation

    with configure_autologging_for_evaluation(enable_tracing=True):
        pass


def main(argv: list[str] | None = None) -> None:
    from wrappers import build_backends

    config = load_config(argv)
    startup = Startup(list(SIDES))
    startup.log(f"Records: {config.records_location}")
    if config.storage_notice:
        startup.log(f"WARNING: {config.storage_notice}")
    config = fit_limits(config, startup.notice)  # lowered, and said, where memory is short
    backends = build_backends(config, progress=startup.log)
    if config.log_only:  # e.g. a Space's build step or a server image: register, then exit
        raise SystemExit(0 if load_all(backends, startup) else 1)
    import_evaluation_flavors()  # before any other thread imports
    warm_up(backends, startup)
    recorder = Recorder(config.spool_dir)
    threading.Thread(
        target=end_interrupted, args=(recorder.lease,), name="end-interrupted", daemon=True
    ).start()
    demo = build_app(
        backends, startup, config.limits, recorder, config.fidelity, config.admin_users, config.storage_notice
    )
    demo.queue(default_concurrency_limit=config.limits.concurrency, max_size=config.limits.queue_size)
    queue_share(config.limits).install(demo)
    export_trusted_proxies(config.trusted_proxies)  # the client address, for the share and the login throttle
    demo.launch(
        show_error=True,  # a wrong-shaped call gets Gradio's reason, not {"error": null}
        server_name=config.host,
        server_port=config.port,
        auth=config.auth,
        theme=gr.themes.Soft(),
        css=CSS + HISTORY_CSS,
        max_file_size=int(config.limits.max_upload_mb * 2**20),
        app_kwargs={"middleware": [login_throttle(config.limits), Middleware(RequestGate, blocks=demo)]},
    )


if __name__ == "__main__":
    main()
