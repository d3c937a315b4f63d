"""Login throttling: a per-client back-off on failed logins, and exact user names.

Gradio's `/login` checks a password as fast as it is asked and strips the user
name first (so "ml " logs in as "ml"). This ASGI middleware sits in front of it:
a name with surrounding spaces is refused, and after `free_failures` failed
attempts a client (by address) must wait, twice as long after each further
failure, up to `max_delay_s`; meanwhile every attempt, even a correct one, gets
429 with a Retry-After. A success clears the client's record.

The client is its address as uvicorn hands it on: the socket peer, or, when the
peer is a proxy named in PHI3_TRUSTED_PROXIES, the right-most address in its
X-Forwarded-For that no trusted proxy added (wrappers/config.py,
export_trusted_proxies). A header from anyone else is ignored, so eight spoofed
addresses are still one client. The queue's per-client share (ui/fair_queue.py)
uses the same address. Concession: behind a proxy that is not named, all its
visitors share one back-off.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import parse_qs

MAX_CLIENTS = 10_000  # remembered at once; the oldest are forgotten first


@dataclass
class _Record:
    failures: int = 0
    locked_until: float = 0.0


class LoginThrottle:
    """ASGI middleware for POST /login; everything else passes straight through."""

    def __init__(self, app, free_failures: int = 5, base_delay_s: float = 1.0, max_delay_s: float = 300.0):
        self.app = app
        self.free_failures, self.base_delay_s, self.max_delay_s = free_failures, base_delay_s, max_delay_s
        self._clients: OrderedDict[str, _Record] = OrderedDict()
        self._lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"].rstrip("/") != "/login":
            return await self.app(scope, receive, send)
        client = (scope.get("client") or ("unknown",))[0]  # uvicorn's, after the trusted proxies
        wait = self._wait(client)
        if wait > 0:
            return await _reply(send, 429, f"Too many failed logins. Try again in {math.ceil(wait)} s.", wait)
        body = await _read_body(receive)
        username = parse_qs(body.decode("utf-8", "replace")).get("username", [""])[0]
        if username != username.strip():  # Gradio would strip it and accept "ml " as "ml"
            self._failed(client)
            return await _reply(send, 400, "Incorrect credentials.")
        status = {}

        async def watched_send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, _replay(body), watched_send)
        if status.get("code") == 200:
            with self._lock:
                self._clients.pop(client, None)
        elif status.get("code") == 400:
            self._failed(client)

    def _wait(self, client: str) -> float:
        with self._lock:
            record = self._clients.get(client)
            return record.locked_until - time.monotonic() if record else 0.0

    def _failed(self, client: str) -> None:
        with self._lock:
            record = self._clients.pop(client, None) or _Record()
            record.failures += 1
            over = record.failures - self.free_failures
            if over > 0:
                delay = min(self.base_delay_s * 2 ** (over - 1), self.max_delay_s)
                record.locked_until = time.monotonic() + delay
            self._clients[client] = record  # most recent last
            while len(self._clients) > MAX_CLIENTS:
                self._clients.popitem(last=False)


async def _read_body(receive) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes):
    sent = False

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _reply(send, status: int, detail: str, retry_after: float | None = None) -> None:
    headers = [(b"content-type", b"application/json")]
    if retry_after is not None:
        headers.append((b"retry-after", str(math.ceil(retry_after)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps({"detail": detail}).encode()})
