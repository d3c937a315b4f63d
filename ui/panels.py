"""The Batch tab, and the /batch endpoint that shares the batch code."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import gradio as gr

from compare.acceptance import Thresholds
from compare.batch import latency_figure, read_prompts
from compare.evaluation import Batch, dataset_label
from compare.evaluation import run_batch as evaluate_batch
from compare.owners import Asker
from compare.service import Comparer
from ui import tables
from ui.api import SIDES, asker_of, at_boundary, input_error
from ui.api_docs import describe
from ui.background import run_in_background
from wrappers import GenerationOptions
from wrappers.chat import max_characters
from wrappers.config import ROOT

BUILT_IN = {"Capitals, arithmetic and the seed prompts": ROOT / "examples" / "batch_prompts.csv"}
BATCH_OPTIONS = GenerationOptions(max_tokens=64)  # greedy, so a batch repeats exactly
BATCH_EVENTS = "batches"  # one batch at a time, in a group of its own; chat requests go first


def batch_tab(comparer: Comparer) -> None:
    """The Batch tab, run from the page, and /batch, which takes a file through hidden components."""
    with gr.Tab("Batch comparison") as tab:
        form = _batch_form()
    check, run = _ui_batch_handler(comparer)
    asked = [form.upload, form.built_in, *form.thresholds]
    form.run.click(check, asked, None, concurrency_limit=None, api_visibility="private").success(
        run, asked, form.outputs, concurrency_id=BATCH_EVENTS, api_visibility="private"
    )  # the whole input is checked in a step with no outputs: a refusal is one toast
    _register_batch_api(comparer, tab)


@dataclass(frozen=True)
class BatchForm:
    """The tab's inputs (a file or a built-in set, the thresholds) and what a run fills in."""

    upload: gr.File
    built_in: gr.Dropdown
    thresholds: list[gr.Number]  # max mean KL, min top-1 agreement, min accuracy
    run: gr.Button
    outputs: list  # summary, latency plot, results table, CSV download


def _batch_form() -> BatchForm:
    gr.Markdown(
        "Upload a CSV or JSONL file with a `prompt` column (and optionally `expected`), or pick a "
        "built-in set. Both models answer every prompt (greedy, 64 new tokens), and the ONNX answers "
        "are scored against the transformers ones (teacher-forced KL). The batch is one MLflow run, with "
        "an MLflow GenAI evaluation per packaging under it, and ends with *accept* or *reject* for the "
        "ONNX packaging, tagged on its model version. Each answered row is kept on disk at once: if the "
        "app stops during a batch, its next start logs the rows answered in the batch's run and ends "
        "it *KILLED*, and the History tab says where it stopped."
    )
    with gr.Row():
        upload = gr.File(label="Prompts (CSV or JSONL)", file_types=[".csv", ".jsonl"], elem_id="batch-file")
        built_in = gr.Dropdown(["", *BUILT_IN], value="", label="…or a built-in set")
    defaults = Thresholds()
    with gr.Row():
        max_kl = gr.Number(defaults.max_kl, label="Accept if mean KL ≤ (nats/token)", elem_id="accept-kl")
        agreement = gr.Number(
            defaults.min_agreement, label="…and top-1 agreement ≥", elem_id="accept-agreement"
        )
        accuracy = gr.Number(0, label="…and accuracy ≥ (0: not checked)", elem_id="accept-accuracy")
    run = gr.Button("Run batch", variant="primary", elem_id="batch-run")
    summary = gr.Markdown(elem_id="batch-summary")
    plot = gr.Plot(label="Latency", elem_id="batch-plot")
    table = gr.Dataframe(label="Results", wrap=True, interactive=False, elem_id="batch-table")
    download = gr.File(label="Results as CSV", elem_id="batch-download")
    return BatchForm(upload, built_in, [max_kl, agreement, accuracy], run, [summary, plot, table, download])


def _ui_batch_handler(comparer: Comparer):
    """The Run button's (check, run): progress after each row, then summary, plot, table and CSV."""

    def chosen_file(file, chosen) -> tuple[str | Path, str]:
        path, source = (file, Path(file).name) if file else (BUILT_IN.get(chosen), chosen)
        if path is None:
            raise input_error("Upload a file of prompts or pick a built-in set.")
        return path, source

    @at_boundary
    def check_from_ui(file, chosen, max_kl, agreement, accuracy) -> None:
        """The whole input, refused before any output changes: thresholds, then the file's prompts."""
        thresholds(comparer, max_kl, agreement, accuracy)
        prompts_of(comparer, chosen_file(file, chosen)[0])

    @at_boundary
    def run_from_ui(file, chosen, max_kl, agreement, accuracy, request: gr.Request, progress=gr.Progress()):  # noqa: B008
        path, source = chosen_file(file, chosen)
        chosen, asker = thresholds(comparer, max_kl, agreement, accuracy), asker_of(request)
        for update in run_in_background(
            lambda folder, step, gone: run_batch(comparer, path, source, asker, folder, chosen, step, gone)
        ):
            if isinstance(update, tuple):  # a row is answered: the moment Gradio can see a closed client
                done, total = update
                progress(done / total, desc=f"{done} of {total} prompts" if done < total else "evaluating…")
                yield batch_status(done, total), gr.skip(), gr.skip(), gr.skip()
            else:  # Gradio copies the CSV into its own cache before it resumes this generator
                yield (
                    _summary_markdown(update),
                    latency_figure(update["table"]),
                    tables.batch_results(update["table"]),
                    update["csv"],
                )

    return check_from_ui, run_from_ui


def _register_batch_api(comparer: Comparer, tab: gr.Tab) -> None:
    """/batch: its file and thresholds arrive through hidden components of the tab."""
    defaults, batch = Thresholds(), _batch_endpoint(comparer)
    with tab:  # hidden components carry /batch, which takes a file
        api_file, api_result = gr.File(visible=False), gr.JSON(visible=False)
        api_thresholds = [
            gr.Number(value, visible=False) for value in (defaults.max_kl, defaults.min_agreement, None)
        ]
        trigger = gr.Button(visible=False)
    trigger.click(
        batch, [api_file, *api_thresholds], [api_result], api_name="batch", concurrency_id=BATCH_EVENTS
    )
    describe(batch, [api_file, *api_thresholds])


def _batch_endpoint(comparer: Comparer):
    """/batch itself: gr.api reads its signature and its docstring."""
    defaults = Thresholds()

    @at_boundary
    def batch(
        file: str,
        accept_kl=defaults.max_kl,
        accept_agreement=defaults.min_agreement,
        accept_accuracy=None,
        request: gr.Request = None,
    ):
        """Run both models on every prompt of a CSV/JSONL file; evaluate and accept or reject the export.

        Streams {"answered", "prompts"} after each row, then the result; a client that goes away
        stops the batch before its next row.

        Args:
            file: A CSV or JSONL file with a prompt column (and optionally expected), sent with handle_file().
            accept_kl: Accept the export only if its mean KL is at most this (nats/token); None: unchecked.
            accept_agreement: ...and its top-1 agreement at least this share (0 to 1); None: unchecked.
            accept_accuracy: ...and its accuracy on expected answers at least this (0 to 1); 0: unchecked.
        """
        chosen, asker = thresholds(comparer, accept_kl, accept_agreement, accept_accuracy), asker_of(request)
        if not file:
            raise input_error("Send a CSV or JSONL file of prompts.")
        for update in run_in_background(
            lambda folder, step, gone: run_batch(
                comparer, file, Path(file).name, asker, folder, chosen, step, gone
            )
        ):
            if isinstance(update, tuple):  # each answered row is an update, {"answered", "prompts"}
                yield {"answered": update[0], "prompts": update[1]}
            else:
                records = update["table"].astype(object).where(update["table"].notna(), None)
                keys = ("run_id", "summary", "evaluation_runs", "acceptance")
                yield {key: update[key] for key in keys} | {"records": records.to_dict("records")}

    return batch


EVALUATING = (
    "evaluating… logging the batch run, then one MLflow GenAI evaluation per packaging "
    "(each answer traced and scored), then the verdict on the ONNX export. This takes a few seconds."
)


def batch_status(done: int, total: int) -> str:
    """The Batch tab's line while a batch runs; after the last answer, what the evaluation is doing.

    >>> batch_status(3, 12)
    '3 of 12 prompts answered…'
    >>> batch_status(12, 12).startswith("12 of 12 prompts answered; evaluating… logging")
    True
    """
    if done < total:
        return f"{done} of {total} prompts answered…"
    return f"{done} of {total} prompts answered; {EVALUATING}"


def thresholds(comparer: Comparer, max_kl, agreement, accuracy) -> Thresholds:
    """Acceptance thresholds from the tab or the API; blank (or a 0 accuracy) means not checked."""
    values = {"accept_kl": max_kl, "accept_agreement": agreement, "accept_accuracy": accuracy}
    asked = comparer.check("thresholds", values)
    return Thresholds(asked.accept_kl, asked.accept_agreement, asked.accept_accuracy or None)


def prompts_of(comparer: Comparer, path):
    """The file's prompts, each within the limits, or the reason it is refused (with its line)."""
    limits = comparer.limits
    try:
        return read_prompts(path, limits.max_batch_rows, max_characters(limits.max_prompt_tokens))
    except ValueError as exc:
        raise input_error(str(exc)) from exc


def run_batch(
    comparer: Comparer,
    path,
    source: str,
    asker: Asker,
    out_dir: Path,
    chosen: Thresholds | None = None,
    progress=None,
    abandoned: threading.Event | None = None,
) -> dict:
    """Compare every prompt, evaluate both packagings in MLflow, accept or reject the export.

    Bounded: at most `max_batch_rows` prompts, each within the prompt limit, and no new prompt
    after `batch_timeout_s` (what was answered is kept). Rows run in the batch lane, so chat
    requests go first; the CSV for download is left in `out_dir`, which the caller removes.
    """
    limits, prompts = comparer.limits, prompts_of(comparer, path)
    batch = Batch(
        prompts,
        source,
        dataset_label(path, source),
        BATCH_OPTIONS,
        chosen or Thresholds(),
        limits.request_timeout_s,
        deadline=time.monotonic() + limits.batch_timeout_s,
        owner=asker.owner,
        lease=comparer.recorder.lease if comparer.recorder else None,
    )

    outcome = evaluate_batch(
        dict(comparer.backends), batch, out_dir, progress, lambda: comparer.slot.take("batch"), abandoned
    )
    acceptance = asdict(outcome.acceptance) | {"verdict": outcome.acceptance.verdict}
    return {
        "table": outcome.table,
        "summary": outcome.summary,
        "run_id": outcome.run_id,
        "evaluation_runs": outcome.evaluation_runs,
        "acceptance": acceptance | {"summary": outcome.acceptance.summary()},
        "csv": outcome.csv,
    }


def _summary_markdown(result: dict) -> str:
    s, acceptance = result["summary"], result["acceptance"]
    mark = "✅" if acceptance["accepted"] else "❌"
    agreement = f"agreement {s['agreement_rate']:.0%}" if "agreement_rate" in s else "no row to compare"
    lines = [
        f"### {mark} {acceptance['summary']}",
        f"**Run** `{result['run_id']}` · {int(s['prompts'])} prompts · {agreement} · "
        f"evaluations: {', '.join(f'{side} `{run}`' for side, run in result['evaluation_runs'].items())}",
    ]
    if s.get("failed_rows"):
        lines.append(f"- ⚠️ {int(s['failed_rows'])} rows had a side fail: not counted as agreement")
    if s.get("unanswered_prompts"):
        lines.append(
            f"- ⚠️ Stopped at the batch time limit: {int(s['unanswered_prompts'])} prompts not answered"
        )
    for side in SIDES:
        accuracy = f" · accuracy {s[f'{side}_accuracy']:.0%}" if f"{side}_accuracy" in s else ""
        median, p95 = s[f"{side}_median_latency_s"], s[f"{side}_p95_latency_s"]
        speed = s[f"{side}_median_tokens_per_s"]
        lines.append(
            f"- **{side}**: median {median:.3f} s · p95 {p95:.3f} s · {speed:.1f} tokens/s{accuracy}"
        )
    return "\n".join(lines)
