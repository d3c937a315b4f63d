"""Library messages the app cannot act on, silenced where they are emitted.

The app prints one progress line per step (`startup.py`); these would repeat
on every request or bury those lines. Each filter drops named messages of one
library logger and lets everything else through, so a real warning still shows:

- transformers' advice on how a pipeline calls `generate()` (MLflow's
  transformers flavor makes that call; the app sends `max_tokens` only);
- the tokenizer's note that it ignores a clean-up setting saved with the checkpoint;
- MLflow's notes that it is creating a new store's tables;
- with a tracking server (not a local store): MLflow's links to each run it logs, its progress bars
  while it downloads a model's files, and its note that it waits for a new version (each is a step);
- transformers' progress bar while it reads weights ("Loading" is already a step);
- `mlflow.genai.evaluate`'s progress bars, two per batch (the Batch tab says "evaluating…").

Quantizer output and other chatter of the ONNX build stay in the child process
that builds it (`child.py`), which passes on only progress lines.
"""

from __future__ import annotations

import functools
import logging
import os

DROPPED = {  # logger name -> starts of the messages dropped
    "transformers.generation.utils": (
        "Passing `generation_config` together with generation-related arguments",
        "Both `max_new_tokens`",
    ),
    "transformers.tokenization_utils_tokenizers": ("Ignoring clean_up_tokenization_spaces",),
    "mlflow.store.db.utils": ("Creating initial MLflow database tables", "Updating database tables"),
    "mlflow.store.model_registry.abstract_store": ("Waiting up to",),
}
SILENCED = {  # MLflow's switches for what it prints itself (read when it prints, so set here, not read)
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


class DropMessages(logging.Filter):
    """Drop the records whose message starts with one of `starts`.

    >>> drop = DropMessages(("Both `max_new_tokens`",))
    >>> drop.filter(logging.makeLogRecord({"msg": "Both `max_new_tokens` (=8) and ..."}))
    False
    >>> drop.filter(logging.makeLogRecord({"msg": "CUDA out of memory"}))
    True
    """

    def __init__(self, starts: tuple[str, ...]) -> None:
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.starts)


@functools.cache  # once per process
def quiet_libraries() -> None:
    """Install the filters above and turn off transformers' weight-loading progress bar."""
    import transformers.utils.logging

    for name, starts in DROPPED.items():
        logging.getLogger(name).addFilter(DropMessages(starts))
    os.environ.update(SILENCED)
    transformers.utils.logging.disable_progress_bar()


@functools.cache  # once per process, when the first batch is evaluated (the import is slow)
def quiet_evaluation() -> None:
    """Turn off the progress bar `mlflow.genai.evaluate` draws in the terminal for each run.

    MLflow offers no switch: its harness calls tqdm when tqdm is installed, so the harness's
    tqdm is replaced by one that is disabled.
    """
    from mlflow.genai.evaluation import harness

    if getattr(harness, "tqdm", None) is not None:
        harness.tqdm = functools.partial(harness.tqdm, disable=True)
