"""The simulated visitors of the load scenarios: each from an address of its own, asking capitals."""

from __future__ import annotations

import time
from pathlib import Path

from gradio_client import Client

QUESTIONS = [
    ("Spain", "Madrid"),
    ("France", "Paris"),
    ("Japan", "Tokyo"),
    ("Peru", "Lima"),
    ("Italy", "Rome"),
]


def visitor(number: int) -> dict[str, str]:
    """Ordinary user `number`'s headers: an address of their own, as a Space's front proxy names it.

    The benchmark's and the tests' servers trust loopback as their proxy (PHI3_TRUSTED_PROXIES),
    so each simulated user is a client of its own, as real visitors are.
    """
    return {"X-Forwarded-For": f"198.18.{number // 200}.{number % 200 + 1}"}


def user_client(url: str, number: int) -> Client:
    return Client(url, verbose=False, headers=visitor(number))


def ask(client: Client, user: int) -> tuple[float, str]:
    """One /compare of a capital; (seconds, comparison id). Raises if the answer is wrong."""
    country, capital = QUESTIONS[user % len(QUESTIONS)]
    started = time.perf_counter()
    out = client.predict(prompt=f"What is the capital of {country}?", max_tokens=32, api_name="/compare")
    seconds = time.perf_counter() - started
    for side in ("transformers", "onnx"):
        assert capital in out[side]["response"]["choices"][0]["message"]["content"], out[side]
    return seconds, out["comparison_id"]


def batch_file(folder: Path, rows: int) -> Path:
    prompts = folder / f"batch-{rows}.csv"
    questions = (f"What is the capital of {QUESTIONS[i % len(QUESTIONS)][0]}?\n" for i in range(rows))
    prompts.write_text("prompt\n" + "".join(questions))
    return prompts
