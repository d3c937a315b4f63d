"""Errors whose messages tell the user what to do next."""


class BackendError(Exception):
    """A model backend could not do its job."""


class ModelLoadError(BackendError):
    """A model could not be logged, registered or loaded."""


class GenerationError(BackendError):
    """A loaded model failed while generating."""
