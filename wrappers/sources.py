"""Where each side's model comes from: presets, Hub ids, local folders, or a local build.

A source resolves to a local folder before anything is logged. Hub sources
try the local Hugging Face cache first, then check in seconds whether the
Hub can be reached at all, so an offline machine gets a one-line message
naming what is missing and how to fetch it, not minutes of retries. Only
the ONNX subfolder of a Hub repo is downloaded.
"""

from __future__ import annotations

import functools
import json
import math
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from wrappers.errors import ModelLoadError

TINY_CHECKPOINT = Path(__file__).resolve().parent.parent / "assets" / "tiny-phi3"
INT4_CPU = "cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4"
WEIGHTS = ("*.safetensors", "*.bin", "*.onnx", "*.onnx.data")


@dataclass(frozen=True)
class Source:
    """`kind` is "local" (a folder), "hub" (a repo id) or "build" (ONNX from side a)."""

    kind: str
    location: str = ""
    revision: str | None = None
    subfolder: str | None = None

    def __str__(self) -> str:
        if self.kind == "build":
            return "build from the transformers checkpoint"
        at = f"@{self.revision}" if self.revision else ""
        sub = f":{self.subfolder}" if self.subfolder else ""
        return f"{self.kind}:{self.location}{at}{sub}"


@dataclass(frozen=True)
class Preset:
    transformers: Source
    onnx: Source


def _hub_pair(name: str) -> Preset:
    return Preset(
        Source("hub", f"microsoft/{name}"), Source("hub", f"microsoft/{name}-onnx", subfolder=INT4_CPU)
    )


PRESETS = {
    "tiny-phi3": Preset(Source("local", str(TINY_CHECKPOINT)), Source("build")),
    "phi3-mini-4k": _hub_pair("Phi-3-mini-4k-instruct"),
    "phi3-mini-128k": _hub_pair("Phi-3-mini-128k-instruct"),
}


def parse_source(text: str, revision: str | None = None) -> Source:
    """`build`, `hub:REPO[@REV][:SUBFOLDER]`, a local folder, or a bare Hub id.

    >>> parse_source("hub:microsoft/x-onnx@main:cpu/int4")
    Source(kind='hub', location='microsoft/x-onnx', revision='main', subfolder='cpu/int4')
    >>> parse_source("build").kind
    'build'
    """
    if text == "build":
        return Source("build")
    if text.startswith("hub:"):
        repo, _, subfolder = text[4:].partition(":")
        repo, _, rev = repo.partition("@")
        return Source("hub", repo, rev or revision, subfolder or None)
    if Path(text).exists() or text.startswith((".", "/", "~")) or text.count("/") != 1:
        return Source("local", str(Path(text).expanduser().resolve()))
    return Source("hub", text, revision)


def resolve(
    source: Source, needs: str, progress: Callable[[str], None] = print, cache: Path | None = None
) -> Path:
    """The local folder holding `source`; `needs` is a file it must contain.

    `cache`: where Hub downloads go (None: huggingface_hub's own, from HF_HOME).
    """
    path = _fetch(source, progress, cache) if source.kind == "hub" else Path(source.location)
    if not path.is_dir():
        raise ModelLoadError(f"Model folder not found: {path}")
    if not (path / needs).is_file():
        raise ModelLoadError(f"{path} has no {needs}: it is not a {_what(needs)} folder.")
    return path


def _what(needs: str) -> str:
    return "onnxruntime-genai model" if needs == "genai_config.json" else "Hugging Face checkpoint"


def _fetch(source: Source, progress: Callable[[str], None], cache: Path | None) -> Path:
    from huggingface_hub import snapshot_download

    patterns = [f"{source.subfolder}/*"] if source.subfolder else None
    kwargs = {"repo_id": source.location, "revision": source.revision, "allow_patterns": patterns}
    kwargs["cache_dir"] = str(cache) if cache else None
    try:
        root = snapshot_download(**kwargs, local_files_only=True)
    except Exception:
        _require_hub(source, cache)
        what = f"{source.subfolder} of {source.location}" if source.subfolder else source.location
        progress(f"Downloading {what} from the Hugging Face Hub (first start only; progress in the terminal)")
        try:
            root = snapshot_download(**kwargs)
        except Exception as exc:
            raise ModelLoadError(f"Could not download {source}: {exc}") from exc
    return Path(root) / source.subfolder if source.subfolder else Path(root)


def _require_hub(source: Source, cache: Path | None = None) -> None:
    if (problem := _hub_unreachable()) is not None:
        fetch = f"hf download {source.location}" + (f" --cache-dir {cache}" if cache else "")
        if source.revision:
            fetch += f" --revision {source.revision}"
        if source.subfolder:
            fetch += f" --include '{source.subfolder}/*'"
        raise ModelLoadError(
            f"{source.location} is not in the local Hugging Face cache and the Hub cannot be reached "
            f"({problem}). Run `{fetch}` where there is network, or pre-log it there with --log-only "
            "into the MLflow store this app uses."
        )


@functools.cache  # asked once per process: both sides of a Hub preset fail within one timeout
def _hub_unreachable(timeout: float = 3.0) -> str | None:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    url = urlparse(constants.ENDPOINT)  # HF_ENDPOINT, for mirrors
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
    except OSError as exc:
        return f"{url.hostname}: {exc}"
    return None


def hub_commit(path: Path) -> str | None:
    """The commit of a Hub snapshot folder (…/snapshots/<sha>/…), or None for a local folder."""
    parts = path.resolve().parts
    return parts[parts.index("snapshots") + 1] if "snapshots" in parts else None


def stored_dtype(folder: Path) -> str:
    """The dtype a Hugging Face checkpoint's weights are saved in (float32 if it does not say)."""
    config = json.loads((folder / "config.json").read_text())
    return config.get("dtype") or config.get("torch_dtype") or "float32"


def parameter_count(folder: Path) -> int:
    """The checkpoint's parameters, read from its safetensors headers (no weights are loaded).

    Other formats are counted from their bytes and the stored dtype.
    """
    itemsize = {"float32": 4, "bfloat16": 2, "float16": 2}.get(stored_dtype(folder), 4)
    files = [f for pattern in WEIGHTS for f in folder.rglob(pattern)]
    return sum(_safetensors_parameters(f) or f.stat().st_size // itemsize for f in files)


def _safetensors_parameters(path: Path) -> int | None:
    """The parameters a safetensors file holds, from its header; None if it has none."""
    if path.suffix != ".safetensors":
        return None
    try:
        with path.open("rb") as f:
            header = json.loads(f.read(min(int.from_bytes(f.read(8), "little"), 100_000_000)))
        return sum(math.prod(t["shape"]) for name, t in header.items() if name != "__metadata__")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def kv_bytes_per_token(folder: Path, dtype: str = "float32") -> int:
    """Bytes of KV cache one token takes: keys and values, every layer, from the model's shape.

    Reads a checkpoint's config.json, or an onnxruntime-genai folder's genai_config.json (whose
    CPU exports keep the cache in float32, or in their own 16-bit precision).
    """
    itemsize = {"float32": 4, "bfloat16": 2, "float16": 2}[dtype]
    if (folder / "genai_config.json").is_file():
        shape = json.loads((folder / "genai_config.json").read_text())["model"]["decoder"]
        layers, kv_heads, head = shape["num_hidden_layers"], shape["num_key_value_heads"], shape["head_size"]
        itemsize = 2 if published_precision(folder) in ("fp16", "bf16") else 4
    else:
        shape = json.loads((folder / "config.json").read_text())
        layers, heads = shape["num_hidden_layers"], shape["num_attention_heads"]
        kv_heads = shape.get("num_key_value_heads") or heads
        head = shape.get("head_dim") or shape["hidden_size"] // heads
    return 2 * layers * kv_heads * head * itemsize


def weights_bytes(folder: Path) -> int:
    """Bytes of the weight files in a model folder."""
    return sum(f.stat().st_size for pattern in WEIGHTS for f in folder.rglob(pattern))


def published_precision(folder: Path) -> str:
    """The precision a published ONNX folder's name states, e.g. cpu-int4-rtn-block-32."""
    return next((p for p in ("int4", "int8", "fp16", "bf16", "fp32") if p in folder.name), "as published")
