"""A conversation exported as JSON, read back with clear refusals, and replayed against the current models."""

from __future__ import annotations

import json
import re

import pytest
from gradio_client import Client

from compare.conversation import MAX_BYTES, ConversationError, read_conversation, turns_of
from compare.service import Comparer, new_comparison_id
from compare.turns import ERROR, OK, Answer, Turn, messages_for
from tests.conftest import patient_limits
from ui import formatting as fmt
from ui.api import SIDES
from ui.conversation_io import conversation_turns, export_file
from ui.replay import replay_rows
from wrappers import GenerationOptions

PROMPTS = ("What is the capital of Spain?", "What is 7 plus 5?")


@pytest.fixture(scope="module")
def comparer(backends):
    return Comparer(backends, patient_limits(), recorder=None, fidelity=False)


OPTIONS = GenerationOptions(max_tokens=24)


def chat(comparer: Comparer, prompts=PROMPTS, system: str = "", options=OPTIONS) -> list[Turn]:
    """Answer the prompts in turn as the Chat tab does; return its turns."""
    turns = []
    for prompt in prompts:
        conversations = {side: messages_for(turns, side, system, prompt) for side in SIDES}
        *_, last = comparer.compare(conversations, options, new_comparison_id())
        turns.append(Turn(prompt).answered(last))
    return turns


@pytest.fixture(scope="module")
def exported(comparer, tmp_path_factory) -> dict:
    turns = chat(comparer, system="Be brief.")
    path = export_file(comparer, turns, "Be brief.", 24, 0.0, 1.0, "")
    return json.loads(open(path, encoding="utf-8").read())


def test_an_export_holds_settings_both_answers_figures_and_model_versions(exported):
    assert exported["settings"] == {
        "system_prompt": "Be brief.",
        "max_tokens": 24,
        "temperature": 0.0,
        "top_p": 1.0,
        "stop": [],
    }
    assert [turn["prompt"] for turn in exported["turns"]] == list(PROMPTS)
    first, second = exported["turns"]
    for side in SIDES:
        assert "Madrid" in first["answers"][side]["text"] and "12" in second["answers"][side]["text"]
        for turn in exported["turns"]:
            answer = turn["answers"][side]
            assert answer["usage"]["completion_tokens"] > 0 and answer["latency"]["total_s"] > 0
            assert answer["model"]["name"].startswith("tiny-phi3")
    assert exported["models"]["transformers"]["name"] == "tiny-phi3-transformers"
    assert exported["models"]["onnx"]["version"] == "1"


def test_an_export_reads_back_into_the_same_panes(exported):
    content = read_conversation(json.dumps(exported))
    turns = turns_of(content)
    onnx = fmt.chat_messages(turns, "onnx")
    assert [m["content"] for m in onnx if m["role"] == "user"] == list(PROMPTS)
    assert turns[0].answers["transformers"].text == exported["turns"][0]["answers"]["transformers"]["text"]
    assert [turn.status for turn in turns] == [OK, OK]


def test_an_imported_answer_with_an_error_is_shown_but_not_sent_again(exported):
    failed = json.loads(json.dumps(exported))
    failed["turns"][0]["answers"]["onnx"]["error"] = "model crashed"
    turns = turns_of(read_conversation(json.dumps(failed)))
    assert turns[0].status == ERROR and turns[0].answers["onnx"].error == "model crashed"
    assert "model crashed" in fmt.chat_messages(turns, "onnx")[1]["content"]
    sent = messages_for(turns, "onnx", "", "Next?")
    assert [m["content"] for m in sent] == [PROMPTS[1], turns[1].answers["onnx"].text, "Next?"]


def test_a_replay_against_the_current_models_gives_the_recorded_greedy_answers(comparer, exported):
    *_, rows = replay_rows(comparer, read_conversation(json.dumps(exported)))
    assert [(row["turn"], row["side"]) for row in rows] == [
        (1, "transformers"),
        (1, "onnx"),
        (2, "transformers"),
        (2, "onnx"),
    ]
    assert all(row["same"] == "yes" for row in rows), rows
    assert all(row["replayed_tokens_per_s"] is None or row["replayed_tokens_per_s"] > 0 for row in rows)


def test_a_replay_says_which_answers_changed(comparer, exported):
    changed = json.loads(json.dumps(exported))
    changed["turns"][0]["answers"]["onnx"]["text"] = "The capital of Spain is Paris."
    *_, rows = replay_rows(comparer, read_conversation(json.dumps(changed)))
    by_key = {(row["turn"], row["side"]): row["same"] for row in rows}
    assert by_key[(1, "onnx")] == "no: from word 6"
    assert by_key[(1, "transformers")] == "yes"


def test_an_answer_not_measured_here_is_exported_without_figures(comparer):
    typed = [Turn("Hi", {side: Answer("typed") for side in SIDES})]
    (turn,) = conversation_turns(comparer, typed, "")
    assert turn["answers"]["onnx"] == {
        "text": "typed",
        "usage": None,
        "latency": None,
        "model": None,
        "error": None,
    }


def good() -> dict:
    answer = {"text": "Madrid.", "usage": None, "latency": None, "model": None, "error": None}
    return {
        "format": "phi3-mlflow-compare/conversation",
        "version": 1,
        "settings": {"system_prompt": "", "max_tokens": 16, "temperature": 0, "top_p": 1.0, "stop": []},
        "models": {},
        "turns": [{"prompt": "Capital of Spain?", "answers": {"transformers": answer, "onnx": dict(answer)}}],
    }


def broken(change) -> str:
    content = good()
    change(content)
    return json.dumps(content)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{not json", "The file is not JSON"),
        (json.dumps([1, 2]), "not a conversation exported by this app"),
        (broken(lambda c: c.update(version=7)), "version must be 1, the only version known here, got 7."),
        (
            broken(lambda c: c["settings"].update(top_p="x")),
            'settings.top_p must be a number above 0 and at most 1, got "x".',
        ),
        (
            broken(lambda c: c["settings"].update(max_tokens="16")),
            'settings.max_tokens must be a whole number from 1 to 512, got "16".',
        ),
        (
            broken(lambda c: c["settings"].update(stop=[1])),
            r"settings.stop\[0\] must be text with at most 16 stop sequences",
        ),
        (broken(lambda c: c.update(turns=[])), "turns must be a list of 1 to 200 turns"),
        (
            broken(lambda c: c["turns"][0].update(prompt=" ")),
            r"turns\[0\].prompt must be text that is not blank",
        ),
        (broken(lambda c: c["turns"][0]["answers"].pop("onnx")), r"turns\[0\].answers.onnx is missing"),
        (
            broken(lambda c: c["turns"][0]["answers"]["onnx"].update(text=5)),
            r"turns\[0\].answers.onnx.text must be text, got 5.",
        ),
        (
            broken(lambda c: c.update(turns=c["turns"] * 201)),
            "turns must be a list of 1 to 200 turns .*, got a list of 201 items.",
        ),
        ("x" * (MAX_BYTES + 1), "The file is 2,000,001 bytes; at most 2,000,000 are read."),
        # The cases: each refused by the schema, before anything runs, in the API's words.
        (
            broken(lambda c: c["turns"][0]["answers"]["onnx"].update(latency={"total_s": "fast"})),
            r'turns\[0\].answers.onnx.latency.total_s must be a number of at least 0, or null, got "fast".',
        ),
        (
            broken(lambda c: c["turns"][0]["answers"]["onnx"].update(latency="fast")),
            r"turns\[0\].answers.onnx.latency must be an object with total_s, ttft_s, tokens_per_s",
        ),
        (
            broken(lambda c: c.update(models=[1, 2])),
            "models must be an object with transformers, onnx, got a list of 2 items.",
        ),
        (
            broken(lambda c: c["settings"].update(max_tokens=-5)),
            "settings.max_tokens must be a whole number from 1 to 512, got -5.",
        ),
        (
            broken(lambda c: c["settings"].update(temperature=float("nan"))),
            r"settings.temperature must be a number from 0 to 2 \(0: greedy\), got nan.",
        ),
        (
            broken(lambda c: c["settings"].update(temperature=1e308)),
            r"settings.temperature must be .*, got 1e\+308.",
        ),
        (
            broken(lambda c: c["settings"].update(temperature=10**400)),
            "settings.temperature must be .*, got a number of 401 digits.",
        ),
        (
            broken(lambda c: c["settings"].update(top_p=0)),
            "settings.top_p must be a number above 0 and at most 1, got 0.",
        ),
        (
            broken(lambda c: c["settings"].update(stop=["x"] * 1000)),
            "settings.stop must be .*, got a list of 1000 items.",
        ),
        (
            broken(lambda c: c["settings"].update(color="red")),
            "settings.color is not a known field; the fields are: max_tokens, ",
        ),
        (
            '{"format": "phi3-mlflow-compare/conversation", "turns": ' + "[" * 100_000 + "]" * 100_000 + "}",
            "The file nests 100,001 levels deep; at most 16 are read.",
        ),
    ],
)
def test_a_bad_file_is_refused_with_the_reason_and_the_place(data, message):
    with pytest.raises(ConversationError, match=message):
        read_conversation(data)


def test_replay_over_the_api_answers_turn_by_turn_and_refuses_a_bad_file(server, exported):
    client = Client(server, verbose=False)
    out = client.predict(conversation=json.dumps(exported), api_name="/replay")
    assert [row["same"] for row in out["turns"]] == ["yes"] * 4, out["turns"]  # the rows say what differed
    assert "4 of 4 answers" in out["summary"]
    for hot in (
        broken(lambda c: c["settings"].update(temperature="hot")),
        broken(lambda c: c.update(models=[1, 2])),
    ):
        with pytest.raises(ConversationError) as read:  # the same words from the file reader and /replay
            read_conversation(hot)
        with pytest.raises(Exception, match=re.escape(str(read.value))):
            client.predict(conversation=hot, api_name="/replay")
    too_many = broken(lambda c: c["settings"].update(max_tokens=10**6))
    with pytest.raises(
        Exception, match="settings.max_tokens must be a whole number from 1 to 512, got 1000000."
    ):
        client.predict(conversation=too_many, api_name="/replay")
