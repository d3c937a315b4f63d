"""Export, import and replay a conversation: the Chat tab's accordion.

The file format and its checks are `compare.conversation`'s; here the Chat tab's
turns and settings become a file, and a file becomes the turns and settings again.
The replay itself (its rows, its table, and /replay) is `ui/replay.py`'s.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from compare.conversation import (
    ConversationError,
    answer_of,
    export_conversation,
    read_conversation,
    settings_of,
    turns_of,
)
from compare.service import Comparer
from compare.turns import STOPPED, Turn, messages_for
from ui import formatting as fmt
from ui.api import MODEL_EVENTS, SIDES, at_boundary, input_error
from ui.checks import box_options
from ui.replay import replay_rows, replay_summary, replay_table
from wrappers import GenerationOptions

EXPORTS = Path(tempfile.gettempdir()) / "phi3-compare-exports"
KEEP_EXPORTS_S = 600  # Gradio copies a returned file into its cache at once


def conversation_turns(comparer: Comparer, turns: list[Turn], system: str) -> list[dict]:
    """The Chat tab's turns, each with both answers and, where this server measured them, their figures.

    A stopped turn is left out: its answers are partial and were never recorded.
    """
    exported = []
    for index, turn in enumerate(turns):
        if turn.status == STOPPED:
            continue
        answers = {}
        for side in SIDES:
            answer = turn.answers.get(side)
            text = answer.text if answer else ""
            sent = messages_for(turns[:index], side, system, turn.prompt)
            answers[side] = answer_of(comparer.answers.recall(side, sent, text), text)
            if answer and answer.error and not answers[side]["error"]:
                answers[side]["error"] = answer.error
        exported.append({"prompt": turn.prompt, "answers": answers})
    return exported


def model_versions(comparer: Comparer) -> dict[str, dict]:
    versions = {}
    for side, backend in comparer.backends.items():
        try:
            ref = backend.model_ref()
            versions[side] = {"name": ref.name, "version": ref.version, "uri": ref.uri}
        except Exception as exc:  # a side that failed to load is still named as such
            versions[side] = {"error": str(exc)[:250]}
    return versions


def check_export(
    comparer: Comparer, turns, system, max_tokens, temperature, top_p, stop
) -> GenerationOptions:
    """The settings to export with, or the reason there is nothing to export."""
    options = box_options(comparer, max_tokens, temperature, top_p, stop)
    if not conversation_turns(comparer, turns or [], system or ""):
        raise input_error("There is no conversation to export yet.")
    return options


def export_file(comparer: Comparer, turns, system, max_tokens, temperature, top_p, stop) -> str:
    """Write the Chat tab's conversation as a JSON file; return its path."""
    options = check_export(comparer, turns, system, max_tokens, temperature, top_p, stop)
    turns = conversation_turns(comparer, turns or [], system or "")
    content = export_conversation(settings_of(system or "", options), turns, model_versions(comparer))
    EXPORTS.mkdir(exist_ok=True)
    _prune(EXPORTS)
    path = EXPORTS / f"conversation-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False), encoding="utf-8")
    return str(path)


def import_file(comparer: Comparer, path: str | None) -> dict:
    """The checked conversation in an uploaded file; a bad file is refused with the reason."""
    if not path:
        raise input_error("Choose a conversation file (JSON) to import.")
    size, limit = os.path.getsize(path), comparer.limits.max_conversation_bytes
    if size > limit:
        raise input_error(f"The file is {size:,} bytes; at most {limit:,} are read.")
    try:
        return read_conversation(Path(path).read_bytes(), comparer.limits)
    except ConversationError as exc:
        raise input_error(str(exc)) from exc


@dataclass(frozen=True)
class _Panel:
    """The accordion's components, and the imported conversation (kept on the server)."""

    export: gr.Button
    exported: gr.File
    upload: gr.File
    summary: gr.Markdown
    run: gr.Button
    table: gr.Dataframe
    loaded: gr.State


PRIVATE = {"api_visibility": "private"}  # the page's own steps; the API has /replay (ui/replay.py)


def conversation_panel(
    comparer: Comparer,
    turns: gr.State,
    settings: list,
    shown: list,
    show_turns: Callable[[list[Turn]], dict],
    taking_over: Callable[[str], None] = lambda session: None,
) -> None:
    """The accordion. `settings` are (system, max_tokens, temperature, top_p, stop); an import
    updates the `shown` components with `show_turns(turns)`, after `taking_over(session)`."""
    panel = _layout()
    _wire_export(comparer, panel, turns, settings)
    _wire_import(comparer, panel, settings, shown, show_turns, taking_over)
    _wire_replay(comparer, panel)


def _layout() -> _Panel:
    with gr.Accordion("Export, import and replay a conversation", open=False, elem_id="conversation-io"):
        with gr.Row():
            export = gr.Button("Export as JSON", elem_id="export")
            exported = gr.File(label="Exported conversation", interactive=False, elem_id="export-file")
            upload = gr.File(
                label="Import a conversation (JSON)", file_types=[".json"], elem_id="import-file"
            )
        summary = gr.Markdown(elem_id="import-summary")
        run = gr.Button("Replay against the current models", elem_id="replay")
        table = gr.Dataframe(interactive=False, wrap=True, elem_id="replay-table")
    return _Panel(export, exported, upload, summary, run, table, gr.State(None))


def _wire_export(comparer: Comparer, panel: _Panel, turns: gr.State, settings: list) -> None:
    @at_boundary
    def check_exporting(current, *values) -> None:
        check_export(comparer, current, *values)

    @at_boundary
    def exporting(current, *values):
        return export_file(comparer, current, *values)

    panel.export.click(check_exporting, [turns, *settings], None, **PRIVATE).success(
        exporting, [turns, *settings], panel.exported, **PRIVATE
    )


def _wire_import(
    comparer: Comparer,
    panel: _Panel,
    settings: list,
    shown: list,
    show_turns: Callable[[list[Turn]], dict],
    taking_over: Callable[[str], None],
) -> None:
    def check_importing(path) -> None:
        import_file(comparer, path)

    def importing(path, request: gr.Request):
        content = import_file(comparer, path)
        taking_over(request.session_hash)  # e.g. a fidelity still being scored: not for these turns
        return (
            show_turns(turns_of(content))
            | dict(zip(settings, _setting_values(content["settings"]), strict=True))
            | {panel.summary: _imported_note(content), panel.loaded: content, panel.table: None}
            | {panel.upload: None}  # the upload box, ready again
        )

    outputs = [*shown, *settings, panel.summary, panel.loaded, panel.table, panel.upload]
    checked = panel.upload.upload(check_importing, panel.upload, None, **PRIVATE)
    checked.success(importing, panel.upload, outputs, **PRIVATE)
    checked.failure(  # a refused file leaves the box, ready again
        lambda: None, None, panel.upload, concurrency_limit=None, **PRIVATE
    )


def _wire_replay(comparer: Comparer, panel: _Panel) -> None:
    def check_replaying(content) -> None:
        if content is None:
            raise input_error("Import a conversation first, then replay it.")

    @at_boundary
    def replaying(content):
        rows = []
        for rows in replay_rows(comparer, content):
            yield replay_summary(rows) + " (so far)", replay_table(rows)
        yield replay_summary(rows), replay_table(rows)

    panel.run.click(check_replaying, panel.loaded, None, **PRIVATE).success(
        replaying,
        panel.loaded,
        [panel.summary, panel.table],
        concurrency_id=MODEL_EVENTS,
        concurrency_limit=comparer.limits.concurrency,
        **PRIVATE,
    )


def _imported_note(content: dict) -> str:
    """What the summary says after an import: how many turns, and which models answered them."""
    models = ", ".join(
        f"{side} {fmt.code(_model_name(m))}" for side, m in (content.get("models") or {}).items() if m
    )
    count = len(content["turns"])
    return f"**Imported** {count} turns (answered by {models or 'unknown models'}). Replay them below."


def _setting_values(values: dict) -> tuple:
    """The settings boxes' values, in `conversation_panel`'s order, from a file's settings."""
    keys = ("system_prompt", "max_tokens", "temperature", "top_p")
    return (*(values[key] for key in keys), "\n".join(values["stop"]))


def _model_name(model: dict) -> str:
    """ "name/version" as a file gives it (shown as text: the file chose it)."""
    return f"{model.get('name')}/{model.get('version')}"


def _prune(folder: Path) -> None:
    """Remove exports older than KEEP_EXPORTS_S (Gradio has its own copy by then)."""
    cutoff = time.time() - KEEP_EXPORTS_S
    for old in folder.glob("conversation-*.json"):
        if old.stat().st_mtime < cutoff:
            old.unlink(missing_ok=True)
