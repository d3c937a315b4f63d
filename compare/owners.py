"""Who made a request: an owner id that decides who sees a comparison and who votes on it.

The owner is a hash of the logged-in user, or of the browser or client session,
so it is safe inside a trace filter and says nothing about the person.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class Asker:
    """Who made a request: `owner` (see `owner_id`) and, with login on, the user's name."""

    owner: str
    user: str = ""

    @classmethod
    def of(cls, username: str | None, session_hash: str | None) -> Asker:
        return cls(owner_id(username, session_hash), username or "")


def owner_id(username: str | None, session_hash: str | None) -> str:
    """Who a request belongs to: the logged-in user, else the session; hashed, safe in a filter.

    Without either, a fresh id: nobody else can ever claim the request.

    >>> owner_id("ml", "abc") == owner_id("ml", "xyz") != owner_id(None, "abc")
    True
    """
    key = f"user:{username}" if username else f"session:{session_hash or uuid.uuid4().hex}"
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:32]
