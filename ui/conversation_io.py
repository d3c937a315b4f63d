"""Export, import and replay a conversation: the Chat tab's accordion, and /replay.

The file format and its checks are `compare.conversation`'s; here the chat panes
and settings become a file, and a file becomes the panes and settings again.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from pathlib import Path

import gradio as gr
import pandas as pd

from compare.conversation import (
    MAX_BYTES,
    ConversationError,
    answer_of,
    chat_histories,
    export_conversation,
    options_of,
    read_conversation,
    replay,
    settings_of,
)
from ui import formatting as fmt
from ui.api import MODEL_EVENTS, SIDES, Comparer, new_comparison_id

EXPORTS = Path(tempfile.gettempdir()) / "phi3-compare-exports"
KEEP_EXPORTS_S = 600  # Gradio copies a returned file into its cache at once
HEADERS = {
    "turn": "Turn",
    "prompt": "Prompt",
    "side": "Side",
    "recorded": "Recorded answer",
    "replayed": "Replayed answer",
    "same": "Same?",
    "recorded_tokens_per_s": "Recorded tok/s",
    "replayed_tokens_per_s": "Replayed tok/s",
    "model": "Replayed by",
}


def conversation_turns(comparer: Comparer, histories: dict[str, list], system: str) -> list[dict]:
    """The panes' turns, each with both answers and, where this server measured them, their figures."""
    turns = []
    for side in SIDES:
        history = [
            {"role": m["role"], "content": fmt.plain_text(m["content"]), "metadata": m.get("metadata")}
            for m in histories[side] or []
        ]
        for index, message in enumerate(history):
            if message["role"] != "assistant" or index == 0 or history[index - 1]["role"] != "user":
                continue
            prompt = history[index - 1]["content"]
            sent = fmt.conversation(history[: index - 1], system, prompt)
            found = comparer.answers.recall(side, sent, message["content"])
            number = sum(1 for m in history[:index] if m["role"] == "user") - 1
            if number == len(turns):
                turns.append({"prompt": prompt, "answers": {}})
            if number < len(turns):
                turns[number]["answers"][side] = answer_of(found, message["content"])
    return [turn for turn in turns if set(turn["answers"]) == set(SIDES)]


def model_versions(comparer: Comparer) -> dict[str, dict]:
    versions = {}
    for side, backend in comparer.backends.items():
        try:
            ref = backend.model_ref()
            versions[side] = {"name": ref.name, "version": ref.version, "uri": ref.uri}
        except Exception as exc:  # a side that failed to load is still named as such
            versions[side] = {"error": str(exc)[:250]}
    return versions


def export_file(comparer: Comparer, histories, system, max_tokens, temperature, top_p, stop) -> str:
    """Write the panes' conversation as a JSON file; return its path."""
    options = comparer.options(int(max_tokens), float(temperature), float(top_p), stop or "")
    turns = conversation_turns(comparer, histories, system or "")
    if not turns:
        raise gr.Error("There is no conversation to export yet.")
    content = export_conversation(settings_of(system or "", options), turns, model_versions(comparer))
    EXPORTS.mkdir(exist_ok=True)
    _prune(EXPORTS)
    path = EXPORTS / f"conversation-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False), encoding="utf-8")
    return str(path)


def import_file(path: str | None) -> dict:
    """The checked conversation in an uploaded file; a bad file is refused with the reason."""
    if not path:
        raise gr.Error("Choose a conversation file (JSON) to import.")
    size = os.path.getsize(path)
    if size > MAX_BYTES:
        raise gr.Error(f"The file is {size:,} bytes; a conversation file is at most {MAX_BYTES:,}.")
    try:
        return read_conversation(Path(path).read_bytes())
    except ConversationError as exc:
        raise gr.Error(str(exc)) from exc


def replay_rows(comparer: Comparer, content: dict):
    """Replay a conversation against the current models; yield the rows so far after each turn."""
    try:
        options = options_of(content, comparer.limits.max_new_tokens)
    except ConversationError as exc:
        raise gr.Error(str(exc)) from exc

    def compare(conversations):
        *_, last = comparer.compare(conversations, options, new_comparison_id())
        return last

    rows = []
    for row in replay(content, compare):
        rows.append(row)
        if len(rows) % len(SIDES) == 0:
            yield rows


def replay_summary(rows: list[dict]) -> str:
    same = sum(row["same"] == "yes" for row in rows)
    return (
        f"**Replayed** {len(rows) // len(SIDES)} turns: {same} of {len(rows)} answers are the ones recorded."
    )


def register_replay_api(comparer: Comparer) -> None:
    def replay_conversation(conversation: str) -> dict:
        """Replay an exported conversation (its JSON text) against the current models, turn by turn."""
        if not isinstance(conversation, str):
            raise gr.Error("conversation must be the exported file's JSON text.")
        try:
            content = read_conversation(conversation.encode("utf-8", "replace"))
        except ConversationError as exc:
            raise gr.Error(str(exc)) from exc
        rows = []
        for update in replay_rows(comparer, content):
            rows = update
        return {"turns": rows, "summary": replay_summary(rows)}

    gr.api(
        replay_conversation,
        api_name="replay",
        concurrency_id=MODEL_EVENTS,
        concurrency_limit=comparer.limits.concurrency,
    )


def conversation_panel(comparer: Comparer, chats: dict, settings: list) -> None:
    """The accordion; `chats` are the two panes' chatbots, `settings` (system, max_tokens, temperature,
    top_p, stop)."""
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
    loaded = gr.State(None)  # the imported conversation, kept on the server
    panes = [chats[side] for side in SIDES]

    def exporting(first, second, *values):
        return export_file(comparer, dict(zip(SIDES, (first, second), strict=True)), *values)

    def importing(path):
        content = import_file(path)
        settings_values = content["settings"]
        histories = chat_histories(content)
        turns = len(content["turns"])
        models = ", ".join(
            f"{side} `{m.get('name')}/{m.get('version')}`"
            for side, m in (content.get("models") or {}).items()
        )
        note = f"**Imported** {turns} turns (answered by {models or 'unknown models'}). Replay them below."
        return (
            *(histories[side] for side in SIDES),
            settings_values["system_prompt"],
            min(settings_values["max_tokens"], comparer.limits.max_new_tokens),
            settings_values["temperature"],
            settings_values["top_p"],
            "\n".join(settings_values["stop"]),
            note,
            content,
            None,  # the last replay's table
            None,  # the upload box, ready for another file
        )

    def replaying(content):
        if content is None:
            raise gr.Error("Import a conversation first, then replay it.")
        rows = []
        for rows in replay_rows(comparer, content):
            yield replay_summary(rows) + " (so far)", _table(rows)
        yield replay_summary(rows), _table(rows)

    export.click(exporting, [*panes, *settings], exported, api_visibility="private")
    outputs = [*panes, *settings, summary, loaded, table, upload]
    upload.upload(importing, upload, outputs, api_visibility="private")
    run.click(
        replaying,
        loaded,
        [summary, table],
        concurrency_id=MODEL_EVENTS,
        concurrency_limit=comparer.limits.concurrency,
        api_visibility="private",
    )


def _table(rows: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=list(HEADERS)).round(
        {"recorded_tokens_per_s": 1, "replayed_tokens_per_s": 1}
    )
    return table.rename(columns=HEADERS)


def _prune(folder: Path) -> None:
    """Remove exports older than KEEP_EXPORTS_S (Gradio has its own copy by then)."""
    cutoff = time.time() - KEEP_EXPORTS_S
    for old in folder.glob("conversation-*.json"):
        if old.stat().st_mtime < cutoff:
            old.unlink(missing_ok=True)
