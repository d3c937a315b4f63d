"""The app's configuration: one frozen dataclass from CLI flags and environment.

This is the only module that reads `os.environ`. Defaults work offline on
the embedded tiny model, with a SQLite MLflow store in `./data`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from wrappers.sources import PRESETS, TINY_CHECKPOINT, Source, parse_source

ROOT = TINY_CHECKPOINT.parent.parent
INT4_BLOCK_SIZES = (16, 32, 64, 128, 256)  # what onnxruntime-genai's builder accepts
DEFAULT_INT4_BLOCK_SIZE = 32  # as Microsoft's cpu-int4-rtn-block-32-acc-level-4 export of Phi-3-mini
TRANSFORMERS_DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class Limits:
    """Safe defaults for a public Space or a shared server."""

    max_prompt_tokens: int = 2048
    max_new_tokens: int = 512
    request_timeout_s: float = 120.0
    concurrency: int = 1  # generations at once; both models share the CPU anyway
    queue_size: int = 32  # waiting requests beyond this are refused with a message
    stream_interval_s: float = 0.05  # streams (UI and API): at most one update per interval
    max_batch_rows: int = 200  # prompts in one batch file
    batch_timeout_s: float = 900.0  # a batch stops answering after this; what it answered is kept
    max_upload_mb: float = 5.0  # uploaded files (Gradio's max_file_size)
    login_free_failures: int = 5  # failed logins per client before the back-off starts
    login_delay_s: float = 1.0  # the first back-off; it doubles with each further failure, to 5 min
    votes_per_voter: int = 20  # votes (changed ones too) one voter may cast in vote_window_s
    vote_window_s: float = 600.0


@dataclass(frozen=True)
class AppConfig:
    checkpoint: Path = TINY_CHECKPOINT  # the tiny-phi3 preset's transformers folder
    model_prefix: str = "tiny-phi3"  # registered names start with this
    preset: str = "tiny-phi3"
    transformers_source: Source | None = None  # None: the preset's
    onnx_source: Source | None = None
    log_only: bool = False
    transformers_dtype: str = "auto"  # side (a); auto: the checkpoint's own, where the CPU computes it
    onnx_precision: str = "int4"
    onnx_block_size: int = DEFAULT_INT4_BLOCK_SIZE  # int4 builds: weights per quantization scale
    data_dir: Path = ROOT / "data"
    tracking_uri: str | None = None  # None: SQLite in data_dir
    host: str = "127.0.0.1"
    port: int = 7860
    limits: Limits = field(default_factory=lambda: Limits())
    auth: tuple[str, str] | None = None  # (user, password) for the optional login
    admin_users: frozenset[str] = frozenset()  # logged-in users who see everyone's history
    transformers_endpoint: str | None = None  # a remote MLflow scoring server for pane (a)
    onnx_endpoint: str | None = None  # ... and for pane (b); None: in-process
    fidelity: bool = True  # score each comparison's answers through both models (compare/fidelity.py)

    @property
    def sources(self) -> tuple[Source, Source]:
        """(transformers source, ONNX source): explicit ones, else the preset's."""
        preset = PRESETS[self.preset]
        default = Source("local", str(self.checkpoint)) if self.preset == "tiny-phi3" else preset.transformers
        return self.transformers_source or default, self.onnx_source or preset.onnx

    @property
    def store_uri(self) -> str:
        return self.tracking_uri or f"sqlite:///{(self.data_dir / 'mlflow.db').resolve()}"

    @property
    def artifact_root(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def spool_dir(self) -> Path:
        """Answers waiting to become MLflow traces (see compare/spool.py)."""
        return self.data_dir / "spool.sqlite"

    @property
    def build_dir(self) -> Path:
        return self.data_dir / "onnx-builds"


def load_config(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> AppConfig:
    """Flags win over environment variables, which win over defaults."""
    env = os.environ if env is None else env
    on_space = "SPACE_ID" in env  # Hugging Face Spaces serve on 0.0.0.0:7860
    parser = argparse.ArgumentParser(description="Compare two MLflow packagings of Phi-3.")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=env.get("PHI3_PRESET", "tiny-phi3"))
    parser.add_argument("--checkpoint", type=Path, default=env.get("PHI3_CHECKPOINT", TINY_CHECKPOINT))
    parser.add_argument(
        "--transformers-source",
        default=env.get("PHI3_TRANSFORMERS_SOURCE"),
        help="a Hub id or a local folder (overrides the preset)",
    )
    parser.add_argument("--transformers-revision", default=env.get("PHI3_TRANSFORMERS_REVISION"))
    parser.add_argument(
        "--onnx-source",
        default=env.get("PHI3_ONNX_SOURCE"),
        help="build, a local folder, or hub:REPO[@REV]:SUBFOLDER (overrides the preset)",
    )
    parser.add_argument("--log-only", action="store_true", help="log and register both models, then exit")
    parser.add_argument(
        "--transformers-dtype",
        choices=TRANSFORMERS_DTYPES,
        default=env.get("PHI3_TRANSFORMERS_DTYPE", "auto"),
        help="side (a)'s weights; auto: the checkpoint's own dtype where this CPU computes it natively",
    )
    parser.add_argument(
        "--onnx-precision", choices=("int4", "fp32"), default=env.get("PHI3_ONNX_PRECISION", "int4")
    )
    parser.add_argument(
        "--onnx-block-size",
        type=_block_size,
        default=env.get("PHI3_ONNX_BLOCK_SIZE", str(DEFAULT_INT4_BLOCK_SIZE)),  # a string goes through type=
        help="int4 builds: weights per quantization scale (larger: faster, less exact)",
    )
    parser.add_argument("--data-dir", type=Path, default=env.get("PHI3_DATA_DIR", ROOT / "data"))
    parser.add_argument(
        "--host", default=env.get("GRADIO_SERVER_NAME", "0.0.0.0" if on_space else "127.0.0.1")
    )
    parser.add_argument("--port", type=int, default=int(env.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--transformers-endpoint", default=env.get("TRANSFORMERS_ENDPOINT"))
    parser.add_argument("--onnx-endpoint", default=env.get("ONNX_ENDPOINT"))
    parser.add_argument(
        "--no-fidelity",
        action="store_true",
        default=env.get("PHI3_FIDELITY", "1").strip().lower() in ("0", "false", "no", "off"),
        help="do not score the answers' next-token distributions after each comparison",
    )
    args = parser.parse_args(argv)
    user, password = env.get("PHI3_AUTH_USER"), env.get("PHI3_AUTH_PASSWORD")
    transformers_source = _source(args.transformers_source, args.transformers_revision)
    return AppConfig(
        checkpoint=args.checkpoint,
        model_prefix=_prefix(args, transformers_source),
        preset=args.preset,
        transformers_source=transformers_source,
        onnx_source=_source(args.onnx_source),
        log_only=args.log_only,
        transformers_dtype=args.transformers_dtype,
        onnx_precision=args.onnx_precision,
        onnx_block_size=args.onnx_block_size,
        data_dir=args.data_dir,
        tracking_uri=env.get("MLFLOW_TRACKING_URI") or None,
        host=args.host,
        port=args.port,
        limits=_limits(env),
        auth=(user, password) if user and password else None,
        admin_users=frozenset(u.strip() for u in env.get("PHI3_ADMIN_USERS", "").split(",") if u.strip()),
        transformers_endpoint=_endpoint(args.transformers_endpoint),
        onnx_endpoint=_endpoint(args.onnx_endpoint),
        fidelity=not args.no_fidelity,
    )


def _block_size(text: str) -> int:
    if not text.isdigit() or int(text) not in INT4_BLOCK_SIZES:
        choices = ", ".join(map(str, INT4_BLOCK_SIZES))
        raise argparse.ArgumentTypeError(f"must be one of {choices}, got {text!r}")
    return int(text)


def child_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment for an app process started from this one, on the store in `data_dir`.

    mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI, which would otherwise carry this
    process's latest store into the child, over its PHI3_DATA_DIR.
    """
    exported = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    inherited = {k: v for k, v in os.environ.items() if k not in exported}
    return inherited | {"PHI3_DATA_DIR": str(data_dir)} | extra


def _limits(env: Mapping[str, str]) -> Limits:
    defaults = Limits()
    return Limits(
        max_prompt_tokens=int(env.get("PHI3_MAX_PROMPT_TOKENS", defaults.max_prompt_tokens)),
        max_new_tokens=int(env.get("PHI3_MAX_NEW_TOKENS", defaults.max_new_tokens)),
        request_timeout_s=float(env.get("PHI3_REQUEST_TIMEOUT_S", defaults.request_timeout_s)),
        concurrency=int(env.get("PHI3_CONCURRENCY", defaults.concurrency)),
        queue_size=int(env.get("PHI3_QUEUE_SIZE", defaults.queue_size)),
        stream_interval_s=float(env.get("PHI3_STREAM_INTERVAL_S", defaults.stream_interval_s)),
        max_batch_rows=int(env.get("PHI3_MAX_BATCH_ROWS", defaults.max_batch_rows)),
        batch_timeout_s=float(env.get("PHI3_BATCH_TIMEOUT_S", defaults.batch_timeout_s)),
        max_upload_mb=float(env.get("PHI3_MAX_UPLOAD_MB", defaults.max_upload_mb)),
        login_free_failures=int(env.get("PHI3_LOGIN_FREE_FAILURES", defaults.login_free_failures)),
        login_delay_s=float(env.get("PHI3_LOGIN_DELAY_S", defaults.login_delay_s)),
        votes_per_voter=int(env.get("PHI3_VOTES_PER_VOTER", defaults.votes_per_voter)),
        vote_window_s=float(env.get("PHI3_VOTE_WINDOW_S", defaults.vote_window_s)),
    )


def _endpoint(url: str | None) -> str | None:
    """A scoring server's base URL, without a trailing /invocations."""
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise SystemExit(f"An endpoint must be an http(s) URL, got {url!r}.")
    return url.rstrip("/").removesuffix("/invocations")


def _source(text: str | None, revision: str | None = None) -> Source | None:
    return parse_source(text, revision) if text else None


def _prefix(args: argparse.Namespace, transformers_source: Source | None) -> str:
    """Registered-name prefix: one per preset or custom checkpoint. Versions are told apart by
    their source tags anyway; the name only keeps the registry readable."""
    if transformers_source and transformers_source.kind == "hub":
        return transformers_source.location.replace("/", "--").lower()
    if transformers_source:
        return Path(transformers_source.location).name.lower()
    return Path(args.checkpoint).name if args.preset == "tiny-phi3" else args.preset
