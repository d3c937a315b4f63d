"""The History tab: your past comparisons and batch runs, read back from MLflow.

Loaded when the tab opens (and on Refresh). Every comparison is listed, labelled
with how it ended (only a finished one can be voted on). Selecting a comparison
reopens it in the Chat tab: both panes get its turns, as each model was sent
them, and the vote that stands on it.
"""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr
import mlflow
import pandas as pd

from compare.batch import recent_batches
from compare.endings import Ending
from compare.history import recent_comparisons, reopened
from ui import tables
from ui.api import asker_of, input_error
from ui.chat import ChatTab
from wrappers.errors import public_text
from wrappers.registry import EXPERIMENT

# A phone shows each table's first columns (the prompt and both answers; a batch's name and
# verdict) across its width: with every column at its fixed width, the answers were off-screen.
CSS = """
@media (max-width: 640px) {
  #history-comparisons th:nth-child(n+4), #history-comparisons [role=gridcell]:nth-child(n+4),
  #history-batches th:nth-child(n+3), #history-batches [role=gridcell]:nth-child(n+3) {
    display: none !important; }
  #history-comparisons th, #history-comparisons [role=gridcell] {
    width: 33.3% !important; min-width: 0 !important; max-width: none !important;
    flex: 0 0 33.3% !important; }
  #history-batches th, #history-batches [role=gridcell] {
    width: 50% !important; min-width: 0 !important; max-width: none !important; flex: 0 0 50% !important; }
  #history-comparisons th, #history-batches th { font-size: 0.75em; padding: 4px !important; }
  #history-comparisons th *, #history-batches th * { word-break: keep-all !important;
    overflow-wrap: normal !important; }  /* "transformers" whole, not "transforme" over "rs" */
  #history-comparisons table, #history-batches table,
  #history-comparisons .virtual-body, #history-batches .virtual-body {
    width: 100% !important; max-width: 100% !important; table-layout: fixed !important; }
}
"""


def history_tab(
    chat: ChatTab, tabs: gr.Tabs, write_records: Callable[[], None], admins: frozenset[str] = frozenset()
) -> None:
    """`admins` (user names) see everyone's history; everyone else sees their own.

    `write_records` writes what is still spooled (traces otherwise wait for the models to be idle),
    so that a comparison answered a moment ago is listed.
    """
    tab, refresh, comparisons, batches = _history_layout()
    shown_rows = gr.State([])  # (full id, how it ended, its vote) of the comparisons shown, row by row
    chosen = gr.State(None)  # the comparison selected, read back (see `selected`)

    def load(request: gr.Request):
        """Your own comparisons and batches (this browser session's, or your user's); admins see all."""
        write_records()
        found, runs = history_of(_owner(request, admins))
        keys = ["comparison_id", "ending", "vote"]
        rows = found[keys].values.tolist() if "comparison_id" in found else []
        return tables.comparisons(found), tables.batches(runs), rows

    def selected(rows: list, event: gr.SelectData, request: gr.Request) -> tuple:
        return _read_back(rows, event, _owner(request, admins))

    def reopen(chosen: tuple, request: gr.Request) -> dict:
        comparison_id, system, turns, results, ending, vote = chosen
        chat.forget_scoring(request.session_hash)  # a fidelity still being scored: not for this one
        shown = chat.reopen(turns, system, comparison_id, results, Ending(ending), vote)
        return shown | {tabs: gr.Tabs(selected="chat")}

    private = {"api_visibility": "private"}
    for trigger in (tab.select, refresh.click):
        trigger(load, None, [comparisons, batches, shown_rows], **private)
    # Read and checked first, into a State (which shows no badge): a refusal is one toast.
    comparisons.select(selected, shown_rows, chosen, **private).success(
        reopen, chosen, [*chat.outputs, tabs], **private
    )


def _history_layout() -> tuple[gr.Tab, gr.Button, gr.Dataframe, gr.Dataframe]:
    """The tab: a hint to MLflow's own UI, Refresh, and the comparisons and batches tables."""
    with gr.Tab("History") as tab:
        gr.Markdown(_mlflow_ui_hint())
        refresh = gr.Button("Refresh", size="sm", elem_id="history-refresh")
        comparisons = gr.Dataframe(
            label="Recent comparisons (MLflow traces): select one to reopen it in the Chat tab",
            interactive=False,
            wrap=True,
            elem_id="history-comparisons",
        )
        batches = gr.Dataframe(
            label="Batch runs (MLflow runs)", interactive=False, wrap=True, elem_id="history-batches"
        )
    return tab, refresh, comparisons, batches


def _owner(request: gr.Request, admins: frozenset[str]) -> str | None:
    """Whose history the asker sees: their own, or everyone's (None) for an admin."""
    asker = asker_of(request)
    return None if asker.user in admins else asker.owner


def _read_back(rows: list, event: gr.SelectData, owner: str | None) -> tuple:
    """(id, system prompt, turns, results, ending, vote) of the row selected, or why it cannot reopen."""
    row = event.index[0] if isinstance(event.index, list | tuple) else event.index
    if not isinstance(row, int) or not 0 <= row < len(rows):
        raise input_error("Select a row of the comparisons table to reopen it.")
    comparison_id, ending, vote = rows[row]
    system, turns, results = reopened(comparison_id, owner)
    if not turns:
        raise input_error("That comparison could not be read back from MLflow.")
    return comparison_id, system, turns, results, ending, vote


def history_of(owner: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The comparisons and batch runs of `owner` (None: everyone's), as MLflow holds them."""
    try:
        return recent_comparisons(owner), recent_batches(owner)
    except Exception as exc:
        gr.Warning(public_text(f"Could not read the history from MLflow: {exc}"))
        return pd.DataFrame(), pd.DataFrame()


def _mlflow_ui_hint() -> str:
    uri = mlflow.get_tracking_uri()
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    where = f"#/experiments/{experiment.experiment_id}" if experiment else ""
    return (
        "Everything here is read back from MLflow. To browse it there, run\n"
        f"```\nmlflow ui --backend-store-uri {public_text(uri)}\n```\nand open http://127.0.0.1:5000/{where} "
        "(traces and votes are under *Traces*, batch runs under *Runs*)."
    )
