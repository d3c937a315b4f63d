"""Train the tiny Phi-3 chat model embedded in this project, deterministically.

Usage: python -m training [--out DIR] [--steps N]   (default out: assets/tiny-phi3)

Scope: the command line only; `training.train.build` does the work. The environment is set here,
before torch is imported, because OpenMP reads it once, when torch loads.
"""

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Idle OpenMP threads sleep instead of spinning: on a busy machine, spinning threads made each step
# ten times slower (measured). Results are the same either way.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from training.train import DEFAULT_OUT, DEFAULT_STEPS, build  # noqa: E402


def main():
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="optimizer steps")
    args = parser.parse_args()
    started = time.time()
    build(args.out, args.steps)
    print(f"saved to {args.out} in {time.time() - started:.1f}s")


if __name__ == "__main__":
    main()
