"""Every public endpoint, fuzzed over a real server: random JSON, wrong types, sizes, nesting, Unicode.

Each call must end in an answer or a clear error (the schema's words, never Python's
"object has no attribute"); the app stays up, its log gets no traceback, and the store
grows only by the comparisons that really answered. Hypothesis is derandomized, and the
examples per endpoint are few, so the module runs in about a minute.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import ARTIFACTS, worker_name

PYTHON_TALK = re.compile(
    r"object has no attribute|not subscriptable|Traceback|recursion|unsupported operand|NoneType|"
    r"KeyError|TypeError|AttributeError|IndexError|int too large|could not convert|unhashable|"
    r"object is not|object at 0x|invalid literal|not iterable|ValidationError",
)
SPAIN = "What is the capital of Spain?"
SETTINGS = [2, 0.0, 1.0, ""]  # max_tokens, temperature, top_p, stop: short answers
HEX = "0" * 32
VALID = {  # one valid call per endpoint; the fuzz changes it
    "compare": [SPAIN, "", *SETTINGS, False],
    "compare_messages": [[{"role": "user", "content": SPAIN}], *SETTINGS, False],
    "chat_transformers": [SPAIN, "", *SETTINGS],
    "chat_onnx": [SPAIN, "", *SETTINGS],
    "arena": [SPAIN, "", *SETTINGS],
    "vote": [HEX, "tie", ""],
    "arena_vote": [HEX, "a", ""],
    "replay": ["{}"],
    "batch": [None, 1.0, 0.5, None],
    "leaderboard": [],
}
TRACES = {"compare": 2, "compare_messages": 2, "chat_transformers": 1, "chat_onnx": 1, "arena": 2}
EXAMPLES = 10  # per endpoint; /leaderboard takes no input, and each call fits a bootstrap
FEWER = {"leaderboard": 2}

HOSTILE_VALUES = [
    None,
    True,
    -1,
    0,
    -5,
    10**400,
    1e308,
    -0.0,
    "",
    " ",
    "\u0000",
    "💥" * 3,
    "<img src=x>",
    "\ud7ff\ufeff\u202e",
    [],
    {},
    [[[]]],
    {"a": {"b": 1}},
    [1, 2],
    "a\n" * 1000,
]
scalars = (
    st.sampled_from(HOSTILE_VALUES)
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.builds(lambda c, n: c * n, st.characters(codec="utf-8"), st.integers(5_000, 40_000))
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)


@st.composite
def calls(draw, api: str):
    """The endpoint's valid data with one or more values replaced, or random data of any shape."""
    data = list(VALID[api])
    if draw(st.integers(0, 5)) == 0 or not data:
        return draw(st.lists(json_values, max_size=8))
    for _ in range(draw(st.integers(1, 2))):
        data[draw(st.integers(0, len(data) - 1))] = draw(json_values)
    return data


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


HOSTILE = [  # the issue's own cases, as raw request bodies
    ("replay", json.dumps({"data": [nested(100_000)]})),
    (
        "replay",
        json.dumps({"data": ['{"format": "phi3-mlflow-compare/conversation", "x": ' + nested(5000) + "}"]}),
    ),
    ("compare", '{"data": ["Hi", "", 8, ' + "9" * 400 + ', 1.0, "", false]}'),
    ("compare", '{"data": ["Hi", "", 8, NaN, 1.0, "", false]}'),
    ("compare", '{"data": ' + nested(50_000) + "}"),
    ("compare_messages", '{"data": [' + nested(3000) + ', 8, 0, 1, "", false]}'),
    ("vote", '{"data": [{"a": ' * 2000 + "1" + "}" * 2000 + ', "tie", ""]}'),
    ("leaderboard", '{"data": [1, 2, 3]}'),
]


@pytest.fixture(scope="module")
def watched(server, config):
    """The server's log from here on, and the store's trace count once the spool is empty."""
    log = ARTIFACTS / f"{worker_name('server')}.log"
    start = log.stat().st_size
    counts = {"traces": settled_traces(config.data_dir), "expected": 0}
    yield counts
    settle_until(config.data_dir, counts["traces"] + counts["expected"])
    assert settled_traces(config.data_dir) == counts["traces"] + counts["expected"]
    assert "Traceback" not in log.read_text(errors="replace")[start:], "see the server log"


def call(url: str, api: str, body: str) -> tuple[int, str]:
    """POST a raw body and read its stream; (HTTP status, the last event's error text or "")."""
    posted = httpx.post(
        f"{url}gradio_api/call/{api}",
        content=body.encode(),
        timeout=120,
        headers={"Content-Type": "application/json"},
    )
    if posted.status_code != 200:
        return posted.status_code, posted.text
    event, data = None, None
    with httpx.stream("GET", f"{url}gradio_api/call/{api}/{posted.json()['event_id']}", timeout=120) as r:
        for line in r.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data = json.loads(line.split(":", 1)[1])
    if event == "error":
        message = data.get("error") if isinstance(data, dict) else data
        assert isinstance(message, str) and message.strip(), f"/{api}: an error without a reason: {data!r}"
        return 200, message
    assert event == "complete", f"/{api}: the stream ended with {event!r}"
    return 200, ""


def judged(url: str, api: str, body: str, counts: dict) -> str:
    status, error = call(url, api, body)
    assert status < 500, f"/{api}: HTTP {status}: {error[:300]}"
    assert not PYTHON_TALK.search(error), f"/{api} answered with Python's words: {error[:300]}"
    if status == 200 and not error:
        counts["expected"] += TRACES.get(api, 0)
    return error


@pytest.mark.parametrize("api", list(VALID))
def test_random_input_gets_an_answer_or_a_clear_error(server, watched, api):
    @settings(
        max_examples=FEWER.get(api, EXAMPLES),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=calls(api))
    @example(data=list(VALID[api]))
    def one(data):
        judged(server, api, json.dumps({"data": data}), watched)

    one()


@pytest.mark.parametrize(("api", "body"), HOSTILE, ids=[f"{api}-{i}" for i, (api, _) in enumerate(HOSTILE)])
def test_the_issues_hostile_bodies_get_a_clear_error(server, watched, api, body):
    error = judged(server, api, body, watched)
    assert error or api == "leaderboard" and not error


def test_the_app_still_answers_after_the_fuzz(server, watched):
    assert judged(server, "compare", json.dumps({"data": VALID["compare"]}), watched) == ""


def settled_traces(data_dir: Path) -> int:
    """Traces in the store once the spool has written everything it holds."""
    deadline = time.monotonic() + 60
    while pending(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    with sqlite3.connect(data_dir / "mlflow.db") as db:
        return db.execute("SELECT count(*) FROM trace_info").fetchone()[0]


def settle_until(data_dir: Path, expected: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while settled_traces(data_dir) < expected and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1)  # anything more would be a record nobody asked for


def pending(data_dir: Path) -> int:
    total = 0
    for spool in (data_dir / "spool.sqlite").glob("[0-9]*.sqlite"):  # the spool's slots, not the ballot box
        with sqlite3.connect(spool) as db:
            total += db.execute("SELECT count(*) FROM pending").fetchone()[0]
    return total
