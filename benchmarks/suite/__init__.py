"""The engine suite: each wrapper at three depths, set against the machine's limits (docs/benchmarks.md)."""
