"""Two MLflow packagings of one Phi-3 checkpoint behind one small interface."""

from wrappers.backend import Backend, Report, run, stream_result
from wrappers.config import AppConfig, load_config
from wrappers.errors import BackendError, GenerationError, ModelLoadError
from wrappers.models import build_backends
from wrappers.options import GenerationOptions
from wrappers.results import Latency, ModelRef, Result, Usage

__all__ = [
    "AppConfig",
    "Backend",
    "BackendError",
    "GenerationError",
    "GenerationOptions",
    "Latency",
    "ModelLoadError",
    "ModelRef",
    "Report",
    "Result",
    "Usage",
    "build_backends",
    "load_config",
    "run",
    "stream_result",
]
