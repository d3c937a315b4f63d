"""Batch comparison: many prompts through both models, a table, statistics and a plot.

The whole batch is logged as one MLflow run (parameters, metrics, the table
via `mlflow.log_table`, the plot and a CSV), so it can be browsed later. The run
opens before the first row and is ended explicitly (FINISHED, KILLED or FAILED,
tagged with why), so a process that dies leaves it RUNNING for the next start to
end (`compare.interrupted`).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from threading import Event

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from wrappers.options import GenerationOptions
from wrappers.registry import EXPERIMENT
from wrappers.results import Result

SIDES = ("transformers", "onnx")
MAX_PROMPTS = 500
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet may run as a formula
Compare = Callable[[list[dict[str, str]]], dict[str, Result]]  # one prompt's messages -> final results


def read_prompts(path: str | Path, max_rows: int = MAX_PROMPTS, max_chars: int | None = None) -> pd.DataFrame:
    """Prompts (and optional expected answers, kept as written) from a CSV or JSONL file, checked.

    A CSV row whose field count differs from the header's is refused, not shifted; a JSONL
    `expected` of 5 stays "5". Prompts longer than `max_chars` are refused by row.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
        records = _jsonl_records(text) if path.suffix.lower() in (".jsonl", ".json") else _csv_records(text)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path.name} is not UTF-8 text: {exc}") from exc
    except ValueError as exc:
        raise ValueError(f"Could not read {path.name}: {exc}") from exc
    if records and not any("prompt" in r for r in records.values()):
        found = ", ".join(dict.fromkeys(k for r in records.values() for k in r))
        raise ValueError(f"{path.name} needs a 'prompt' column (found: {found}).")
    rows = [
        {"prompt": _text(r.get("prompt")), "expected": _text(r.get("expected")), "line": line}
        for line, r in records.items()
    ]
    rows = [r for r in rows if r["prompt"] is not None]
    if not rows or len(rows) > max_rows:
        raise ValueError(f"{path.name} must hold between 1 and {max_rows} prompts, found {len(rows)}.")
    for row in rows:
        if max_chars is not None and len(row["prompt"]) > max_chars:
            raise ValueError(
                f"{path.name}, line {row['line']}: the prompt has {len(row['prompt'])} characters; "
                f"the limit is {max_chars}."
            )
    table = pd.DataFrame(rows, columns=["prompt", "expected"]).astype(object)
    return table.where(table.notna(), None)  # a missing answer is None, not NaN


def _csv_records(text: str) -> dict[int, dict]:
    """Line number -> {column: cell}; a row with more or fewer fields than the header is an error."""
    lines = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(lines, [])
        records = {}
        for row in lines:
            if not any(cell.strip() for cell in row):
                continue  # a blank line
            if len(row) != len(header):
                raise ValueError(
                    f"line {lines.line_num} has {len(row)} fields, the header has {len(header)} "
                    f"({', '.join(header)}); quote a cell that contains a comma."
                )
            records[lines.line_num] = dict(zip(header, row, strict=True))
    except csv.Error as exc:
        raise ValueError(f"line {lines.line_num}: {exc}") from exc
    return records


def _jsonl_records(text: str) -> dict[int, dict]:
    """Line number -> the object on that line; values keep their JSON text (5 -> "5")."""
    records = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {number} is not JSON: {exc}") from exc
        if not isinstance(record, dict):
            raise ValueError(f"line {number} must be a JSON object with a 'prompt', got {line[:60]!r}.")
        records[number] = {
            k: v if isinstance(v, str) or v is None else json.dumps(v) for k, v in record.items()
        }
    return records


def _text(value) -> str | None:
    """A cell as text; empty and missing cells are None."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def answer_all(
    prompts: pd.DataFrame, compare: Compare, deadline: float | None = None, stop: Event | None = None
) -> Iterator[tuple[int, dict]]:
    """Yield (index, row) as each prompt gets both answers.

    Between rows, stop after `deadline` (monotonic) or once `stop` is set (the client went away).
    """
    for i, record in enumerate(prompts.to_dict("records")):
        results = compare([{"role": "user", "content": record["prompt"]}])
        yield i, _row(record, results)
        if deadline is not None and time.monotonic() > deadline or stop is not None and stop.is_set():
            return


def _row(record: dict, results: dict[str, Result]) -> dict:
    """One table row: both outputs, usage, latency, agreement and correctness."""
    expected = record.get("expected") if isinstance(record.get("expected"), str) else None
    row = {"prompt": record["prompt"], "expected": expected}
    for side in SIDES:
        result = results[side]
        output = f"ERROR: {result.error}" if result.error else result.text
        row |= {
            f"{side}_output": output,
            f"{side}_correct": None if expected is None else expected.lower() in output.lower(),
            f"{side}_tokens": result.usage.completion_tokens,
            f"{side}_latency_s": result.latency.total_s,
            f"{side}_ttft_s": result.latency.ttft_s,
            f"{side}_tokens_per_s": result.latency.tokens_per_s,
        }
    failed = any(results[side].error for side in SIDES)  # nothing to compare: not an agreement
    row["agree"] = None if failed else row["transformers_output"] == row["onnx_output"]
    return row


def summarize(table: pd.DataFrame) -> dict[str, float]:
    """Median and p95 latency, median decode speed, agreement rate and accuracy.

    The agreement rate counts only rows where both sides answered (`agree` is None otherwise).

    >>> t = pd.DataFrame({"transformers_latency_s": [1.0, 3.0, 2.0], "onnx_latency_s": [0.5, 0.5, 0.5],
    ...     "transformers_tokens_per_s": [10.0, 20.0, 15.0], "onnx_tokens_per_s": [40.0, 40.0, 40.0],
    ...     "agree": [True, False, None], "expected": [None, None, None]})
    >>> s = summarize(t); s["agreement_rate"], s["failed_rows"], s["transformers_median_latency_s"]
    (0.5, 1.0, 2.0)
    """
    compared = table["agree"].dropna()
    stats = {"prompts": float(len(table)), "failed_rows": float(len(table) - len(compared))}
    if len(compared):
        stats["agreement_rate"] = float(compared.astype(float).mean())
    for side in SIDES:
        latency = table[f"{side}_latency_s"].astype(float)
        stats[f"{side}_median_latency_s"] = float(latency.median())
        stats[f"{side}_p95_latency_s"] = float(latency.quantile(0.95))
        stats[f"{side}_median_tokens_per_s"] = float(table[f"{side}_tokens_per_s"].astype(float).median())
        if table["expected"].notna().any():
            stats[f"{side}_accuracy"] = float(table[f"{side}_correct"].dropna().astype(float).mean())
    return stats


def latency_figure(table: pd.DataFrame):
    """Box plot of the two latency distributions."""
    import matplotlib

    matplotlib.use("Agg")  # no display: the figure is only saved and shown as an image
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.2))
    data = [table[f"{side}_latency_s"].astype(float).dropna() for side in SIDES]
    axis.boxplot(data, tick_labels=["transformers flavor", "ONNX pyfunc"], vert=False)
    axis.set_xlabel("latency per prompt (s)")
    axis.set_title(f"Latency over {len(table)} prompts")
    figure.tight_layout()
    return figure


def start_batch_run(source: str, owner: str, total: int, process: dict[str, str]) -> str:
    """Open the batch's MLflow run before its first row, tagged with its owner and process; its id.

    It stays RUNNING while the rows are answered and evaluated; if the process dies meanwhile,
    the next start ends it (see `compare.interrupted`).
    """
    experiment = mlflow.set_experiment(EXPERIMENT)
    tags = {"kind": "batch", "source": source, "owner": owner, "prompts.total": str(total)} | process
    run = MlflowClient().create_run(experiment.experiment_id, tags=tags, run_name=f"batch: {source}")
    return run.info.run_id


def log_batch_params(run_id: str, options: GenerationOptions, models: dict[str, str]) -> None:
    """The models and settings, logged once the first row has named the models."""
    params = {**{f"model.{s}": m for s, m in models.items()}, **_settings(options)}
    MlflowClient().log_batch(run_id, params=[Param(k, v) for k, v in params.items()])


def log_batch_run(run_id: str, table: pd.DataFrame, stats: dict[str, float], out_dir: Path) -> None:
    """Log the answered rows into the batch's run: metrics, the table, the plot and the CSV.

    The CSV (formula-safe, see `results_csv`) is also left in `out_dir` for download. The run
    is not ended here: `end_batch_run` does that.
    """
    client, figure = MlflowClient(), latency_figure(table)
    csv_file = out_dir / "batch_results.csv"
    csv_file.write_text(results_csv(table), encoding="utf-8")
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in stats.items()])
    client.log_table(run_id, table, "batch_results.json")
    client.log_figure(run_id, figure, "latency.png")
    client.log_artifact(run_id, str(csv_file))


def end_batch_run(run_id: str, status: str, tags: dict[str, str] | None = None) -> None:
    """End a run FINISHED, KILLED or FAILED, with the tags that say why."""
    client = MlflowClient()
    for key, value in (tags or {}).items():
        client.set_tag(run_id, key, value)
    client.set_terminated(run_id, status)


def results_csv(table: pd.DataFrame) -> str:
    """The table as CSV, safe to open in a spreadsheet: no cell is read as a formula.

    As OWASP recommends for CSV injection, a text cell starting with =, +, -, @, a tab or a
    carriage return gets a leading apostrophe, and every text cell is quoted. (defusedcsv
    leaves tab and carriage return alone, hence this.)

    >>> print(results_csv(pd.DataFrame({"prompt": ["=1+1", "ok"], "n": [-1, 2]})), end="")
    "prompt","n"
    "'=1+1",-1
    "ok",2
    """
    safe = table.map(lambda v: f"'{v}" if isinstance(v, str) and v[:1] in FORMULA_STARTS else v)
    return safe.to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")


def _settings(options: GenerationOptions) -> dict[str, str]:
    return {
        "max_tokens": str(options.max_tokens),
        "temperature": str(options.temperature),
        "top_p": str(options.top_p),
        "stop": json.dumps(list(options.stop)),
    }


def recent_batches(owner: str | None, limit: int = 50) -> pd.DataFrame:
    """Past batch runs of `owner` (None: everyone's) read back from MLflow."""
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return pd.DataFrame()
    runs = mlflow.search_runs(
        [experiment.experiment_id],
        filter_string="tags.kind = 'batch'" + ("" if owner is None else f" and tags.owner = '{owner}'"),
        max_results=limit,
        order_by=["start_time DESC"],
    )
    if runs.empty:
        return runs
    keep = [
        "run_id",
        "start_time",
        "status",
        "tags.mlflow.runName",
        "tags.fidelity.verdict",
        "tags.ended.reason",
        "metrics.prompts",
        "metrics.agreement_rate",
        "metrics.transformers_median_latency_s",
        "metrics.onnx_median_latency_s",
    ]
    return runs[[c for c in keep if c in runs.columns]]
