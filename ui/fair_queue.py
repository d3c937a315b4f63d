"""A fair share of Gradio's queue for every client, so that one visitor cannot lock out the rest.

Gradio's queue has one size for everyone (`PHI3_QUEUE_SIZE`): a client that posts fast enough
fills it, and every other visitor is told "Queue is full". `QueueShare` wraps the queue's
`push`, the step behind both `/gradio_api/queue/join` (the page, gradio_client) and
`/gradio_api/call/<name>` (curl), and refuses an event at once when its client already holds
its share of events waiting or running:

- per session (a browser tab, a gradio_client `Client`): `per_session` events;
- per address, all its sessions together: `per_address` events, of which `batches` batches.
  Opening new sessions (or calling `/call/`, which has none) does not get around it; people
  behind one shared address share `per_address` places, not one.

The address is the one the server was connected from, or the client a trusted proxy names
(uvicorn's `X-Forwarded-For` handling, set by `PHI3_TRUSTED_PROXIES`); the login throttle
reads the same one. The login is no key: the app has one shared account, so a cap per login
would lock every logged-in visitor together.

Only events that can wait count: those of a concurrency group with a limit (the models, the
batches, votes, the leaderboard). Events without a limit (the page's checks, Stop, Clear, the
start-up poll) start at once and never wait behind anyone.

In the page, an action is a chain of steps (a check with no outputs, then `.success` the step
that runs): the share is asked for the whole chain at its first step, which is refused there, so
a refusal is one toast and no output gets Gradio's Error badge; a check step holds no place, the
step after it does. A step with outputs and nothing after it (the leaderboard, History, or a
generating step refused in a race after its check passed) is ended as if it changed nothing,
with the message as an error toast. The queue's size (`PHI3_QUEUE_SIZE`) is applied here too,
to the events that wait: Gradio would refuse any event once it is full, Stop and Clear included.

A refused event never enters the queue; it ends at once with a `gr.Error` message: one toast
in the page, an error carrying the message for gradio_client; a `/call/` request (no session)
gets HTTP 400 with the message as its `detail`.

The places held are read from Gradio's own table of live events (`event_ids_to_events`, which
Gradio empties when an event completes, fails, is cancelled or its client goes away), so a
place cannot leak. Concession: this relies on the internals of `gradio.queueing.Queue` 6.31
(`push`, `max_size`, `event_ids_to_events`, `send_message`) and of the page's messages;
`tests/test_fair_queue.py` checks them over HTTP, `tests/test_mistakes_browser.py` in Chromium.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import gradio as gr
from gradio import route_utils
from gradio.blocks import BlockContext
from gradio.queueing import AsyncQueue, Event
from gradio.server_messages import LogMessage, ProcessCompletedMessage
from gradio.utils import error_payload

UNREAD_REFUSALS = 16  # a session with this many messages unread gets its refusals as HTTP errors
BUSY = "Busy"  # the title of a refusal's toast
FINISHING_S = 1.5  # how long an action may wait for the session's comparison that is ending


@dataclass(frozen=True)
class Place:
    """One event waiting or running, and whose it is."""

    session: str | None  # None: a /call/ request, which has no session
    address: str
    batch: bool
    step: int | None = None  # the function's id, so that the step after it can take its place over
    alone: bool = False  # a page's step that runs one at a time per session (`QueueShare.alone`)


@dataclass(frozen=True)
class QueueShare:
    """The per-client limits; `install` puts them in front of a Blocks' queue."""

    per_session: int = 3
    per_address: int = 8
    batches: int = 1  # per address
    batch_groups: frozenset[str] = frozenset()  # concurrency ids of batch events
    # Concurrency ids in which a page's action runs one at a time per session: the page ignores a
    # trigger of a step still running (Gradio's trigger_mode "once"), so a second Send (or Enter,
    # Retry, Regenerate) while a comparison runs is refused with words instead of silently dropped.
    alone: frozenset[str] = frozenset()

    def refusal(self, place: Place, held: list[Place]) -> str | None:
        """Why `place` is refused beside the places its client already `held`, or None.

        >>> share = QueueShare(per_session=2, per_address=3)
        >>> share.refusal(Place("s", "a", False), [Place("s", "a", False)]) is None
        True
        >>> share.refusal(Place("s", "a", False), [Place("s", "a", False)] * 2)[:22]
        'You already have 2 req'
        """
        from_address = [p for p in held if p.address == place.address]
        same_session = sum(p.session == place.session for p in held) if place.session else 0
        same_address, batches = len(from_address), sum(p.batch for p in from_address)
        wait = "wait for one to finish, then send the next"
        if place.batch and batches >= self.batches:
            return (
                f"One batch at a time per visitor ({batches} waiting or running from your address): {wait}."
            )
        if same_session >= self.per_session:
            mine = f"{same_session} requests waiting or running (at most {self.per_session})"
            return f"You already have {mine}: {wait}."
        if same_address >= self.per_address:
            return (
                f"Your address already has {same_address} requests waiting or running, from all its "
                f"sessions (at most {self.per_address}): {wait}."
            )
        return None

    def install(self, demo: gr.Blocks) -> _Gate:
        """Wrap `demo`'s queue (call after `demo.queue(...)`); returns the gate, for inspection."""
        gate = _Gate(self, demo._queue)
        demo._queue.push = gate.push
        return gate


class _Gate:
    """The wrapped `push`: counts the client's live events, refuses or lets the event in."""

    def __init__(self, share: QueueShare, queue) -> None:
        self.share, self.queue, self._push = share, queue, queue.push
        # Gradio refuses any event when its queue is full, even one that never waits (Stop, Clear, a
        # check): the gate applies the size to the events that wait, and says so before they start.
        self.max_size, queue.max_size = queue.max_size, None
        self.places: dict[str, Place] = {}  # event id -> place, for events Gradio still holds
        self._send, queue.send_message = queue.send_message, self._send_message
        self._followers: dict[int, list] | None = None  # fn id -> the steps it triggers

    async def push(self, body, request, username):
        try:
            fn = route_utils.get_fn(self.queue.blocks, None, body)
        except Exception:  # an unknown function: Gradio's own push says why
            return await self._push(body, request, username)
        waiting = [step for step in self.chain(fn) if self._waits(step)]
        if not waiting:  # Stop, Clear, the start-up poll: nothing of this action waits
            return await self._push(body, request, username)
        address = request.client.host if request.client else "unknown"
        batch = any(step.concurrency_id in self.share.batch_groups for step in waiting)
        place = Place(body.session_hash, address, batch, fn._id, self._alone(fn))
        why = (
            await self._still_running(fn, waiting, body.session_hash)
            or self.share.refusal(place, self.held(place, fn.trigger_after))
            or self._full()
        )
        if why is not None:  # refused at the action's first step: a check refuses before any output
            return await self._refuse(body, fn, request, username, why)
        if not self._waits(fn):  # a check step: it holds no place, the step after it will
            return await self._push(body, request, username)
        reserved = f"reserved-{uuid.uuid4().hex}"  # holds the place while Gradio's push awaits
        self.places[reserved] = place
        try:
            success, event_id, state = await self._push(body, request, username)
        finally:
            del self.places[reserved]
        if success:
            self.places[event_id] = place
        return success, event_id, state

    def _send_message(self, event, message):
        """Gradio's own; a place is free once its client is told the event ended. (Gradio forgets
        the event a little later, after its bookkeeping, by when the page may have sent the next.)"""
        if isinstance(message, ProcessCompletedMessage):
            self.places.pop(event._id, None)
        return self._send(event, message)

    def _alone(self, step) -> bool:
        """Whether `step` is a page's step that runs one at a time per session."""
        once = getattr(step, "trigger_mode", "once") == "once"
        return step.concurrency_id in self.share.alone and step.api_visibility != "public" and once

    async def _still_running(self, fn, waiting: list, session: str | None) -> str | None:
        """Why a page's action is refused at its first step while the session's last one still runs.

        A comparison that has shown its last update ends a moment later (Gradio runs the handler
        to its end, then tells the page): an action clicked in between waits for that, up to
        `FINISHING_S`, rather than being refused for a comparison the user sees finished.
        """
        if session is None or fn.trigger_after is not None or not any(map(self._alone, waiting)):
            return None
        deadline = time.monotonic() + FINISHING_S
        while any(p.session == session and p.alone for p in self.held()):
            if time.monotonic() > deadline:
                return "Your last comparison is still running: wait for it to finish, or click Stop first."
            await asyncio.sleep(0.02)
        return None

    def chain(self, fn) -> list:
        """`fn` and every step it triggers after it (`.success`, `.then`; not `.failure`), in order."""
        if self._followers is None:
            self._followers = {}
            for step in self.queue.blocks.fns.values():
                if step.trigger_after is not None and not step.trigger_only_on_failure:
                    self._followers.setdefault(step.trigger_after, []).append(step)
        steps, todo = [], [fn]
        while todo:
            step = todo.pop(0)
            steps.append(step)
            todo += self._followers.get(step._id, [])
        return steps

    def held(self, place: Place | None = None, before: int | None = None) -> list[Place]:
        """The places of the events still waiting or running; forgets those Gradio let go.

        A step that follows another (`before`) in the same session does not count that one's place:
        Gradio lets it go just after the page is told it ended, and the page starts the next at once.
        """
        live = self.queue.event_ids_to_events  # reservations are not in it yet
        for event_id in [e for e in self.places if e not in live and not e.startswith("reserved-")]:
            del self.places[event_id]
        held = list(self.places.values())
        previous = [p for p in held if place and p.session == place.session and p.step == before]
        if before is not None and previous:
            held.remove(previous[0])
        return held

    def _full(self) -> str | None:
        waiting = len(self.queue)
        if self.max_size is None or waiting < self.max_size:
            return None
        return (
            f"The server is busy: {waiting} requests are waiting, as many as it takes. Try again in a minute."
        )

    def _waits(self, fn) -> bool:
        group = self.queue.event_queue_per_concurrency_id.get(fn.concurrency_id)
        if group is None:
            self.queue.create_event_queue_for_fn(fn)
            group = self.queue.event_queue_per_concurrency_id[fn.concurrency_id]
        return group.concurrency_limit is not None

    async def _refuse(self, body, fn, request, username, message: str):
        """End the event at once with `message`: one toast in the page, an error for a client.

        As Gradio ends an event whose function raised gr.Error, which puts an Error badge on each
        of its outputs: fine for a step with none. A page's step that has outputs and nothing after
        it (the leaderboard, History, a generating step refused in a race) is ended instead as if
        it had changed nothing, with the message as an error toast: its outputs keep what they show.

        Gradio keeps a message until its client reads it, so a request without a session (a
        /call/ one, whose session would be a new key each time) or from a session that leaves
        its messages unread is refused as an HTTP 400 carrying the message instead: a flood of
        unread refusals must not grow the server's memory.
        """
        unread = self.queue.pending_event_ids_session.get(body.session_hash or "", ())
        if body.session_hash is None or len(unread) >= UNREAD_REFUSALS:
            return False, message, "error"
        event = Event(body.session_hash, fn, request, username)
        async with self.queue.pending_message_lock:
            if event.session_hash not in self.queue.pending_messages_per_session:
                self.queue.pending_messages_per_session[event.session_hash] = AsyncQueue()
            self.queue.pending_event_ids_session.setdefault(event.session_hash, set()).add(event._id)
        if _shows_badges(fn) and len(self.chain(fn)) == 1:
            self.queue.send_message(event, LogMessage(log=message, level="error", title=BUSY))
            unchanged = {"data": [{"__type__": "update"} for _ in fn.outputs], "is_generating": False}
            self.queue.send_message(event, ProcessCompletedMessage(output=unchanged, success=True))
        else:
            content = error_payload(gr.Error(message, title=BUSY, print_exception=False), True)
            self.queue.send_message(event, ProcessCompletedMessage(output=content, title=BUSY, success=False))
        return True, event._id, "success"


def _shows_badges(fn) -> bool:
    """Whether a page's step has an output that Gradio marks with an Error badge when the step fails.

    A State is not shown, and a layout block has no status; an API endpoint's caller must get an error.
    """
    if fn.api_visibility == "public":
        return False
    return any(not isinstance(block, (gr.State, BlockContext)) for block in fn.outputs)
