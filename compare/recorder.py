"""The recorder: every answer spooled at once, then written as a trace while the models are idle.

Every answer is first written to a durable local spool (`spool.py`) before it
is returned; a background thread turns spooled records into traces
(`traces.py`) while no model is generating (or after a short wait), since on
two cores writing during a generation slows it down. A failure to record only
produces a notice (`Recorder.notice`), never a failed chat, and the record
stays in the spool until it is written.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

from compare.endings import Ending, comparison_ending
from compare.interrupted import Lease
from compare.spool import Entry, Spool
from compare.traces import Request, export_synchronously, search, trace_payload, write_payload
from wrappers.errors import public_text

MAX_ATTEMPTS = 3  # per process; a record that keeps failing waits in the spool for the next start


class Recorded(NamedTuple):
    """A recorded comparison, as a vote needs it."""

    owner: str | None  # None: unknown, or more than one (never voted on)
    trace_ids: list[str]
    ending: Ending


class Recorder:
    """Spools every record at once, writes traces off the request path, reports trouble."""

    def __init__(self, spool_dir: Path, max_wait_s: float = 10.0) -> None:
        export_synchronously()
        self.spool = Spool(spool_dir)
        self.lease = Lease(spool_dir)  # this process's runs, and where its batches journal rows
        self.folder = spool_dir  # the app's processes on one data folder share it (see compare/ballots.py)
        self._failures: Counter[int] = Counter()  # spool entry id -> failed attempts here
        self._write_lock = threading.Lock()
        self._idle = threading.Condition()
        self._wake = threading.Event()
        self._generating = 0
        self._max_wait_s = max_wait_s
        self.notice: str | None = None
        if self.spool.replayed_up_to:
            self._wake.set()  # a crash left records: replay them
        threading.Thread(target=self._work, name="trace-recorder", daemon=True).start()

    @contextlib.contextmanager
    def generating(self):
        """Mark a generation in progress; traces wait for it to end."""
        with self._idle:
            self._generating += 1
        try:
            yield
        finally:
            with self._idle:
                self._generating -= 1
                self._idle.notify_all()

    def record(self, request: Request) -> None:
        """Put the record on disk now; the trace follows when the models are idle."""
        try:
            self.spool.put(request.comparison_id, trace_payload(request))
        except Exception as exc:  # a full or read-only disk: say so, keep chatting
            self._report(f"Recording failed, this answer is not kept ({type(exc).__name__}: {exc}).")
            return
        self._wake.set()

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every spooled record has been written, or tried at least once."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        while time.monotonic() < deadline and any(not self._failures[e.id] for e in self.spool.entries()):
            time.sleep(0.02)

    def write_spooled(self) -> None:
        """Write every spooled record now, generating or not: someone is about to read the store."""
        for entry in self.spool.entries():
            if self._failures[entry.id] < MAX_ATTEMPTS:
                self._write(entry)

    def comparison(self, comparison_id: str) -> Recorded:
        """(owner, trace ids, how it ended) of a comparison, writing its spooled records first."""
        for entry in self.spool.entries(comparison_id):
            self._write(entry)
        traces = search(f"tags.comparison_id = '{comparison_id}'", include_spans=False)
        owners = {t.info.tags.get("owner") for t in traces}
        owner = owners.pop() if len(owners) == 1 else None
        return Recorded(owner, [t.info.trace_id for t in traces], comparison_ending(t.info for t in traces))

    def _work(self) -> None:
        while True:
            self._wake.wait(timeout=5.0)  # retries failed records every few seconds
            self._wake.clear()
            with self._idle:
                waited = self._idle.wait_for(lambda: self._generating == 0, timeout=self._max_wait_s)
            for entry in self.spool.entries():
                if self._failures[entry.id] >= MAX_ATTEMPTS:
                    continue
                if waited and self._generating:  # a generation started: let it run alone
                    self._wake.set()
                    break
                self._write(entry)

    def _write(self, entry: Entry) -> None:
        with self._write_lock:
            if not self.spool.contains(entry.id):
                return  # written meanwhile (a vote writes its comparison at once)
            try:
                if entry.id > self.spool.replayed_up_to or not _already_written(entry.payload):
                    write_payload(entry.payload)
                self.spool.remove(entry.id)
                self._failures.pop(entry.id, None)
                if not self._failures:
                    self.notice = None
            except Exception as exc:  # the store is down or refuses: keep the record, keep chatting
                self._failures[entry.id] += 1
                reason = f"{type(exc).__name__}: {exc}"[:300]
                self.spool.failed(entry.id, reason)
                waiting = self.spool.count()
                self._report(
                    f"Tracing is unavailable ({reason}); {waiting} answers wait in the local spool "
                    "and will be written when the store accepts them. Chatting continues."
                )

    def _report(self, notice: str) -> None:
        if notice != self.notice:
            print(notice, file=sys.stderr, flush=True)
        self.notice = public_text(notice)  # visitors read it: no server folders


def _already_written(payload: dict[str, Any]) -> bool:
    """Whether a replayed record reached MLflow before the crash (then it is not written twice)."""
    tags = payload["tags"]
    query = f"tags.comparison_id = '{tags['comparison_id']}' and tags.side = '{tags['side']}'"
    return bool(search(query, include_spans=False))
