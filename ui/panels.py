"""The Batch and History tabs, and the /batch endpoint that shares the batch code."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import gradio as gr
import mlflow
import pandas as pd

from compare.batch import (
    answer_all,
    latency_figure,
    log_batch_run,
    read_prompts,
    recent_batches,
    results_csv,
    summarize,
)
from compare.records import Asker, recent_comparisons
from ui.api import SIDES, Comparer, asker_of, new_comparison_id
from wrappers import GenerationOptions
from wrappers.chat import max_characters
from wrappers.config import ROOT
from wrappers.registry import EXPERIMENT

BUILT_IN = {"Capitals, arithmetic and the seed prompts": ROOT / "examples" / "batch_prompts.csv"}
BATCH_OPTIONS = GenerationOptions(max_tokens=64)  # greedy, so a batch repeats exactly
BATCH_EVENTS = "batches"  # one batch at a time, in a group of its own: chat keeps its own slot


def batch_tab(comparer: Comparer) -> None:
    with gr.Tab("Batch comparison") as tab:
        gr.Markdown(
            "Upload a CSV or JSONL file with a `prompt` column (and optionally `expected`), or pick a "
            "built-in set. Both models answer every prompt (greedy, 64 new tokens); the batch is logged "
            "as one MLflow run."
        )
        with gr.Row():
            upload = gr.File(
                label="Prompts (CSV or JSONL)", file_types=[".csv", ".jsonl"], elem_id="batch-file"
            )
            built_in = gr.Dropdown(["", *BUILT_IN], value="", label="…or a built-in set")
        run = gr.Button("Run batch", variant="primary", elem_id="batch-run")
        summary = gr.Markdown(elem_id="batch-summary")
        plot = gr.Plot(label="Latency", elem_id="batch-plot")
        table = gr.Dataframe(label="Results", wrap=True, elem_id="batch-table")
        download = gr.File(label="Results as CSV", elem_id="batch-download")

    def run_from_ui(file, chosen, request: gr.Request, progress=gr.Progress()):  # noqa: B008 - Gradio's idiom
        path, source = (file, Path(file).name) if file else (BUILT_IN.get(chosen), chosen)
        if path is None:
            raise gr.Error("Upload a file of prompts or pick a built-in set.")
        result = run_batch(comparer, path, source, asker_of(request), progress)
        with tempfile.TemporaryDirectory(prefix="batch-") as folder:
            csv_file = Path(folder) / "batch_results.csv"
            csv_file.write_text(results_csv(result["table"]), encoding="utf-8")
            # Gradio copies the file into its own cache before it resumes this generator.
            yield _summary_markdown(result), latency_figure(result["table"]), result["table"], str(csv_file)

    run.click(
        run_from_ui,
        [upload, built_in],
        [summary, plot, table, download],
        concurrency_id=BATCH_EVENTS,
        api_visibility="private",
    )

    def batch(file: str, request: gr.Request) -> dict:
        """Run both models on every prompt of a CSV/JSONL file; log one MLflow run."""
        if not file:
            raise gr.Error("Send a CSV or JSONL file of prompts.")
        result = run_batch(comparer, file, Path(file).name, asker_of(request))
        records = result["table"].astype(object).where(result["table"].notna(), None).to_dict("records")
        return {"run_id": result["run_id"], "summary": result["summary"], "records": records}

    with tab:  # hidden components carry /batch, which takes a file
        api_file, api_result = gr.File(visible=False), gr.JSON(visible=False)
        trigger = gr.Button(visible=False)
    trigger.click(batch, [api_file], [api_result], api_name="batch", concurrency_id=BATCH_EVENTS)


def run_batch(comparer: Comparer, path, source: str, asker: Asker, progress=None) -> dict:
    """Answer every prompt with both models (in the batch lane: chat requests go first), within
    the batch time limit; summarize, and log the batch as one run."""
    limits = comparer.limits
    try:
        prompts = read_prompts(path, limits.max_batch_rows, max_characters(limits.max_prompt_tokens))
    except ValueError as exc:
        raise gr.Error(str(exc)) from exc

    def compare(messages):
        conversations = {side: messages for side in SIDES}
        *_, last = comparer.compare(conversations, BATCH_OPTIONS, new_comparison_id(), asker, lane="batch")
        return last

    rows, deadline = [], time.monotonic() + limits.batch_timeout_s
    for i, row in answer_all(prompts, compare, deadline):
        rows.append(row)
        if progress is not None:
            progress((i + 1) / len(prompts), desc=f"{i + 1} of {len(prompts)} prompts")
    table = pd.DataFrame(rows)
    stats = summarize(table) | {"unanswered_prompts": float(len(prompts) - len(rows))}
    run_id = log_batch_run(table, stats, BATCH_OPTIONS, _model_refs(comparer), source, asker.owner)
    return {"table": table, "summary": stats, "run_id": run_id}


def _model_refs(comparer: Comparer) -> dict[str, str]:
    refs = {}
    for side, backend in comparer.backends.items():
        try:
            ref = backend.model_ref()
            refs[side] = f"{ref.name}/{ref.version}"
        except Exception as exc:  # a failed side is still part of the record
            refs[side] = f"unavailable: {exc}"[:250]
    return refs


def _summary_markdown(result: dict) -> str:
    s = result["summary"]
    agreement = f"agreement {s['agreement_rate']:.0%}" if "agreement_rate" in s else "no row to compare"
    lines = [f"**Run** `{result['run_id']}` · {int(s['prompts'])} prompts · {agreement}"]
    if s["failed_rows"]:
        lines.append(f"- ⚠️ {int(s['failed_rows'])} rows had a side fail: not counted as agreement")
    if s["unanswered_prompts"]:
        lines.append(
            f"- ⚠️ Stopped at the batch time limit: {int(s['unanswered_prompts'])} prompts were not answered"
        )
    for side in SIDES:
        accuracy = f" · accuracy {s[f'{side}_accuracy']:.0%}" if f"{side}_accuracy" in s else ""
        median, p95 = s[f"{side}_median_latency_s"], s[f"{side}_p95_latency_s"]
        speed = s[f"{side}_median_tokens_per_s"]
        lines.append(
            f"- **{side}**: median {median:.3f} s · p95 {p95:.3f} s · {speed:.1f} tokens/s{accuracy}"
        )
    return "\n".join(lines)


def history_tab(admins: frozenset[str] = frozenset()) -> None:
    with gr.Tab("History"):
        gr.Markdown(_mlflow_ui_hint())
        refresh = gr.Button("Refresh", elem_id="history-refresh")
        comparisons = gr.Dataframe(label="Recent comparisons (MLflow traces)", elem_id="history-comparisons")
        batches = gr.Dataframe(label="Batch runs (MLflow runs)", elem_id="history-batches")

    def load_history(request: gr.Request) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Your own comparisons and batches (this browser session's, or your user's); admins see all."""
        asker = asker_of(request)
        return history_of(None if asker.user in admins else asker.owner)

    refresh.click(load_history, None, [comparisons, batches], api_visibility="private")


def history_of(owner: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    try:
        return recent_comparisons(owner), recent_batches(owner)
    except Exception as exc:
        gr.Warning(f"Could not read the history from MLflow: {exc}")
        return pd.DataFrame(), pd.DataFrame()


def _mlflow_ui_hint() -> str:
    uri = mlflow.get_tracking_uri()
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    where = f"#/experiments/{experiment.experiment_id}" if experiment else ""
    return (
        "Everything here is read back from MLflow. To browse it there, run\n"
        f"```\nmlflow ui --backend-store-uri {uri}\n```\nand open http://127.0.0.1:5000/{where} "
        "(traces and votes are under *Traces*, batch runs under *Runs*)."
    )
