"""A Phi-3-mini-shaped benchmark model: the real model's widths, random weights, few layers.

Hidden size 3072, MLP size 8192, 32 heads and a 32064-token vocabulary, as in
Phi-3-mini, so every matrix multiply has the real shape; only the layer count
differs (default 4 of 32), which keeps it small enough to build in seconds.
The weights are random (fixed seed), so its answers are noise: it is for timing.

The tokenizer is the tiny model's, padded to 32064 ids with plain word tokens
("▁w1505" ...). Encoding never produces those (no merge leads to them), so a
text prompt has a length we can count exactly with the tokenizer; but every
id the model can emit still decodes, in transformers and in onnxruntime-genai
alike. The rows of the output layer for the special tokens are zeroed, so a
random model practically never picks the end token and every generation runs
to its requested length (the suite checks the counts).

It is built into a cache folder, never committed:

    .venv/bin/python -m benchmarks.shaped_model [--layers 4] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from wrappers.config import TINY_CHECKPOINT

CACHE = Path.home() / ".cache" / "phi3-compare"
PHI3_MINI = {
    "hidden_size": 3072,
    "intermediate_size": 8192,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "vocab_size": 32064,
}
SEED = 0


def shaped_dir(layers: int, root: Path = CACHE, dtype: str = "float32") -> Path:
    return root / (f"shaped-{layers}" if dtype == "float32" else f"shaped-{layers}-{dtype}")


def build_shaped_model(
    layers: int = 4, out_dir: Path | None = None, shape: dict | None = None, dtype: str = "float32"
) -> Path:
    """Write the checkpoint (config, safetensors, tokenizer) once; return its folder.

    `shape` overrides the Phi-3-mini widths (the tests use a narrow one). `dtype` is the
    stored precision: "bfloat16" saves like Microsoft's published checkpoint, half the bytes.
    """
    out_dir = out_dir or shaped_dir(layers, dtype=dtype)
    if (out_dir / "model.safetensors").exists():
        return out_dir
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shape = shape or PHI3_MINI
    _save_model(layers, shape, tmp, dtype)
    _save_tokenizer(shape["vocab_size"], tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)  # only a complete folder ever has the final name
    return out_dir


def _save_model(layers: int, shape: dict, out_dir: Path, dtype: str) -> None:
    import torch
    import transformers

    tiny = json.loads((TINY_CHECKPOINT / "config.json").read_text())
    config = transformers.Phi3Config(
        **{k: v for k, v in tiny.items() if k not in ("architectures", "transformers_version")}
        | shape
        | {"num_hidden_layers": layers, "dtype": dtype}
    )
    torch.manual_seed(SEED)
    # Made in its own dtype: 32 layers in float32 would take 15 GB just to be created.
    model = transformers.Phi3ForCausalLM._from_config(config, dtype=getattr(torch, dtype)).eval()
    with torch.no_grad():  # ids the tiny tokenizer treats as special: never chosen
        model.lm_head.weight[_special_ids()] = 0.0
    model.save_pretrained(out_dir)
    shutil.copy(TINY_CHECKPOINT / "generation_config.json", out_dir)


def _special_ids() -> list[int]:
    tokenizer = json.loads((TINY_CHECKPOINT / "tokenizer.json").read_text())
    return [t["id"] for t in tokenizer["added_tokens"]]


def _save_tokenizer(vocab_size: int, out_dir: Path) -> None:
    """The tiny tokenizer, its vocabulary padded with unreachable word tokens up to `vocab_size`."""
    tokenizer = json.loads((TINY_CHECKPOINT / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    # Special tokens get their ids in the model's vocabulary too: otherwise `tokenizers`
    # numbers them after the end of the (now larger) vocabulary.
    vocab.update({t["content"]: t["id"] for t in tokenizer["added_tokens"]})
    taken = set(vocab.values())
    vocab.update({f"▁w{i}": i for i in range(vocab_size) if i not in taken})
    (out_dir / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
    shutil.copy(TINY_CHECKPOINT / "tokenizer_config.json", out_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    args = parser.parse_args()
    print(build_shaped_model(args.layers, args.out, dtype=args.dtype))


if __name__ == "__main__":
    main()
