"""Accept or reject the ONNX packaging from a CI pipeline.

    python -m compare.accept --dataset examples/batch_prompts.csv --accept-kl 0.05

Runs the batch evaluation on the app's configured models (the same flags and environment as
`app.py`, e.g. `--data-dir`, `--preset`, `--onnx-precision`), tags the verdict on the ONNX model
version, prints the numbers, and exits 0 on accept, 1 on reject, 2 when it could not evaluate.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from compare.acceptance import Thresholds
from compare.batch import read_prompts
from compare.evaluation import Batch, dataset_label, run_batch
from wrappers import GenerationOptions, build_backends, load_config
from wrappers.errors import BackendError

ACCEPT, REJECT, FAILED = 0, 1, 2


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    defaults = Thresholds()
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="Other flags go to the app's configuration."
    )
    parser.add_argument(
        "--dataset", type=Path, required=True, help="CSV or JSONL with `prompt` (and `expected`)"
    )
    parser.add_argument(
        "--accept-kl", type=_unbounded, default=defaults.max_kl, help="max mean KL, nats/token"
    )
    parser.add_argument(
        "--accept-agreement", type=_share, default=defaults.min_agreement, help="min top-1 agreement"
    )
    parser.add_argument("--accept-accuracy", type=_share, default=defaults.min_accuracy, help="min accuracy")
    parser.add_argument("--max-tokens", type=int, default=64, help="new tokens per answer (greedy)")
    return parser.parse_known_args(argv)


def main(argv: list[str] | None = None) -> int:
    args, rest = parse(argv)
    try:
        prompts = read_prompts(args.dataset)
        config = load_config(rest)
        backends = build_backends(config, progress=lambda message: print(message, file=sys.stderr))
        for backend in backends.values():
            backend.model_ref()  # log or load now, so a failure is reported as such
        thresholds = Thresholds(args.accept_kl, args.accept_agreement, args.accept_accuracy)
        name = args.dataset.name
        batch = Batch(
            prompts,
            name,
            dataset_label(args.dataset, name),
            GenerationOptions(max_tokens=args.max_tokens),
            thresholds,
        )
        with tempfile.TemporaryDirectory(prefix="accept-") as out:
            outcome = run_batch(backends, batch, Path(out), _progress)
    except (ValueError, BackendError, OSError) as exc:
        print(f"Could not evaluate: {exc}", file=sys.stderr)
        return FAILED
    print(outcome.acceptance.summary())
    print(f"batch run {outcome.run_id}; evaluation runs {outcome.evaluation_runs}")
    return ACCEPT if outcome.acceptance.accepted else REJECT


def _progress(done: int, total: int) -> None:
    print(f"{done}/{total} prompts", file=sys.stderr, flush=True)


def _share(text: str) -> float | None:
    value = _unbounded(text)
    if value is not None and value > 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text!r}")
    return value


def _unbounded(text: str) -> float | None:
    if text.strip().lower() in ("", "none", "off"):
        return None  # not checked
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"must be a number, or 'none' to skip the check, got {text!r}"
        ) from exc
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be ≥ 0, got {text!r}")
    return value


if __name__ == "__main__":
    raise SystemExit(main())
