"""A conversation exported as JSON, read back with clear refusals, and replayed against the current models."""

from __future__ import annotations

import json

import pytest
from gradio_client import Client

from compare.conversation import MAX_BYTES, ConversationError, read_conversation, turns_of
from compare.service import Comparer, new_comparison_id
from compare.turns import ERROR, OK, Answer, Turn, messages_for
from ui import formatting as fmt
from ui.api import SIDES
from ui.conversation_io import conversation_turns, export_file, replay_rows
from wrappers import GenerationOptions
from wrappers.config import Limits

PROMPTS = ("What is the capital of Spain?", "What is 7 plus 5?")


@pytest.fixture(scope="module")
def comparer(backends):
    return Comparer(backends, Limits(), recorder=None, fidelity=False)


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
        (broken(lambda c: c.update(version=7)), "version 7"),
        (broken(lambda c: c["settings"].pop("top_p")), "settings.top_p must be a float"),
        (broken(lambda c: c["settings"].update(max_tokens="16")), "settings.max_tokens must be a int"),
        (broken(lambda c: c["settings"].update(stop=[1])), "settings.stop must be a list of strings"),
        (broken(lambda c: c.update(turns=[])), "'turns' must be a non-empty list"),
        (broken(lambda c: c["turns"][0].update(prompt=" ")), r"turns\[0\].prompt must be a non-empty string"),
        (broken(lambda c: c["turns"][0]["answers"].pop("onnx")), r"turns\[0\].answers must have an answer"),
        (
            broken(lambda c: c["turns"][0]["answers"]["onnx"].update(text=5)),
            r"answers.onnx.text must be a string",
        ),
        (broken(lambda c: c.update(turns=c["turns"] * 201)), "at most 200 are read"),
        ("x" * (MAX_BYTES + 1), "a conversation file is at most"),
    ],
)
def test_a_bad_file_is_refused_with_the_reason_and_the_place(data, message):
    with pytest.raises(ConversationError, match=message):
        read_conversation(data)


def test_replay_over_the_api_answers_turn_by_turn_and_refuses_a_bad_file(server, exported):
    client = Client(server, verbose=False)
    out = client.predict(conversation=json.dumps(exported), api_name="/replay")
    assert [row["same"] for row in out["turns"]] == ["yes"] * 4
    assert "4 of 4 answers" in out["summary"]
    with pytest.raises(Exception, match="settings.temperature must be a float"):
        client.predict(
            conversation=broken(lambda c: c["settings"].update(temperature="hot")), api_name="/replay"
        )
    too_many = broken(lambda c: c["settings"].update(max_tokens=10**6))
    with pytest.raises(Exception, match="settings.max_tokens must be between 1 and"):
        client.predict(conversation=too_many, api_name="/replay")
