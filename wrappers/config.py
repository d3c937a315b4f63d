"""The app's configuration: one frozen dataclass from CLI flags and environment.

This is the only module that reads `os.environ`. Defaults work offline on
the embedded tiny model, with a SQLite MLflow store in `./data`.

It also decides where the app's state lives (see docs/space.md). On a
Hugging Face Space (`SPACE_ID` set) whose persistent storage is mounted
(`/data`), the store, the spool and the Hugging Face cache go there, and an
ONNX build's scratch files stay on the local disk, which is larger and wiped
anyway. A remote MLflow tracking server keeps the store and its artifacts;
the spool stays on the local disk. A Space with neither loses its records
at every restart, and `storage_notice` says so.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from wrappers.limits import Limits, limits_from
from wrappers.sources import PRESETS, TINY_CHECKPOINT, Source, parse_source

ROOT = TINY_CHECKPOINT.parent.parent
INT4_BLOCK_SIZES = (16, 32, 64, 128, 256)  # what onnxruntime-genai's builder accepts
DEFAULT_INT4_BLOCK_SIZE = 32  # as Microsoft's cpu-int4-rtn-block-32-acc-level-4 export of Phi-3-mini
TRANSFORMERS_DTYPES = ("auto", "float32", "bfloat16", "float16")
# A Space's front proxy reaches the app from its private network; with SSR, Gradio's own
# Node proxy passes its X-Forwarded-For on from loopback (docs/limits-and-safety.md)
SPACE_PROXIES = "10.0.0.0/8,127.0.0.1,::1"
SPACE_STORAGE = Path("/data")  # where a Space's persistent storage is mounted, once it is enabled
REMOTE_SCHEMES = ("http", "https", "databricks")  # tracking servers: they keep the artifacts too
STORAGE_NOTICE = (
    "This Space keeps no records across restarts: every trace, vote, batch and leaderboard rating is "
    "lost, and both models are logged again. To keep them, enable persistent storage in the Space's "
    "settings, or set MLFLOW_TRACKING_URI to an MLflow tracking server (see docs/space.md)."
)


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
    scratch_dir: Path | None = None  # ONNX builds and their scratch files; None: in data_dir
    hub_cache: Path | None = None  # Hugging Face downloads; None: huggingface_hub's own (HF_HOME)
    space_id: str | None = None  # the Hugging Face Space this app runs on, if any
    persistent_dir: Path | None = None  # the host's persistent storage, when mounted (a Space's /data)
    host: str = "127.0.0.1"
    port: int = 7860
    limits: Limits = field(default_factory=lambda: Limits())
    auth: tuple[str, str] | None = None  # (user, password) for the optional login
    admin_users: frozenset[str] = frozenset()  # logged-in users who see everyone's history
    transformers_endpoint: str | None = None  # a remote MLflow scoring server for pane (a)
    onnx_endpoint: str | None = None  # ... and for pane (b); None: in-process
    fidelity: bool = True  # score each comparison's answers through both models (compare/fidelity.py)
    trusted_proxies: tuple[str, ...] = ()  # addresses/networks whose X-Forwarded-For is believed

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
        return (self.scratch_dir or self.data_dir) / "onnx-builds"

    @property
    def remote_store(self) -> bool:
        """True for an MLflow tracking server, which keeps the runs, traces and artifacts itself."""
        return bool(self.tracking_uri) and urlparse(self.tracking_uri).scheme in REMOTE_SCHEMES

    @property
    def records_survive_restart(self) -> bool:
        """False only on a Space whose store and artifacts are on its wiped-at-restart disk."""
        persistent = self.persistent_dir is not None and self.data_dir.resolve().is_relative_to(
            self.persistent_dir.resolve()
        )
        return self.space_id is None or self.remote_store or persistent

    @property
    def records_location(self) -> str:
        """Where the records go, for the log: a server's address without its credentials."""
        if not self.remote_store:
            return f"{self.data_dir} (MLflow store, artifacts and spool)"
        url = urlparse(self.tracking_uri)
        port = f":{url.port}" if url.port else ""
        return f"{url.scheme}://{url.hostname}{port}{url.path} (spool in {self.data_dir})"

    @property
    def storage_notice(self) -> str | None:
        """What to tell the Space's owner and visitors when the records will not survive a restart."""
        return None if self.records_survive_restart else STORAGE_NOTICE


def load_config(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> AppConfig:
    """Flags win over environment variables, which win over defaults."""
    env = os.environ if env is None else env
    on_space = "SPACE_ID" in env  # a Space's front proxy is trusted by default
    storage = _persistent_storage(env)
    parser = argparse.ArgumentParser(description="Compare two MLflow packagings of Phi-3.")
    _add_model_flags(parser, env)
    _add_store_and_server_flags(parser, env, storage)
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
        tracking_uri=args.tracking_uri,
        scratch_dir=Path(tempfile.gettempdir()) / "phi3-compare" if storage else None,  # the wiped disk
        hub_cache=_hub_cache(storage, env),
        space_id=env.get("SPACE_ID") or None,
        persistent_dir=storage,
        host=args.host,
        port=args.port,
        limits=limits_from(env),
        auth=(user, password) if user and password else None,
        admin_users=frozenset(u.strip() for u in env.get("PHI3_ADMIN_USERS", "").split(",") if u.strip()),
        transformers_endpoint=_endpoint(args.transformers_endpoint),
        onnx_endpoint=_endpoint(args.onnx_endpoint),
        fidelity=not args.no_fidelity,
        trusted_proxies=_networks(env.get("PHI3_TRUSTED_PROXIES", SPACE_PROXIES if on_space else "")),
    )


def _add_model_flags(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """The flags that choose the two packagings: the preset, the sources, the precisions."""
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


def _add_store_and_server_flags(
    parser: argparse.ArgumentParser, env: Mapping[str, str], storage: Path | None
) -> None:
    """The flags for where the records go, where the app listens, and what it runs remotely."""
    on_space = "SPACE_ID" in env  # Hugging Face Spaces serve on 0.0.0.0:7860
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=env.get("PHI3_DATA_DIR") or (storage / "phi3-compare" if storage else ROOT / "data"),
        help="the MLflow store, its artifacts and the spool (default: ./data, or /data/phi3-compare on "
        "a Space with persistent storage)",
    )
    parser.add_argument(
        "--tracking-uri",
        default=env.get("MLFLOW_TRACKING_URI") or None,
        help="a remote MLflow tracking server (http://...) instead of the SQLite store in the data folder",
    )
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


def _persistent_storage(env: Mapping[str, str]) -> Path | None:
    """A Space's persistent storage, if it is enabled: the Space then mounts it.

    PHI3_PERSISTENT_DIR names another mount point (the tests use a temporary folder).
    """
    mount = Path(env.get("PHI3_PERSISTENT_DIR") or SPACE_STORAGE)
    return mount if env.get("SPACE_ID") and mount.is_dir() else None


def _hub_cache(storage: Path | None, env: Mapping[str, str]) -> Path | None:
    """Hub downloads on the persistent storage, as Hugging Face advises (HF_HOME=/data/.huggingface),
    unless HF_HOME or HF_HUB_CACHE says otherwise: a restart then finds them there."""
    if storage is None or env.get("HF_HOME") or env.get("HF_HUB_CACHE"):
        return None
    return storage / ".huggingface" / "hub"


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


def _networks(text: str) -> tuple[str, ...]:
    """Comma-separated addresses or CIDR networks, checked: "10.0.0.0/8, ::1" -> ("10.0.0.0/8", "::1")."""
    networks = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise SystemExit(f"PHI3_TRUSTED_PROXIES: {item!r} is not an IP address or network.") from None
    return tuple(networks)


def export_trusted_proxies(proxies: Sequence[str]) -> None:
    """Tell uvicorn which peers' X-Forwarded-For to believe: these, and no others.

    Gradio builds uvicorn's Config without `forwarded_allow_ips`, so uvicorn reads
    FORWARDED_ALLOW_IPS, and its default trusts 127.0.0.1: any local process, or a proxy
    on the same machine that passes the header through unchecked, could name itself any
    address. Uvicorn then takes the right-most address not of a trusted proxy as the client.
    """
    os.environ["FORWARDED_ALLOW_IPS"] = ",".join(proxies)  # "" trusts nobody


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
