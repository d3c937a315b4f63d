"""Batch comparison: many prompts through both models, a table, statistics and a plot.

The whole batch is logged as one MLflow run (parameters, metrics, the table
via `mlflow.log_table`, the plot and a CSV), so it can be browsed later.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import pandas as pd

from wrappers.options import GenerationOptions
from wrappers.registry import EXPERIMENT
from wrappers.results import Result

SIDES = ("transformers", "onnx")
MAX_PROMPTS = 500
Compare = Callable[[list[dict[str, str]]], dict[str, Result]]  # one prompt's messages -> final results


def read_prompts(path: str | Path) -> pd.DataFrame:
    """Prompts (and optional expected answers) from a CSV or JSONL file, checked."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".jsonl", ".json"):
            frame = pd.read_json(path, lines=True)
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise ValueError(f"Could not read {path.name} as CSV or JSONL: {exc}") from exc
    if "prompt" not in frame.columns:
        found = ", ".join(map(str, frame.columns))
        raise ValueError(f"{path.name} needs a 'prompt' column (found: {found}).")
    prompts = frame["prompt"].map(_text)
    expected = frame["expected"].map(_text) if "expected" in frame.columns else None
    table = pd.DataFrame({"prompt": prompts, "expected": expected})[prompts.notna()]
    table = table.astype(object).where(table.notna(), None)  # missing answers are None, not NaN
    if table.empty or len(table) > MAX_PROMPTS:
        raise ValueError(f"{path.name} must hold between 1 and {MAX_PROMPTS} prompts, found {len(table)}.")
    return table.reset_index(drop=True)


def _text(value) -> str | None:
    """A cell as text; empty and missing cells are None."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


def answer_all(prompts: pd.DataFrame, compare: Compare) -> Iterator[tuple[int, dict]]:
    """Yield (index, row) as each prompt gets both answers."""
    for i, record in enumerate(prompts.to_dict("records")):
        results = compare([{"role": "user", "content": record["prompt"]}])
        yield i, _row(record, results)


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
    row["agree"] = row["transformers_output"] == row["onnx_output"]
    return row


def summarize(table: pd.DataFrame) -> dict[str, float]:
    """Median and p95 latency, median decode speed, agreement rate and accuracy.

    >>> t = pd.DataFrame({"transformers_latency_s": [1.0, 3.0], "onnx_latency_s": [0.5, 0.5],
    ...     "transformers_tokens_per_s": [10.0, 20.0], "onnx_tokens_per_s": [40.0, 40.0],
    ...     "agree": [True, False], "expected": [None, None]})
    >>> summarize(t)["agreement_rate"], summarize(t)["transformers_median_latency_s"]
    (0.5, 2.0)
    """
    stats = {"prompts": float(len(table)), "agreement_rate": float(table["agree"].mean())}
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


def log_batch_run(
    table: pd.DataFrame,
    stats: dict[str, float],
    options: GenerationOptions,
    models: dict[str, str],
    source: str,
    out_dir: Path,
    owner: str = "",
) -> str:
    """Log the batch as one MLflow run, tagged with its owner (see records.owner_id); return its id."""
    mlflow.set_experiment(EXPERIMENT)
    figure = latency_figure(table)
    csv = out_dir / "batch_results.csv"
    table.to_csv(csv, index=False)
    tags = {"kind": "batch", "source": source, "owner": owner}
    with mlflow.start_run(run_name=f"batch: {source}", tags=tags) as run:
        mlflow.log_params({**{f"model.{s}": m for s, m in models.items()}, **_settings(options)})
        mlflow.log_metrics(stats)
        mlflow.log_table(table, "batch_results.json")
        mlflow.log_figure(figure, "latency.png")
        mlflow.log_artifact(str(csv))
    return run.info.run_id


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
        "tags.mlflow.runName",
        "metrics.prompts",
        "metrics.agreement_rate",
        "metrics.transformers_median_latency_s",
        "metrics.onnx_median_latency_s",
    ]
    return runs[[c for c in keep if c in runs.columns]]
