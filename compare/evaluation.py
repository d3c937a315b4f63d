"""A batch as an MLflow GenAI evaluation, and an acceptance verdict for the ONNX packaging.

Every prompt is compared first: both models interleaved token by token (so each clock counts
only its own work), then the fidelity of the ONNX answer against the reference. The batch is
one MLflow run (table, plot, CSV, summary, verdict). Under it, each packaging gets a nested
run through `mlflow.genai.evaluate`, with code scorers (`compare/scorers.py`) and linked to
its logged model: MLflow's evaluation view shows every row's trace with its assessments, and
the two runs compare there.

Concession: `predict_fn` serves each row's answer from the comparison that just ran rather
than generating again, which would double the cost and lose the fair clocks. Its trace is
that answer's: its messages, output, token usage and real start and end times.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from threading import Event

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Param

from compare.acceptance import Acceptance, Thresholds, accept, tag_export
from compare.batch import (
    answer_all,
    end_batch_run,
    log_batch_params,
    log_batch_run,
    start_batch_run,
    summarize,
)
from compare.budget import over_time, refused
from compare.comparison import compare_stream
from compare.fidelity import Scored, score
from compare.interrupted import Journal, Lease, log_journal, process_tags
from compare.scorers import row_attributes, scorers_for
from compare.traces import Request, logged_model_id, write_trace
from wrappers.backend import Backend
from wrappers.errors import public_text
from wrappers.options import GenerationOptions
from wrappers.quiet import quiet_evaluation
from wrappers.results import Result

Compared = tuple[dict[str, Result], Scored, int, dict]  # both results, the fidelity, the start (ns), the row
Progress = Callable[[int, int], None]  # (prompts done, prompts in all)


@dataclass(frozen=True)
class Batch:
    """What to evaluate, and how."""

    prompts: pd.DataFrame  # as `compare.batch.read_prompts` returns it
    source: str  # the dataset's name, as shown and logged
    dataset: str  # the name and a content digest, as tagged on the model version
    options: GenerationOptions
    thresholds: Thresholds = Thresholds()
    time_limit_s: float | None = None  # per prompt
    deadline: float | None = None  # time.monotonic() after which no new prompt is started
    owner: str = ""  # who ran it (see records.owner_id), tagged on the run
    lease: Lease | None = None  # the app's: where rows are journaled; None, only tagged with the pid


@dataclass(frozen=True)
class BatchOutcome:
    table: pd.DataFrame
    summary: dict[str, float]
    run_id: str  # the batch run; the evaluation runs are nested under it
    evaluation_runs: dict[str, str]  # side -> run id
    acceptance: Acceptance
    csv: str


def run_batch(
    backends: dict[str, Backend],
    batch: Batch,
    out_dir: Path,
    progress: Progress | None = None,
    lane: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    abandoned: Event | None = None,
):
    """Compare every prompt, evaluate both packagings in MLflow, and accept or reject the export.

    The batch's run is open from the start, and each row is journaled before it is reported
    (`compare.interrupted`), so a crash loses no answered row. Each prompt runs inside
    `lane()`, which lets chat requests go first. Once `abandoned` is set (the client went
    away), no new prompt starts; the rows answered are logged in a run ended KILLED and tagged
    `abandoned`, with no evaluation and no verdict. An error ends the run FAILED, saying why.
    """
    lease = batch.lease
    process = lease.tags if lease else process_tags()
    run_id = start_batch_run(batch.source, batch.owner, len(batch.prompts), process)
    journal = Journal(lease.journals if lease else None, run_id)
    try:
        compared = _answer(backends, batch, run_id, journal, progress, lane, abandoned)
        return _finish(batch, compared, run_id, journal, out_dir, abandoned)
    except Exception as exc:
        with contextlib.suppress(Exception):  # the store itself may be what failed
            if "prompts" not in MlflowClient().get_run(run_id).data.metrics:  # the rows are not logged yet
                log_journal(run_id, journal.path.parent if journal.path else None, len(batch.prompts))
                journal.remove()
            reason = public_text(f"{type(exc).__name__}: {exc}")[:500]
            end_batch_run(run_id, "FAILED", {"ended": "failed", "ended.reason": reason})
        raise


def _answer(backends, batch: Batch, run_id: str, journal: Journal, progress, lane, abandoned) -> list:
    """Both answers and the fidelity of each prompt, as (results, scored, started, row)."""
    compared: list[Compared] = []

    def compare(messages):
        with lane():
            started, conversations = time.time_ns(), {side: messages for side in backends}
            refusal = over_time(backends, conversations, batch.options, batch.time_limit_s)
            if refusal:  # this row's error; the next prompt may fit
                results = refused(backends, refusal)
            else:
                *_, results = compare_stream(backends, conversations, batch.options, batch.time_limit_s)
            compared.append((results, score(backends, results, batch.options), started, {}))
        return results

    for i, row in answer_all(batch.prompts, compare, batch.deadline, abandoned):
        compared[i][3].update(row | fidelity_columns(compared[i][1]))
        journal.add(compared[i][3])  # on disk before it is reported
        if i == 0:
            models = {side: f"{r.model.name}/{r.model.version}" for side, r in compared[0][0].items()}
            log_batch_params(run_id, batch.options, models)
        if progress is not None:
            progress(i + 1, len(batch.prompts))
    return compared


def _finish(batch: Batch, compared: list, run_id: str, journal: Journal, out_dir: Path, abandoned):
    """Log the rows; unless the client went away, evaluate both sides and give the verdict."""
    table = pd.DataFrame([c[3] for c in compared])
    acceptance = accept(table, batch.thresholds)
    stats = summarize(table) | _acceptance_metrics(acceptance)
    stats["unanswered_prompts"] = float(len(batch.prompts) - len(table))
    log_batch_run(run_id, table, stats, out_dir)
    journal.remove()  # the run holds the rows now
    csv = str(out_dir / "batch_results.csv")
    if abandoned is not None and abandoned.is_set() and len(table) < len(batch.prompts):
        note = f"the client went away after {len(table)} of {len(batch.prompts)} prompts"
        end_batch_run(run_id, "KILLED", {"abandoned": note, "ended": "abandoned", "ended.reason": note})
        return BatchOutcome(table, stats, run_id, {}, acceptance, csv)
    client = MlflowClient()
    client.set_tag(run_id, "fidelity.verdict", acceptance.verdict)
    client.set_tag(run_id, "fidelity.dataset", batch.dataset)
    client.log_batch(run_id, params=[Param(k, v) for k, v in _threshold_params(batch.thresholds).items()])
    runs = evaluate_sides(batch.prompts.iloc[: len(table)], compared, batch.options, run_id, batch.lease)
    first = compared[0][0]
    tag_export(first["onnx"], first["transformers"], acceptance, batch.dataset, run_id)
    end_batch_run(run_id, "FINISHED")
    return BatchOutcome(table, stats, run_id, runs, acceptance, csv)


def _acceptance_metrics(acceptance: Acceptance) -> dict[str, float]:
    figures = {"onnx_mean_kl": acceptance.mean_kl, "onnx_top1_agreement": acceptance.top1_agreement}
    return {k: v for k, v in figures.items() if v is not None} | {"accepted": float(acceptance.accepted)}


def _threshold_params(thresholds: Thresholds) -> dict[str, str]:
    return {f"accept.{k}": str(v) for k, v in asdict(thresholds).items()}


def fidelity_columns(scored: Scored) -> dict:
    """A table row's fidelity cells."""
    f = scored.fidelity
    return {
        "fidelity_tokens": f.tokens if f else None,
        "mean_kl": f.mean_kl if f else None,
        "max_kl": f.max_kl if f else None,
        "top1_agreement": f.top1_agreement if f else None,
        "fidelity_note": (f.note if f else scored.reason) or "",
    }


def evaluate_sides(
    prompts: pd.DataFrame,
    compared: list[Compared],
    options: GenerationOptions,
    parent_run_id: str,
    lease: Lease | None = None,
) -> dict[str, str]:
    """One `mlflow.genai.evaluate` run per side, nested under the batch run; return their ids."""
    quiet_evaluation()
    data = [_eval_row(i, record) for i, record in enumerate(prompts.to_dict("records"))]
    has_expected = prompts["expected"].notna().any()
    runs, process = {}, lease.tags if lease else process_tags()
    with _one_row_at_a_time(), mlflow.start_run(run_id=parent_run_id):
        for side in compared[0][0]:
            results = [c[0][side] for c in compared]
            model_id = logged_model_id(results[0].model)
            chosen = scorers_for(side, has_expected)
            with mlflow.start_run(
                run_name=f"evaluate {side}", nested=True, tags={"kind": "evaluation"} | process
            ) as run:
                mlflow.set_tag("side", side)
                mlflow.genai.evaluate(
                    data=data, predict_fn=_replay(side, compared, options), scorers=chosen, model_id=model_id
                )
            runs[side] = run.info.run_id
    return runs


def _eval_row(i: int, record: dict) -> dict:
    row = {"inputs": {"row": i, "prompt": record["prompt"]}}
    if record.get("expected"):
        row["expectations"] = {"expected": record["expected"]}
    return row


def _replay(side: str, compared: list[Compared], options: GenerationOptions) -> Callable[..., str]:
    """predict_fn: this side's answer to row `row`, traced with its real timings and usage."""

    def predict(row: int, prompt: str) -> str:
        results, scored, started_ns, _ = compared[row]
        result = results[side]
        other = next(r for s, r in results.items() if s != side)
        request = Request(
            comparison_id=f"batch-row-{row}",
            side=side,
            messages=[{"role": "user", "content": prompt}],
            options=options,
            result=result,
            started_ns=started_ns,
            pair={s: f"{r.model.name}/{r.model.version}" for s, r in results.items()},
        )
        write_trace(request, row_attributes(result, other, scored))
        return result.text if not result.error else f"ERROR: {result.error}"

    return predict


@contextlib.contextmanager
def _one_row_at_a_time() -> Iterator[None]:
    """Serial evaluation without MLflow's extra validation call: the rows replay one comparison each."""
    settings = {"MLFLOW_GENAI_EVAL_MAX_WORKERS": "1", "MLFLOW_GENAI_EVAL_SKIP_TRACE_VALIDATION": "true"}
    before = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def dataset_label(path: Path | str, source: str) -> str:
    """The dataset as tagged: its name and a content digest, so a pipeline knows what was run."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    return f"{source} (sha256 {digest})"
