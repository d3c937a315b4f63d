"""Many users at once: every reply reaches its asker, nothing fails, memory stays flat.

Also the guards for a public server: optional login with a back-off, a bounded queue
that refuses a flood with a message, chat beside a running batch, and a SIGKILL under
load that loses no answered comparison. Longer versions: `benchmarks/public_space/load.py`.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
from gradio_client import Client

from benchmarks.public_space.flood import flood_beside_users
from benchmarks.public_space.load import chat_beside_batch, kill_under_load
from benchmarks.public_space.users import user_client
from tests.conftest import app_server
from wrappers.limits import Limits

USERS = 12  # the benchmark's longer runs: benchmarks/public_space/load.py
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
    client = user_client(url, user)  # each user from an address of its own, as on a Space
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


def test_a_flooding_client_leaves_the_others_served(server, tmp_path):
    """One address floods /compare from two sessions and /batch, re-sending at once; two users ask.

    The stated bound: while one user's comparison waits, at most the flooder's share of the
    queue (8 requests) is answered before it, plus one at the boundary of the count.
    """
    load = flood_beside_users(server, users=2, turns=2, folder=tmp_path, sessions=2)
    refusal_s = statistics.median(s for s, _ in load.refusals)
    print(
        f"\nflood: users p50 {load.p50():.2f} s (alone {load.alone_s:.2f} s); most flooder answers ahead"
        f" {load.most_overtaken()}; flooder answered {len(load.flooder_answers)}, refused"
        f" {len(load.refusals)} (median {refusal_s:.2f} s)"
    )
    assert len(load.user_seconds) == 4 and not load.failures, load.failures
    assert load.most_overtaken() <= Limits().address_requests + 1
    assert refusal_s < statistics.median(load.flooder_seconds)  # refused at once, not after waiting


def test_a_sigkill_under_load_loses_no_answered_comparison(store_dir, backends):
    answered, present, replay_s = kill_under_load(store_dir, users=4, after_s=8)
    print(f"\nSIGKILL under load: {present} of {answered} answered comparisons recorded ({replay_s:.0f} s)")
    assert answered > 0 and present == answered


@pytest.fixture(scope="module")
def guarded_server(store_dir, backends):
    env = {
        "PHI3_TRUSTED_PROXIES": "127.0.0.2",  # its proxy; 127.0.0.1, which uvicorn trusted by default, is not
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
    """Seven visitors from one address, each within its share, against a queue of 2: the queue's own limit."""
    visitors = [Client(guarded_server, auth=("ml", "s3cret"), verbose=False) for _ in range(7)]
    jobs = [client.submit(prompt="Hello", max_tokens=64, api_name="/compare") for client in visitors]
    outcomes = []
    for job in jobs:
        try:
            job.result(timeout=120)
            outcomes.append("answered")
        except Exception as exc:  # the refusal arrives as the job's error
            outcomes.append(str(exc))
    refused = [o for o in outcomes if o != "answered"]
    assert refused and "answered" in outcomes
    assert all(o.startswith("The server is busy: 2 requests are waiting") for o in refused), refused


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


def _login_from(url: str, peer: str, forwarded: str, password: str) -> int:
    """POST /login from the loopback address `peer`, naming `forwarded` in X-Forwarded-For."""
    import httpx

    with httpx.Client(transport=httpx.HTTPTransport(local_address=peer), timeout=30) as http:
        data = {"username": "ml", "password": password}
        return http.post(f"{url}login", data=data, headers={"X-Forwarded-For": forwarded}).status_code


def test_a_forwarded_for_header_does_not_dodge_the_login_throttle(guarded_server):
    """From a peer that is not a named proxy (even loopback), X-Forwarded-For is ignored; from the
    named proxy, the right-most address it did not add is the client, so a spoofed prefix changes nothing."""
    wrong = [_login_from(guarded_server, "127.0.0.1", f"198.51.100.{n}", "guess") for n in range(6)]
    assert wrong == [400] * 6
    assert _login_from(guarded_server, "127.0.0.1", "198.51.100.99", "s3cret") == 429  # still locked out
    via_proxy = [
        _login_from(guarded_server, "127.0.0.2", f"198.51.100.{n}, 192.0.2.9", "guess") for n in range(6)
    ]
    assert via_proxy == [400] * 6
    assert _login_from(guarded_server, "127.0.0.2", "203.0.113.1, 192.0.2.9", "s3cret") == 429
    assert _login_from(guarded_server, "127.0.0.2", "192.0.2.10", "s3cret") == 200  # another visitor
