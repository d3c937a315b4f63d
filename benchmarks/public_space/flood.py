"""One flooding client beside ordinary users: the others must keep being served.

The flooder comes from one address (`FLOODER`) with several sessions. In each, more threads
than its share keep a /compare outstanding each, re-sending as soon as one is answered or
refused, and two more threads keep a /batch each: it holds every place it may have all the
time, the worst case for everyone else. Meanwhile each ordinary user, from an address of its
own, asks its questions one after another. `python -m benchmarks.public_space --scenarios
flood` prints the figures; `tests/test_load.py` runs it short.

The bound on an ordinary user's wait, with a FIFO queue and one generation at a time: its
own comparison, one batch row (a batch yields the models between rows), the flooder's share
of the queue (`address_requests` = 8 comparisons, each up to `max_new_tokens`), and one
comparison of each other user. Counted rather than timed (the machine is shared):
`most_overtaken` is the most flooder comparisons answered while one user's was waiting.
"""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from gradio_client import Client, handle_file

from benchmarks.public_space.users import ask, batch_file, user_client
from wrappers.limits import Limits

FLOODER = {"X-Forwarded-For": "198.51.100.66"}  # every session of the flooder comes from here
REFUSED_PAUSE_S = 0.2  # a refused flooder thread tries again after this


@dataclass
class FloodLoad:
    alone_s: float  # one user's /compare with nobody else, median
    user_spans: list[tuple[float, float]] = field(default_factory=list)  # (asked, answered), perf_counter
    flooder_answers: list[float] = field(default_factory=list)  # when each flooder /compare was answered
    flooder_seconds: list[float] = field(default_factory=list)  # how long each of those took
    batches_answered: int = 0
    refusals: list[tuple[float, str]] = field(default_factory=list)  # (seconds to the refusal, message)
    failures: list[str] = field(default_factory=list)  # anything else the flooder got

    @property
    def user_seconds(self) -> list[float]:
        return [answered - asked for asked, answered in self.user_spans]

    def most_overtaken(self) -> int:
        """The most flooder comparisons answered while one user's comparison waited or ran.

        FIFO with a cap: at most the flooder's share, those queued before the user asked.
        """
        return max(
            sum(asked < t < answered for t in self.flooder_answers) for asked, answered in self.user_spans
        )

    def p50(self) -> float:
        return statistics.median(self.user_seconds)


def flood_beside_users(
    url: str, users: int, turns: int, folder: Path, sessions: int = 3, batch_rows: int = 3
) -> FloodLoad:
    """Users ask `turns` questions each while the flooder floods; returns what each side saw."""
    alone = statistics.median(ask(user_client(url, 0), 0)[0] for _ in range(3))
    load, stop = FloodLoad(alone), threading.Event()
    lock, share = threading.Lock(), Limits()
    clients = [Client(url, verbose=False, headers=FLOODER) for _ in range(sessions + 1)]
    batch = batch_file(folder, batch_rows)

    def flood(client: Client, batches: bool) -> None:
        while not stop.is_set():
            started = time.perf_counter()
            job = (
                client.submit(file=handle_file(str(batch)), api_name="/batch")
                if batches
                else client.submit(prompt="Hello there", max_tokens=32, api_name="/compare")
            )
            try:
                job.result(timeout=600)
                with lock:
                    if batches:
                        load.batches_answered += 1
                    else:
                        load.flooder_answers.append(time.perf_counter())
                        load.flooder_seconds.append(time.perf_counter() - started)
            except Exception as exc:  # a refusal arrives as the job's error
                with lock:
                    refused = "waiting or running" in str(exc)
                    (load.refusals if refused else load.failures).append(
                        (time.perf_counter() - started, str(exc))
                    )
                time.sleep(REFUSED_PAUSE_S)

    threads = [
        threading.Thread(target=flood, args=(client, False), daemon=True)
        for client in clients[:-1]
        for _ in range(share.session_requests + 1)
    ] + [threading.Thread(target=flood, args=(clients[-1], True), daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(2 * alone + 1)  # the flooder's places are taken before the users ask

    def converse(number: int) -> list[tuple[float, float]]:
        client, spans = user_client(url, number), []
        for _ in range(turns):
            asked = time.perf_counter()
            ask(client, number)
            spans.append((asked, time.perf_counter()))
        return spans

    with ThreadPoolExecutor(users) as pool:
        load.user_spans = [span for spans in pool.map(converse, range(1, users + 1)) for span in spans]
    stop.set()
    for thread in threads:
        thread.join(600)
    return load
