"""The Batch and History tabs, and the /batch endpoint that shares the batch code."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr
import mlflow
import pandas as pd

from compare.batch import answer_all, latency_figure, log_batch_run, read_prompts, recent_batches, summarize
from compare.records import recent_comparisons
from ui.api import MODEL_EVENTS, SIDES, Comparer, new_comparison_id
from wrappers import GenerationOptions
from wrappers.config import ROOT
from wrappers.registry import EXPERIMENT

BUILT_IN = {"Capitals, arithmetic and the seed prompts": ROOT / "examples" / "batch_prompts.csv"}
BATCH_OPTIONS = GenerationOptions(max_tokens=64)  # greedy, so a batch repeats exactly


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

    def run_from_ui(file, chosen, progress=gr.Progress()):  # noqa: B008 - Gradio's idiom
        path, source = (file, Path(file).name) if file else (BUILT_IN.get(chosen), chosen)
        if path is None:
            raise gr.Error("Upload a file of prompts or pick a built-in set.")
        result = run_batch(comparer, path, source, progress)
        return _summary_markdown(result), latency_figure(result["table"]), result["table"], result["csv"]

    run.click(
        run_from_ui,
        [upload, built_in],
        [summary, plot, table, download],
        concurrency_id=MODEL_EVENTS,
        api_visibility="private",
    )

    def batch(file: str) -> dict:
        """Run both models on every prompt of a CSV/JSONL file; log one MLflow run."""
        if not file:
            raise gr.Error("Send a CSV or JSONL file of prompts.")
        result = run_batch(comparer, file, Path(file).name)
        records = result["table"].astype(object).where(result["table"].notna(), None).to_dict("records")
        return {"run_id": result["run_id"], "summary": result["summary"], "records": records}

    with tab:  # hidden components carry /batch, which takes a file
        api_file, api_result = gr.File(visible=False), gr.JSON(visible=False)
        trigger = gr.Button(visible=False)
    trigger.click(batch, [api_file], [api_result], api_name="batch", concurrency_id=MODEL_EVENTS)


def run_batch(comparer: Comparer, path, source: str, progress=None) -> dict:
    """Answer every prompt with both models, summarize, and log the batch as one run."""
    try:
        prompts = read_prompts(path)
    except ValueError as exc:
        raise gr.Error(str(exc)) from exc

    def compare(messages):
        *_, last = comparer.compare({side: messages for side in SIDES}, BATCH_OPTIONS, new_comparison_id())
        return last

    rows = []
    for i, row in answer_all(prompts, compare):
        rows.append(row)
        if progress is not None:
            progress((i + 1) / len(prompts), desc=f"{i + 1} of {len(prompts)} prompts")
    table = pd.DataFrame(rows)
    stats = summarize(table)
    models = _model_refs(comparer)
    out_dir = Path(tempfile.mkdtemp(prefix="batch-"))
    run_id = log_batch_run(table, stats, BATCH_OPTIONS, models, source, out_dir)
    return {"table": table, "summary": stats, "run_id": run_id, "csv": str(out_dir / "batch_results.csv")}


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
    lines = [
        f"**Run** `{result['run_id']}` · {int(s['prompts'])} prompts · agreement {s['agreement_rate']:.0%}"
    ]
    for side in SIDES:
        accuracy = f" · accuracy {s[f'{side}_accuracy']:.0%}" if f"{side}_accuracy" in s else ""
        median, p95 = s[f"{side}_median_latency_s"], s[f"{side}_p95_latency_s"]
        speed = s[f"{side}_median_tokens_per_s"]
        lines.append(
            f"- **{side}**: median {median:.3f} s · p95 {p95:.3f} s · {speed:.1f} tokens/s{accuracy}"
        )
    return "\n".join(lines)


def history_tab(chat=None) -> None:
    with gr.Tab("History"):
        gr.Markdown(_mlflow_ui_hint())
        refresh = gr.Button("Refresh", elem_id="history-refresh")
        comparisons = gr.Dataframe(label="Recent comparisons (MLflow traces)", elem_id="history-comparisons")
        batches = gr.Dataframe(label="Batch runs (MLflow runs)", elem_id="history-batches")
    refresh.click(load_history, None, [comparisons, batches], api_visibility="private")


def load_history() -> tuple[pd.DataFrame, pd.DataFrame]:
    try:
        return recent_comparisons(), recent_batches()
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
