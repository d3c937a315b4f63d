"""The Batch and History tables as people read them: units in the headers, rounded figures, short ids.

The data keep their machine names and full precision (the /batch API, the CSV
download, MLflow); only what the tabs show is renamed and rounded here. Times
are in milliseconds (a tiny model answers in a few), speeds to one decimal,
KL to three significant figures, shares in percent, ids to 8 characters as the
Chat tab shows them.
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from ui.formatting import short_id

SIDES = ("transformers", "onnx")
TEXT_WIDTH, FIGURE_WIDTH = "240px", "120px"  # wide enough that a header breaks at its spaces only


def batch_results(table: pd.DataFrame) -> gr.Dataframe:
    """The Batch tab's results: prompt, both answers, then each side's figures and the fidelity."""
    columns = {"prompt": ("Prompt", str), "expected": ("Expected", str)}
    columns |= {f"{side}_output": (f"{side} answer", str) for side in SIDES}
    columns |= {"agree": ("Same answer", _mark)}
    for side in SIDES:
        columns |= {
            f"{side}_correct": (f"{side} correct", _mark),
            f"{side}_tokens": (f"{side} tokens", _count),
            f"{side}_latency_s": (f"{side} total (ms)", _ms),
            f"{side}_ttft_s": (f"{side} first token (ms)", _ms),
            f"{side}_tokens_per_s": (f"{side} decode (tok/s)", _one_decimal),
        }
    columns |= {
        "fidelity_tokens": ("Scored tokens", _count),
        "mean_kl": ("Mean KL (nats/token)", _three_figures),
        "max_kl": ("Max KL (nats)", _three_figures),
        "top1_agreement": ("Top-1 agreement (%)", _percent),
        "fidelity_note": ("Fidelity note", str),
    }
    return _shown(table, columns)


def comparisons(table: pd.DataFrame) -> gr.Dataframe:
    """History: one row per comparison, newest first; select a row to reopen it in the Chat tab.

    The prompt and both answers come first: a phone shows only those (see ui/history.py's CSS).
    """
    columns = {
        "last prompt": ("Prompt", str),
        "transformers answer": ("transformers answer", str),
        "onnx answer": ("onnx answer", str),
        "time": ("Time (UTC)", _time),
        "comparison_id": ("Comparison", short_id),
        "vote": ("Vote", str),
        "transformers": ("transformers model", str),
        "onnx": ("onnx model", str),
        "ended": ("Ended", str),
    }
    return _shown(table, columns)


def batches(table: pd.DataFrame) -> gr.Dataframe:
    """History: one row per batch run, with its status, verdict and median times, and why it ended early.

    An interrupted batch (the app died) shows KILLED and where it stopped; a running one, RUNNING.
    """
    columns = {  # what a phone shows first (see ui/history.py's CSS)
        "tags.mlflow.runName": ("Batch", str),
        "status": ("Status", str),
        "tags.fidelity.verdict": ("ONNX verdict", str),
        "start_time": ("Started (UTC)", _time),
        "run_id": ("Run", short_id),
        "metrics.prompts": ("Prompts", _count),
        "metrics.agreement_rate": ("Same answers (%)", _percent),
        "metrics.transformers_median_latency_s": ("transformers median (ms)", _ms),
        "metrics.onnx_median_latency_s": ("onnx median (ms)", _ms),
        "tags.ended.reason": ("What happened", str),
    }
    return _shown(table, columns)


def _shown(table: pd.DataFrame, columns: dict) -> gr.Dataframe:
    present = {key: spec for key, spec in columns.items() if key in table.columns}
    shown = pd.DataFrame(
        {name: [_blank_or(show, v) for v in table[key]] for key, (name, show) in present.items()},
        columns=[name for name, _ in present.values()],
    )
    widths = [TEXT_WIDTH if show is str else FIGURE_WIDTH for _, show in present.values()]
    return gr.Dataframe(shown, column_widths=widths or None)


def _blank_or(show, value):
    """Missing values show as blank, not as NaN or None."""
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else show(value)


def _ms(seconds: float) -> float:
    """
    >>> _ms(0.19852060300036), _ms(2.5)
    (198.5, 2500.0)
    """
    return round(float(seconds) * 1000, 1)


def _one_decimal(value: float) -> float:
    return round(float(value), 1)


def _three_figures(value: float) -> str:
    """
    >>> _three_figures(1.369123e-06), _three_figures(0.25)
    ('1.37e-06', '0.25')
    """
    return f"{float(value):.3g}"


def _percent(share: float) -> float:
    return round(float(share) * 100, 1)


def _count(value) -> int:
    return int(value)


def _mark(value) -> str:
    return "✓" if value else "✗"


def _time(value) -> str:
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")
