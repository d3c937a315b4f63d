"""Each client's share of the queue (ui/fair_queue.py), over real HTTP on the real app server.

The server trusts loopback (127.0.0.1) as its front proxy, so each test names the visitor's
address in X-Forwarded-For; 127.0.0.2 is a peer it does not trust. Default limits: 3 requests
waiting or running per session, 8 per address, 1 batch per address.
"""

from __future__ import annotations

import contextlib
import time

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.client import Job
from gradio_client.utils import Status
from playwright.sync_api import expect

from benchmarks.public_space.users import batch_file
from tests.test_browser import browser_page
from wrappers import load_config

SESSION_FULL = "You already have 3 requests waiting or running (at most 3)"
ADDRESS_FULL = "Your address already has 8 requests waiting or running, from all its sessions (at most 8)"
BATCH_FULL = "One batch at a time per visitor"
# A request that holds its place for a while: the tiny model's answers are short, so its fidelity
# scoring (a few tenths of a second) is what keeps it busy; 64 tokens pass the time budget anywhere.
LONG = {"prompt": "Tell me about Spain.", "max_tokens": 64, "fidelity": True}


def visitor_client(url: str, address: str) -> Client:
    return Client(url, verbose=False, headers={"X-Forwarded-For": address})


def submit(client: Client, **kwargs) -> Job:
    """client.submit, the job stamped with the moment it ends (`ended_at`, perf_counter)."""
    job = client.submit(**kwargs)
    job.add_done_callback(lambda _, job=job: setattr(job, "ended_at", time.perf_counter()))
    return job


def joined(jobs: list[Job], timeout: float = 60) -> None:
    """Wait until every job is in the queue (or past it): submit() joins from a thread of its own,
    so jobs submitted one after another may otherwise join in any order."""
    before = {Status.STARTING, Status.JOINING_QUEUE}
    deadline = time.monotonic() + timeout
    while any(job.status().code in before for job in jobs):
        assert time.monotonic() < deadline, [job.status().code for job in jobs]
        time.sleep(0.05)


def outcomes(jobs: list[Job]) -> list[tuple[str, float]]:
    """("answered" or the error's message, when it ended) per job."""
    seen = []
    for job in jobs:
        try:
            job.result(timeout=300)
            outcome = "answered"
        except Exception as exc:
            outcome = str(exc)
        seen.append((outcome, getattr(job, "ended_at", time.perf_counter())))
    return seen


def test_a_session_gets_three_places_and_is_refused_at_once_beyond(server):
    client = visitor_client(server, "203.0.113.10")
    jobs = [submit(client, prompt="Hello", max_tokens=48, api_name="/compare") for _ in range(5)]
    seen = outcomes(jobs)
    answered = [t for outcome, t in seen if outcome == "answered"]
    refused = [(o, t) for o, t in seen if o != "answered"]
    assert len(answered) == 3, seen
    assert [o for o, _ in refused] == [o for o, _ in refused if o.startswith(SESSION_FULL)] and len(
        refused
    ) == 2
    assert max(t for _, t in refused) < max(answered)  # refused without waiting behind the others
    # the places are free again once answered: nothing leaked
    assert all(
        o == "answered" for o, _ in outcomes([client.submit(prompt="Hi", max_tokens=4, api_name="/compare")])
    )


def test_failed_requests_free_their_places(server):
    client = visitor_client(server, "203.0.113.15")
    failed = [submit(client, prompt="Hi", temperature=-1.0, api_name="/compare") for _ in range(3)]
    assert all("temperature" in o for o, _ in outcomes(failed))
    later = [submit(client, prompt="Hi", max_tokens=4, fidelity=False, api_name="/compare") for _ in range(3)]
    assert [o for o, _ in outcomes(later)] == ["answered"] * 3


def test_new_sessions_from_one_address_share_its_eight_places(server):
    sessions = [visitor_client(server, "203.0.113.20") for _ in range(4)]
    jobs = [
        s.submit(prompt="Hello", max_tokens=32, fidelity=False, api_name="/compare")
        for s in sessions
        for _ in range(3)
    ]
    other = visitor_client(server, "203.0.113.21").submit(prompt="Hi", max_tokens=4, api_name="/compare")
    seen = [o for o, _ in outcomes(jobs)]
    assert seen.count("answered") == 8, seen
    assert all(o.startswith(ADDRESS_FULL) for o in seen if o != "answered")
    assert outcomes([other])[0][0] == "answered"  # another address is not held up by the first one's limit


def test_one_batch_at_a_time_per_address(server, tmp_path):
    prompts = handle_file(str(batch_file(tmp_path, 2)))
    client = visitor_client(server, "203.0.113.30")
    seen = sorted(o for o, _ in outcomes([client.submit(file=prompts, api_name="/batch") for _ in range(2)]))
    assert seen[0].startswith(BATCH_FULL) and seen[1] == "answered", seen


def test_cancelled_requests_free_their_places(server):
    client = visitor_client(server, "203.0.113.40")
    # Submitted back to back, as the first test does: one runs, two wait (the tiny model's answers are
    # short, so a pause here would let all three end on their own before they are cancelled).
    ahead = [visitor_client(server, "203.0.113.41") for _ in range(3)]  # so that the three wait in the queue
    waiting = [ahead[i % 3].submit(api_name="/compare", **LONG) for i in range(8)]
    jobs = [client.submit(api_name="/compare", **LONG) for _ in range(3)]
    joined(jobs)  # the three hold the session's places before the fourth asks for one
    fourth = client.submit(prompt="Hi", max_tokens=4, api_name="/compare")
    assert outcomes([fourth])[0][0].startswith(SESSION_FULL)  # before the cancels can free a place
    for job in jobs:
        job.cancel()
    outcomes(waiting)
    deadline, seen = time.monotonic() + 30, []
    while time.monotonic() < deadline:  # a running one is let go once its task has stopped
        seen = [
            o
            for o, _ in outcomes(
                [client.submit(prompt="Hi", max_tokens=4, fidelity=False, api_name="/compare")]
            )
        ]
        if seen == ["answered"]:
            break
        time.sleep(1)
    assert seen == ["answered"]
    later = [client.submit(prompt="Hi", max_tokens=4, fidelity=False, api_name="/compare") for _ in range(3)]
    assert [o for o, _ in outcomes(later)] == ["answered"] * 3  # all three places are free


def _call(http: httpx.Client, url: str, address: str, prompt: str = LONG["prompt"]) -> httpx.Response:
    """POST /gradio_api/call/compare (no session) as the visitor `address` names."""
    data = [prompt, "", 64, 0.0, 1.0, "", False]
    return http.post(
        f"{url}gradio_api/call/compare", json={"data": data}, headers={"X-Forwarded-For": address}
    )


def _leave(http: httpx.Client, url: str, posted: list[httpx.Response]) -> None:
    """Open each accepted request's stream and go away: its client is gone."""
    for response in posted:
        if response.status_code == 200:
            with http.stream("GET", f"{url}gradio_api/call/compare/{response.json()['event_id']}") as stream:
                next(stream.iter_lines())


def _first_event(http: httpx.Client, url: str, event_id: str) -> str | None:
    """The first event of a /call/ stream other than a heartbeat: generating, complete or error."""
    with http.stream("GET", f"{url}gradio_api/call/compare/{event_id}") as stream:
        for line in stream.iter_lines():
            if line.startswith("event:") and line.split(":", 1)[1].strip() != "heartbeat":
                return line.split(":", 1)[1].strip()
    return None


@contextlib.contextmanager
def peer(address: str):
    """An HTTP client whose connections come from `address` (a loopback address of this machine)."""
    with httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=120) as http:
        yield http


def test_a_call_beyond_the_share_gets_http_400_with_the_message_and_leaving_frees_the_places(server):
    with peer("127.0.0.1") as http:
        posted = [_call(http, server, "203.0.113.50") for _ in range(9)]
        assert [r.status_code for r in posted] == [200] * 8 + [400]
        assert posted[-1].json()["detail"].startswith(ADDRESS_FULL)
        _leave(http, server, posted)
        deadline, again = time.monotonic() + 60, None
        while time.monotonic() < deadline:  # Gradio notices a closed stream at its next message
            again = _call(http, server, "203.0.113.50", "Hi")
            if again.status_code == 200:
                break
            time.sleep(2)
        assert again.status_code == 200, again.text
        assert _first_event(http, server, again.json()["event_id"]) in ("generating", "complete")


def test_forwarded_addresses_count_only_from_a_trusted_proxy(server):
    """From an untrusted peer, any X-Forwarded-For is ignored: ten "addresses" are one, with 8 places.

    From the trusted proxy, the right-most address it did not add is the client: a spoofed prefix is not.
    """
    for peer_address, named in [("127.0.0.2", "198.51.100.{n}"), ("127.0.0.1", "198.51.100.{n}, 192.0.2.77")]:
        with peer(peer_address) as http:
            posted = [_call(http, server, named.format(n=n)) for n in range(10)]
            _leave(http, server, posted)
        assert [r.status_code for r in posted] == [200] * 8 + [400] * 2, peer_address
        assert all(r.json()["detail"].startswith(ADDRESS_FULL) for r in posted[8:])


def test_the_page_shows_a_refusal_as_one_toast(server):
    """The browser's address (loopback, no header) is full: Send answers with one toast, at once.

    The tiny model answers in tenths of a second, so the address is filled behind another visitor's
    eight requests, and the fill is tried again if the eight all ended before the click arrived.
    """
    with browser_page(server, 900) as page:
        expect(page.locator("#send")).to_have_text("Send", timeout=60_000)
        same_address = [Client(server, verbose=False) for _ in range(3)]  # the browser's address
        ahead = [visitor_client(server, "203.0.113.50") for _ in range(3)]
        toast = page.locator(".toast-body").filter(has_text="Your address already has 8 requests")
        for _ in range(3):
            page.locator("#prompt textarea").fill("What is the capital of Spain?")
            jobs = [ahead[i % 3].submit(api_name="/compare", **LONG) for i in range(8)]
            jobs += [same_address[i % 3].submit(api_name="/compare", **LONG) for i in range(8)]
            joined(jobs)
            page.locator("#send").click()  # at once: the eight are still waiting
            try:
                expect(toast).to_have_count(1, timeout=5_000)
                break
            except AssertionError:
                outcomes(jobs)  # all ended before the click: fill the address again
        expect(toast).to_have_count(1)
        for job in jobs:
            job.cancel()


def test_trusted_proxies_are_checked_and_a_space_trusts_its_own_front_proxy():
    assert load_config([], env={}).trusted_proxies == ()  # nobody's X-Forwarded-For is believed
    on_space = load_config([], env={"SPACE_ID": "someone/phi3"}).trusted_proxies
    assert on_space == ("10.0.0.0/8", "127.0.0.1/32", "::1/128")
    with pytest.raises(SystemExit, match="'proxy.local' is not an IP address or network"):
        load_config([], env={"PHI3_TRUSTED_PROXIES": "10.1.2.3, proxy.local"})


def test_a_cancelled_replay_stops_at_its_next_turn(server, config):
    """A replay is a stream: a client that cancels (or leaves) stops it, where it used to run every
    turn to the end, holding the models for nobody."""
    from tests.test_fuzz import settled_traces
    from tests.test_mistakes_browser import long_replay

    before = settled_traces(config.data_dir)
    job = visitor_client(server, "203.0.113.60").submit(conversation=long_replay(200), api_name="/replay")
    deadline = time.monotonic() + 120
    while not job.outputs():  # its first turn is answered
        assert time.monotonic() < deadline and not job.done(), job.status()
        time.sleep(0.05)
    job.cancel()
    time.sleep(2)
    stopped = settled_traces(config.data_dir)
    time.sleep(4)
    assert settled_traces(config.data_dir) == stopped  # nothing more is answered
    assert stopped - before < 2 * 200  # well short of the 200 turns (two traces a turn)
