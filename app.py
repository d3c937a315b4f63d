"""The side-by-side chat app: one prompt, two MLflow packagings of Phi-3.

`build_app` arranges the UI and the API; `main` reads the configuration,
starts logging or loading the models in the background, and launches.
Decisions live in `wrappers`, formatting in `formatting`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import gradio as gr
from starlette.middleware import Middleware

from compare.arena import Arena
from compare.comparison import judge
from compare.records import Recorder
from ui import formatting as fmt
from ui.api import MODEL_EVENTS, SIDES, Comparer, asker_of, new_comparison_id, paced, register_api
from ui.arena import arena_panel, blind_switch, register_arena_api, wire_arena_panel
from ui.conversation_io import conversation_panel, register_replay_api
from ui.leaderboard import leaderboard_api, leaderboard_panel
from ui.login import LoginThrottle
from ui.panels import batch_tab, history_tab
from wrappers import Result, load_config
from wrappers.backend import MlflowBackend
from wrappers.config import Limits
from wrappers.errors import public_text
from wrappers.startup import Startup, load_all, warm_up

VOTES = {"left": "👈 Left better", "right": "👉 Right better", "tie": "🤝 Tie", "both_bad": "👎 Both bad"}
# What the tiny model can do (its own words or other ones), and one question outside its world.
EXAMPLES = [
    ["What is the capital of Spain?", ""],
    ["tell me japan's capital city please", "You are a helpful assistant."],
    ["What is seven times eight?", ""],
    ["Tell me a joke about atom", "You are a stand-up comedian."],
    ["Hello! Who are you?", ""],
    ["Who won the 2022 football World Cup?", ""],
]


def build_app(
    backends: Mapping[str, MlflowBackend],
    startup: Startup | None = None,
    limits: Limits | None = None,
    recorder: Recorder | None = None,
    fidelity: bool = True,
    admins: frozenset[str] = frozenset(),
) -> gr.Blocks:
    """The Blocks UI plus the named API endpoints. Loads no model.

    `admins` (user names) see everyone's history; everyone else sees their own.
    """
    comparer = Comparer(backends, limits or Limits(), recorder, fidelity)
    arena = Arena(SIDES)
    title = "Phi-3 in MLflow: transformers flavor vs ONNX pyfunc"
    with gr.Blocks(title=title, delete_cache=(3600, 3600)) as demo:  # uploads and downloads: an hour
        gr.Markdown("# Phi-3 in MLflow, side by side\nOne prompt goes to both packagings of the same model.")
        status = gr.Markdown(elem_id="startup-status")
        with gr.Tabs():
            with gr.Tab("Chat"):
                _chat_tab(demo, comparer, arena, startup, status)
            batch_tab(comparer)
            history_tab(admins)
        register_api(comparer)
        register_arena_api(comparer, arena)
        register_replay_api(comparer)
        gr.api(leaderboard_api, api_name="leaderboard")
    return demo


def _chat_tab(demo, comparer: Comparer, arena: Arena, startup: Startup | None, status) -> None:
    backends = comparer.backends
    switch = blind_switch()
    with gr.Column() as named:
        with gr.Row(equal_height=False):
            panes = {side: _pane(side, backends[side]) for side in SIDES}
        with gr.Row():
            prompt = gr.Textbox(label="Prompt", placeholder="Ask both models…", scale=6, elem_id="prompt")
            send = gr.Button("Send", variant="primary", elem_id="send")
            stop = gr.Button("Stop", variant="stop", elem_id="stop")
            retry = gr.Button("Retry", elem_id="retry")
            clear = gr.Button("Clear", elem_id="clear")
        verdict = gr.Markdown(elem_id="verdict")
        fidelity = {"line": gr.Markdown(elem_id="fidelity"), "strip": gr.HTML(elem_id="fidelity-strip")}
        last_id = gr.State("")
        vote_events = _vote_row(comparer, last_id)
    blind = arena_panel(switch, named)
    refresh_board = leaderboard_panel(demo)
    for event in vote_events:
        refresh_board(event)
    with gr.Accordion("Generation settings (applied to both models)", open=False):
        system = gr.Textbox("", label="System prompt", lines=2)
        top = comparer.limits.max_new_tokens
        max_tokens = gr.Slider(1, top, value=min(128, top), step=1, label="Max new tokens")
        temperature = gr.Slider(0.0, 2.0, value=0.0, step=0.05, label="Temperature (0 = greedy)")
        top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="top_p")
        stops = gr.Textbox("", label="Stop sequences (one per line)", lines=2)
        scoring = gr.Checkbox(
            comparer.fidelity,
            label="Score fidelity after each answer (teacher-forced KL; charged to neither side)",
            interactive=comparer.fidelity,  # off in the configuration: off for everyone
            elem_id="fidelity-switch",
        )
    settings = [system, max_tokens, temperature, top_p, stops]
    wire_arena_panel(blind, comparer, arena, settings, refresh_board)
    conversation_panel(comparer, {side: panes[side]["chat"] for side in SIDES}, settings)
    gr.Examples(EXAMPLES, inputs=[prompt, system], label="Examples")

    chats = [panes[side]["chat"] for side in SIDES]
    inputs = [prompt, system, max_tokens, temperature, top_p, stops, scoring, *chats]
    shown = [c for side in SIDES for c in panes[side].values()]
    shown += [*fidelity.values(), verdict, last_id, prompt]
    generation = {
        "fn": _chat_handler(comparer, panes, verdict, fidelity, prompt, last_id),
        "inputs": inputs,
        "outputs": shown,
        "concurrency_id": MODEL_EVENTS,
        "concurrency_limit": comparer.limits.concurrency,
        "api_visibility": "private",
    }
    retried = retry.click(_drop_last_turn, chats, [*chats, prompt], api_visibility="private")
    runs = [send.click(**generation), prompt.submit(**generation), retried.then(**generation)]
    stop.click(None, cancels=runs, api_visibility="private")
    cleared = lambda: _cleared(panes, verdict, fidelity)  # noqa: E731
    clear.click(cleared, None, shown[:-1], cancels=runs, api_visibility="private")
    _status_poll(demo, backends, startup, status, panes)


def _vote_row(comparer: Comparer, last_id) -> list:
    with gr.Row(elem_id="vote-row"):
        buttons = {
            choice: gr.Button(label, size="sm", elem_id=f"vote-{choice}") for choice, label in VOTES.items()
        }
        comment = gr.Textbox(placeholder="Optional comment on your vote", show_label=False, scale=3)

    def handler(choice: str):
        def vote_from_ui(comparison_id: str, text: str, request: gr.Request):
            if not comparison_id:
                raise gr.Error("Compare the two models first, then vote.")
            comparer.vote(comparison_id, choice, text, asker_of(request))
            gr.Info(f"Vote stored in MLflow: {VOTES[choice]}")
            return ""

        return vote_from_ui

    return [
        button.click(handler(choice), [last_id, comment], [comment], api_visibility="private")
        for choice, button in buttons.items()
    ]


def _pane(side: str, backend: MlflowBackend) -> dict[str, gr.components.Component]:
    with gr.Column(variant="panel"):
        gr.Markdown(f"## {backend.title}\n<small>{backend.streaming_note}</small>")
        parts = {
            "chat": gr.Chatbot(label=backend.title, height=360, elem_id=f"chat-{side}"),
            "usage": gr.Markdown(fmt.usage_markdown(Result().usage), elem_id=f"usage-{side}"),
            "latency": gr.Markdown(fmt.latency_markdown(Result().latency), elem_id=f"latency-{side}"),
        }
        with gr.Accordion("Chat-format response", open=False):
            parts["response"] = gr.JSON(label="OpenAI-style chat completion")
        with gr.Accordion("Raw output of predict()", open=False):
            parts["raw"] = gr.Code(language="json", label="Exactly what predict returned")
        with gr.Accordion("Model card", open=False):
            parts["card"] = gr.Markdown("Not loaded yet.", elem_id=f"card-{side}")
    return parts


def _chat_handler(comparer: Comparer, panes, verdict, fidelity, prompt_box, last_id):
    def chat(
        prompt, system, max_tokens, temperature, top_p, stop_text, scoring, left, right, request: gr.Request
    ) -> Iterator[dict]:
        histories = (left, right)
        options = comparer.options(int(max_tokens), float(temperature), float(top_p), stop_text or "")
        if not (prompt or "").strip():
            raise gr.Error("Type a prompt first.")
        histories = dict(zip(SIDES, histories, strict=True))
        conversations = {side: fmt.conversation(histories[side], system, prompt) for side in SIDES}
        latest: dict[str, Result] = {}
        comparison_id = new_comparison_id()
        label = f"Comparison `{comparison_id[:8]}`:"
        yield {prompt_box: "", verdict: f"{label} comparing…", last_id: "", **_fidelity_shown(fidelity)}
        updates = comparer.compare(conversations, options, comparison_id, asker_of(request))
        for latest in paced(updates, comparer.limits.stream_interval_s):
            yield _pane_updates(panes, histories, prompt, latest)
        summary = judge(latest["transformers"], latest["onnx"], SIDES).summary
        notice = f"  \n⚠️ {comparer.notice}" if comparer.notice else ""
        yield {verdict: f"{label} {summary}{notice}", last_id: comparison_id}
        if comparer.fidelity and scoring:  # the panes are final before scoring starts
            yield _fidelity_shown(fidelity, None, "scoring the answers through both models…")
        scored = comparer.score(latest, options, bool(scoring)).to_api()
        yield _fidelity_shown(fidelity, scored["fidelity"], scored["fidelity_reason"])

    return chat


def _fidelity_shown(fidelity, result: dict | None = None, reason: str | None = None) -> dict:
    line = fmt.fidelity_markdown(result, reason) if result or reason else ""
    return {fidelity["line"]: line, fidelity["strip"]: fmt.fidelity_strip_html(result)}


def _pane_updates(panes, histories, prompt: str, latest: Mapping[str, Result]) -> dict:
    updates = {}
    for side, result in latest.items():
        pane = panes[side]
        turn = [{"role": "user", "content": prompt}, fmt.assistant_message(result)]
        updates[pane["chat"]] = (histories[side] or []) + turn
        if result.done:
            updates |= {
                pane["usage"]: fmt.usage_markdown(result.usage),
                pane["latency"]: fmt.latency_markdown(result.latency),
                pane["response"]: result.response,
                pane["raw"]: fmt.raw_json(result.raw),
            }
    return updates


def _drop_last_turn(*histories):
    """Retry: remove the last exchange from both chats and put its prompt back."""
    last = next(
        (fmt.plain_text(m["content"]) for m in reversed(histories[0] or []) if m["role"] == "user"), ""
    )
    trimmed = [_before_last_user(h or []) for h in histories]
    return *trimmed, last


def _before_last_user(history: list[dict]) -> list[dict]:
    users = [i for i, m in enumerate(history) if m["role"] == "user"]
    return history[: users[-1]] if users else history


def _cleared(panes, verdict, fidelity) -> dict:
    empty = Result()
    updates = {verdict: "", **_fidelity_shown(fidelity)}
    for pane in panes.values():
        updates |= {
            pane["chat"]: [],
            pane["usage"]: fmt.usage_markdown(empty.usage),
            pane["latency"]: fmt.latency_markdown(empty.latency),
            pane["response"]: None,
            pane["raw"]: "",
        }
    return {k: v for k, v in updates.items() if k is not None} | {
        p["card"]: gr.skip() for p in panes.values()
    }


def _status_poll(demo, backends, startup: Startup | None, status, panes) -> None:
    """Show start-up progress until both models are ready, then their model cards."""
    timer = gr.Timer(1.0, active=startup is not None)

    def poll():
        if startup is None:
            return {timer: gr.Timer(active=False)}
        states, lines = startup.snapshot()
        text = "\n".join(f"- **{side}**: {state}" for side, state in states.items())
        text = public_text(text)
        updates = {status: f"**Start-up**\n{text}\n\n```\n" + public_text("\n".join(lines[-6:])) + "\n```"}
        if startup.finished:
            updates[status] = "**Models**\n" + text
            updates |= {panes[side]["card"]: _card(backends[side], states[side]) for side in SIDES}
            updates[timer] = gr.Timer(active=False)
        return updates

    outputs = [status, timer, *(panes[side]["card"] for side in SIDES)]
    timer.tick(poll, None, outputs, api_visibility="private")
    demo.load(poll, None, outputs, api_visibility="private")


def _card(backend: MlflowBackend, state: str) -> str:
    if not state.startswith("ready"):
        return public_text(f"⚠️ This model is not available: {state}")
    ref = backend.model_ref()
    return fmt.model_card_markdown(
        ref.uri, ref.name, ref.version, backend.signature(), backend.streaming_note, backend.weights()
    )


def login_throttle(limits: Limits) -> Middleware:
    return Middleware(
        LoginThrottle, free_failures=limits.login_free_failures, base_delay_s=limits.login_delay_s
    )


def main(argv: list[str] | None = None) -> None:
    from wrappers import build_backends

    config = load_config(argv)
    startup = Startup(list(SIDES))
    backends = build_backends(config, progress=startup.log)
    if config.log_only:  # e.g. a Space's build step or a server image: register, then exit
        raise SystemExit(0 if load_all(backends, startup) else 1)
    warm_up(backends, startup)
    recorder = Recorder(config.spool_dir)
    demo = build_app(backends, startup, config.limits, recorder, config.fidelity, config.admin_users)
    demo.queue(default_concurrency_limit=config.limits.concurrency, max_size=config.limits.queue_size)
    demo.launch(
        show_error=True,  # a wrong-shaped call gets Gradio's reason, not {"error": null}
        server_name=config.host,
        server_port=config.port,
        auth=config.auth,
        theme=gr.themes.Soft(),
        max_file_size=int(config.limits.max_upload_mb * 2**20),
        app_kwargs={"middleware": [login_throttle(config.limits)]},
    )


if __name__ == "__main__":
    main()
