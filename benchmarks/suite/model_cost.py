"""What one token costs a checkpoint, from its shapes: weight bytes read, and FLOPs.

These are the numerators of the physical limits: a decode step must read
every weight once (the embedding table excepted: one row is looked up), and
a prefill of P tokens must do at least 2 FLOPs per weight per token, plus
the attention scores. KV-cache reads are left out; at these context lengths
they are under 2% of the weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Shape:
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int

    @classmethod
    def of(cls, checkpoint: Path) -> Shape:
        c = json.loads((checkpoint / "config.json").read_text())
        heads = c["num_attention_heads"]
        kv_heads = c.get("num_key_value_heads") or heads
        return cls(
            c["num_hidden_layers"], c["hidden_size"], c["intermediate_size"], heads, kv_heads, c["vocab_size"]
        )

    @property
    def layer_params(self) -> int:
        """Matrix weights in one decoder layer: fused QKV, output, fused gate-up, down."""
        head = self.hidden // self.heads
        qkv = self.hidden * head * (self.heads + 2 * self.kv_heads)
        return qkv + self.heads * head * self.hidden + 3 * self.hidden * self.intermediate

    @property
    def head_params(self) -> int:
        return self.hidden * self.vocab

    def prefill_flops(self, tokens: int) -> float:
        """Least work for a prompt: every layer on every token, the LM head on the last only.

        >>> Shape(1, 4, 8, 2, 2, 10).prefill_flops(3)  # 2*3*160 + 2*40 + 2*1*4*9
        1112
        """
        attention = 2 * self.layers * self.hidden * tokens**2  # QK^T and AV, causal half of 4*P^2*h
        return 2 * tokens * self.layers * self.layer_params + 2 * self.head_params + attention


def fp32_bytes_per_token(shape: Shape) -> int:
    """Bytes of fp32 weights one decode step reads (norms and one embedding row included)."""
    norms = (2 * shape.layers + 1) * shape.hidden
    return 4 * (shape.layers * shape.layer_params + shape.head_params + norms + shape.hidden)


def onnx_bytes_per_token(model_file: Path) -> int:
    """Bytes of an ONNX export's initializers, counting only one row of any Gather'ed table."""
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    graph = onnx.load(str(model_file), load_external_data=False).graph
    looked_up = {node.input[0] for node in graph.node if node.op_type == "Gather"}
    total = 0
    for tensor in graph.initializer:
        dims = list(tensor.dims) or [1]
        if tensor.name in looked_up:
            dims = dims[1:] or [1]
        count = 1
        for d in dims:
            count *= d
        total += count * tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    return total
