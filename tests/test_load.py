"""Many users at once: every reply reaches its asker, nothing fails, memory stays flat.

Also the guards for a public server: optional login with a back-off, a bounded queue
that refuses a flood with a message, chat beside a running batch, and a SIGKILL under
load that loses no answered comparison. Longer versions: `benchmarks/public_space.py`.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
from gradio_client import Client

from benchmarks.public_space.load import chat_beside_batch, kill_under_load
from tests.conftest import app_server

USERS = 12  # the benchmark's longer runs: benchmarks/public_space.py
COUNTRIES = [
    ("Spain", "Madrid"),
    ("France", "Paris"),
    ("Japan", "Tokyo"),
    ("Germany", "Berlin"),
    ("Italy", "Rome"),
    ("Egypt", "Cairo"),
    ("Kenya", "Nairobi"),
    ("Peru", "Lima"),
    ("Canada", "Ottawa"),
    ("Russia", "Moscow"),
    ("China", "Beijing"),
    ("India", "New Delhi"),
    ("Brazil", "Bras"),
    ("Mexico", "Mexico City"),
    ("Thailand", "Bangkok"),
    ("Poland", "Warsaw"),
    ("Norway", "Oslo"),
    ("Sweden", "Stockholm"),
    ("Argentina", "Buenos Aires"),
    ("Vietnam", "Hanoi"),
    ("Iran", "Tehran"),
    ("Turkey", "Ankara"),
]


def converse(url: str, user: int) -> list[float]:
    """Three turns of one user's own conversation; returns each turn's round-trip seconds."""
    client = Client(url, verbose=False)
    questions = [COUNTRIES[user], COUNTRIES[(user + 7) % len(COUNTRIES)]]
    messages, seconds = [], []
    for country, capital in [*questions, questions[0]]:
        messages.append({"role": "user", "content": f"What is the capital of {country}?"})
        started = time.perf_counter()
        out = client.predict(messages=messages, max_tokens=32, api_name="/compare_messages")
        seconds.append(time.perf_counter() - started)
        replies = {
            side: out[side]["response"]["choices"][0]["message"]["content"]
            for side in ("transformers", "onnx")
        }
        for side, reply in replies.items():
            assert out[side]["error"] is None, out[side]["error"]
            assert capital in reply, f"user {user} asked about {country}, {side} said {reply!r}"
        messages.append({"role": "assistant", "content": replies["onnx"]})
    return seconds


def test_concurrent_users_each_get_their_own_answers(server_process):
    url, process = server_process
    server = psutil.Process(process.pid)
    converse(url, 0)  # warm-up
    rss_after_warmup = server.memory_info().rss
    with ThreadPoolExecutor(USERS) as pool:
        seconds = [s for turns in pool.map(lambda u: converse(url, u), range(USERS)) for s in turns]
    growth_mb = (server.memory_info().rss - rss_after_warmup) / 2**20
    p50, p95 = statistics.median(seconds), statistics.quantiles(seconds, n=20)[-1]
    print(
        f"\n{USERS} users x 3 turns: p50 {p50:.2f} s, p95 {p95:.2f} s, server RSS growth {growth_mb:.0f} MB"
    )
    assert len(seconds) == USERS * 3
    assert growth_mb < 150


def test_users_are_answered_while_a_batch_runs(server, tmp_path):
    users, rows = 12, 40
    load = chat_beside_batch(server, users=users, rows=rows, folder=tmp_path)
    batch_s = load.batch_seconds
    print(f"\n{users} users beside a {rows}-row batch: p95 {load.p95():.2f} s; batch {batch_s:.0f} s")
    assert len(load.chat_seconds) == users and load.batch_answered == rows
    assert load.chats_before_batch_ended == users  # chat goes first: nobody waits for the whole batch


def test_a_sigkill_under_load_loses_no_answered_comparison(store_dir, backends):
    answered, present, replay_s = kill_under_load(store_dir, users=4, after_s=8)
    print(f"\nSIGKILL under load: {present} of {answered} answered comparisons recorded ({replay_s:.0f} s)")
    assert answered > 0 and present == answered


@pytest.fixture(scope="module")
def guarded_server(store_dir, backends):
    env = {
        "PHI3_AUTH_USER": "ml",
        "PHI3_AUTH_PASSWORD": "s3cret",
        "PHI3_QUEUE_SIZE": "2",
        "PHI3_LOGIN_DELAY_S": "2",
    }
    with app_server(store_dir, "guarded-server", env, auth=("ml", "s3cret")) as (url, _):
        yield url


def test_login_is_required_when_configured(guarded_server):
    with pytest.raises(Exception):  # noqa: B017 - refused, whatever the exception type
        Client(guarded_server, verbose=False).predict(prompt="Hi", api_name="/compare")
    out = Client(guarded_server, auth=("ml", "s3cret"), verbose=False).predict(
        prompt="Hi", api_name="/compare"
    )
    assert out["onnx"]["error"] is None


def test_a_flood_beyond_the_queue_is_refused_with_a_message(guarded_server):
    client = Client(guarded_server, auth=("ml", "s3cret"), verbose=False)
    jobs = [client.submit(prompt="Hello", max_tokens=64, api_name="/compare") for _ in range(12)]
    outcomes = []
    for job in jobs:
        try:
            job.result(timeout=120)
            outcomes.append("answered")
        except Exception as exc:  # the refusal arrives as the job's error
            outcomes.append(str(exc))
    refused = [o for o in outcomes if o != "answered"]
    assert refused and "answered" in outcomes
    assert all("queue" in o.lower() for o in refused), refused


def test_failed_logins_back_off_per_client_and_a_correct_login_still_works(guarded_server):
    import httpx

    def login(user: str, password: str) -> httpx.Response:
        return httpx.post(f"{guarded_server}login", data={"username": user, "password": password}, timeout=30)

    assert login("ml ", "s3cret").status_code == 400  # names are compared exactly
    assert [login("ml", f"guess{i}").status_code for i in range(5)] == [400] * 5  # the sixth failure
    locked = login("ml", "s3cret")  # even the right password waits now
    assert locked.status_code == 429 and "Too many failed logins" in locked.json()["detail"]
    assert 1 <= int(locked.headers["retry-after"]) <= 2
    time.sleep(int(locked.headers["retry-after"]) + 0.2)
    assert login("ml", "s3cret").status_code == 200
    assert login("ml", "s3cret").status_code == 200  # a success cleared the record
