"""The comparison service's refusals: plain exceptions whose messages say what to change.

The UI turns them into `gr.Error` at its boundary (`ui/api.py`); nothing here knows Gradio.
"""


class ComparisonError(Exception):
    """The comparison service could not do what was asked."""


class RequestError(ComparisonError):
    """A mistake in the request (a setting, a conversation, a vote): the message says which."""


class StoreError(ComparisonError):
    """MLflow could not be read or written; the message carries no server folders."""
