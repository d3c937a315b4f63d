"""Errors whose messages tell the user what to do next, and the one place they lose server paths."""

import re

# An absolute path (or a file:// URI's), not a URL's path or a models:/ URI: "/srv/data/x.db" -> "…/x.db"
SERVER_PATH = re.compile(r"(?<![\w:/.~-])(?:sqlite:///|file://)?/(?:[^\s/'\"`:,;()\[\]<>]+/)+")


class BackendError(Exception):
    """A model backend could not do its job."""


class ModelLoadError(BackendError):
    """A model could not be logged, registered or loaded."""


class GenerationError(BackendError):
    """A loaded model failed while generating."""


def public_text(text: str) -> str:
    """`text` without the server's folders: what a visitor may see of an error or an output.

    >>> public_text("Could not load /srv/app/data/artifacts/model.onnx: bad; see models:/m/1, http://h:5/x")
    'Could not load …/model.onnx: bad; see models:/m/1, http://h:5/x'
    >>> public_text("store sqlite:////tmp/s/mlflow.db, file:///tmp/a/b and /tmp alone")
    'store …/mlflow.db, …/b and /tmp alone'
    """
    return SERVER_PATH.sub("…/", text)
