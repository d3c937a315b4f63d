"""The server's limits: safe defaults for a public Space or a shared server, and the environment
variables that change them (docs/limits-and-safety.md, docs/configuration.md).

`load_config` (`wrappers/config.py`) builds them from the environment it is given; this module
reads no environment of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Safe defaults for a public Space or a shared server."""

    max_prompt_tokens: int = 2048
    max_new_tokens: int = 512
    request_timeout_s: float = 120.0
    concurrency: int = 1  # generations at once; both models share the CPU anyway
    queue_size: int = 32  # waiting requests beyond this are refused with a message
    session_requests: int = 3  # requests waiting or running per session (browser tab, API client)
    address_requests: int = 8  # ... per client address, all its sessions together
    address_batches: int = 1  # batches waiting or running per client address
    stream_interval_s: float = 0.05  # streams (UI and API): at most one update per interval
    max_batch_rows: int = 200  # prompts in one batch file
    batch_timeout_s: float = 900.0  # a batch stops answering after this; what it answered is kept
    max_upload_mb: float = 5.0  # uploaded files (Gradio's max_file_size)
    max_conversation_bytes: int = 2_000_000  # a conversation file (import, /replay)
    max_conversation_turns: int = 200  # turns read from a conversation file
    max_comment_chars: int = 2000  # a vote's comment
    login_free_failures: int = 5  # failed logins per client before the back-off starts
    login_delay_s: float = 1.0  # the first back-off; it doubles with each further failure, to 5 min
    votes_per_voter: int = 20  # votes (changed ones too) one voter may cast in vote_window_s
    vote_window_s: float = 600.0


def limits_from(env: Mapping[str, str]) -> Limits:
    """The limits an environment sets: each PHI3_ variable that is set, else the default."""
    defaults = Limits()
    return Limits(
        max_prompt_tokens=int(env.get("PHI3_MAX_PROMPT_TOKENS", defaults.max_prompt_tokens)),
        max_new_tokens=int(env.get("PHI3_MAX_NEW_TOKENS", defaults.max_new_tokens)),
        request_timeout_s=float(env.get("PHI3_REQUEST_TIMEOUT_S", defaults.request_timeout_s)),
        concurrency=int(env.get("PHI3_CONCURRENCY", defaults.concurrency)),
        queue_size=int(env.get("PHI3_QUEUE_SIZE", defaults.queue_size)),
        session_requests=int(env.get("PHI3_SESSION_REQUESTS", defaults.session_requests)),
        address_requests=int(env.get("PHI3_ADDRESS_REQUESTS", defaults.address_requests)),
        address_batches=int(env.get("PHI3_ADDRESS_BATCHES", defaults.address_batches)),
        stream_interval_s=float(env.get("PHI3_STREAM_INTERVAL_S", defaults.stream_interval_s)),
        max_batch_rows=int(env.get("PHI3_MAX_BATCH_ROWS", defaults.max_batch_rows)),
        batch_timeout_s=float(env.get("PHI3_BATCH_TIMEOUT_S", defaults.batch_timeout_s)),
        max_upload_mb=float(env.get("PHI3_MAX_UPLOAD_MB", defaults.max_upload_mb)),
        login_free_failures=int(env.get("PHI3_LOGIN_FREE_FAILURES", defaults.login_free_failures)),
        login_delay_s=float(env.get("PHI3_LOGIN_DELAY_S", defaults.login_delay_s)),
        votes_per_voter=int(env.get("PHI3_VOTES_PER_VOTER", defaults.votes_per_voter)),
        vote_window_s=float(env.get("PHI3_VOTE_WINDOW_S", defaults.vote_window_s)),
    )
