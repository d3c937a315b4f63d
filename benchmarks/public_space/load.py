"""A public Space under load: chat beside a batch, a SIGKILL under load, and a soak.

Prints the figures docs/limits-and-safety.md quotes (*Under load*). `tests/test_load.py` runs the
same scenarios, shorter, in CI.

    .venv/bin/python -m benchmarks.public_space --data-dir DIR [--users 30] [--batch-rows 100]
        [--kill-users 10] [--kill-after-s 60] [--soak-s 600]

DIR must hold a store with both tiny models registered (any app start makes one).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import mlflow
import psutil
from gradio_client import handle_file

from benchmarks.public_space.flood import flood_beside_users
from benchmarks.public_space.users import ask, batch_file, user_client
from benchmarks.served import Server, first_answer, serve
from wrappers.config import ROOT
from wrappers.registry import EXPERIMENT, use_store


def app_server(data_dir: Path, name: str):
    """The app, trusting loopback as its front proxy: each simulated user names its own address."""
    log = ROOT / "test-artifacts" / f"{name}.log"
    return serve([str(ROOT / "app.py")], log, data_dir, {"PHI3_TRUSTED_PROXIES": "127.0.0.1"})


@dataclass(frozen=True)
class BatchLoad:
    chat_seconds: list[float]
    batch_rows: int
    batch_answered: int
    batch_seconds: float
    chats_before_batch_ended: int

    def p95(self) -> float:
        return statistics.quantiles(self.chat_seconds, n=20)[-1]


def chat_beside_batch(url: str, users: int, rows: int, folder: Path) -> BatchLoad:
    """`users` people ask one question each while a `rows`-row batch runs."""
    prompts = batch_file(folder, rows)
    started = time.perf_counter()
    batch = user_client(url, users).submit(file=handle_file(str(prompts)), api_name="/batch")
    while batch.status().code.name not in ("PROCESSING", "ITERATING", "FINISHED"):
        time.sleep(0.05)
    with ThreadPoolExecutor(users) as pool:
        answered = list(pool.map(lambda u: (*ask(user_client(url, u), u), batch.done()), range(users)))
    result = batch.result(timeout=3600)
    return BatchLoad(
        [seconds for seconds, _, _ in answered],
        rows,
        len(result["records"]),
        time.perf_counter() - started,
        sum(not done for _, _, done in answered),
    )


def kill_under_load(data_dir: Path, users: int, after_s: float) -> tuple[int, int, float]:
    """Users ask until the app is SIGKILLed; after a restart, count their comparisons' traces.

    Returns (answered comparisons, those with both traces after the restart, seconds to replay).
    """
    answered: list[str] = []
    stop = threading.Event()

    def user(number: int) -> None:
        client = user_client(server.url, number)
        while not stop.is_set():
            try:
                answered.append(ask(client, number)[1])
            except Exception:  # the kill cut this request: it was never answered
                return

    with app_server(data_dir, "kill-under-load") as server:
        first_answer(server)
        threads = [threading.Thread(target=user, args=(n,)) for n in range(users)]
        for thread in threads:
            thread.start()
        time.sleep(after_s)
        os.kill(server.process.pid, signal.SIGKILL)
        stop.set()
        for thread in threads:
            thread.join(60)
    done = set(answered)
    with app_server(data_dir, "restart-after-kill") as server:
        first_answer(server)
        started = time.perf_counter()
        present = _recorded(data_dir, done, timeout=600)
        return len(done), present, time.perf_counter() - started


def _recorded(data_dir: Path, comparison_ids: set[str], timeout: float) -> int:
    """How many of the comparisons have both traces, waiting up to `timeout` for the replay."""
    from wrappers import AppConfig

    config = AppConfig(data_dir=data_dir)
    use_store(config.store_uri, config.artifact_root)
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    deadline, found = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        traces = mlflow.search_traces(
            locations=[experiment.experiment_id],
            filter_string="tags.side = 'onnx'",
            return_type="list",
            include_spans=False,
        )
        pairs = {t.info.tags.get("comparison_id") for t in traces}
        found = len(comparison_ids & pairs)
        if found == len(comparison_ids):
            break
        time.sleep(2)
    return found


def soak(server: Server, users: int, seconds: float, every_s: float = 10.0) -> list[float]:
    """Users chat for `seconds`; the server's RSS (MB) every `every_s`, from after a warm-up."""
    ask(user_client(server.url, 0), 0)
    process, samples, stop = psutil.Process(server.process.pid), [], threading.Event()

    def user(number: int) -> None:
        client = user_client(server.url, number)
        while not stop.is_set():
            ask(client, number)

    threads = [threading.Thread(target=user, args=(n,), daemon=True) for n in range(users)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(process.memory_info().rss / 2**20)
        time.sleep(every_s)
    stop.set()
    for thread in threads:
        thread.join(120)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--batch-rows", type=int, default=100)
    parser.add_argument("--flood-users", type=int, default=10, help="ordinary users beside the flooder")
    parser.add_argument("--flood-turns", type=int, default=3)
    parser.add_argument("--kill-users", type=int, default=10)
    parser.add_argument("--kill-after-s", type=float, default=60)
    parser.add_argument("--soak-s", type=float, default=600)
    parser.add_argument("--scenarios", default="batch,flood,soak,kill", help="which to run, comma-separated")
    args = parser.parse_args()
    scenarios = set(args.scenarios.split(","))
    with tempfile.TemporaryDirectory() as folder, app_server(args.data_dir, "public-space") as server:
        first_answer(server)
        ask(user_client(server.url, 0), 0)
        alone = [ask(user_client(server.url, u), u)[0] for u in range(10)]
        print(f"/compare alone: median {statistics.median(alone):.2f} s")
        if "batch" in scenarios:
            print_batch_load(
                chat_beside_batch(server.url, args.users, args.batch_rows, Path(folder)), args.users
            )
        if "flood" in scenarios:
            print_flood(flood_beside_users(server.url, args.flood_users, args.flood_turns, Path(folder)))
        if "soak" in scenarios:
            users = args.users // 3 or 1
            rss = soak(server, users, args.soak_s)
            samples = ", ".join(f"{r:.0f}" for r in rss)
            print(f"soak: {users} users for {args.soak_s:.0f} s; RSS {rss[0]:.0f} MB after warm-up,")
            print(f"  {max(rss):.0f} MB at most, {rss[-1]:.0f} MB at the end (samples: {samples})")
    if "kill" in scenarios:
        answered, present, replay_s = kill_under_load(args.data_dir, args.kill_users, args.kill_after_s)
        print(f"SIGKILL after {args.kill_after_s:.0f} s of {args.kill_users} users: {answered} answered,")
        print(f"  {present} with both traces after the restart (replayed in {replay_s:.0f} s)")


def print_batch_load(load: BatchLoad, users: int) -> None:
    p50 = statistics.median(load.chat_seconds)
    print(f"{users} users beside a {load.batch_rows}-row batch: p50 {p50:.2f} s p95 {load.p95():.2f} s")
    print(
        f"  {load.chats_before_batch_ended} of {users} answered before the batch ended;"
        f" the batch answered {load.batch_answered} rows in {load.batch_seconds:.0f} s"
    )


def print_flood(load) -> None:
    """The flood's figures: the users' waits against the bound, and what the flooder got."""
    refusal, flooder_s = sorted(s for s, _ in load.refusals), statistics.median(load.flooder_seconds)
    print(
        f"flood: {len(load.user_spans)} user requests beside one flooding address; p50 {load.p50():.2f} s,"
        f" p95 {statistics.quantiles(load.user_seconds, n=20)[-1]:.2f} s, max {max(load.user_seconds):.2f} s"
        f" (alone {load.alone_s:.2f} s)"
    )
    print(
        f"  at most {load.most_overtaken()} flooder comparisons answered while one user's waited;"
        f" flooder: {len(load.flooder_answers)} comparisons (median {flooder_s:.2f} s)"
        f" and {load.batches_answered} batches answered, {len(refusal)} refused"
        f" (median {statistics.median(refusal):.2f} s, max {refusal[-1]:.2f} s to the refusal),"
        f" {len(load.failures)} other errors"
    )


if __name__ == "__main__":
    main()
