"""Fidelity scores what the panes show, and its line gives true reasons (issue 24, points 1 and 2).

Every way an answer ends is covered, on the real tiny model through both registered models: a stop
sequence inside a token, one at a token boundary, a max-token cut, Stop (a partial answer), and the
end token. In each, a side's completion-token count is the number of tokens it shows, the fidelity
line scores that many, and the strip's visible text is the pane's text.
"""

from __future__ import annotations

import pytest

from compare.comparison import compare_stream, judge
from compare.fidelity import score
from compare.turns import Answer, Turn, histories_differ, messages_for
from wrappers import GenerationOptions

SPAIN = [{"role": "user", "content": "What is the capital of Spain?"}]
ENDINGS = {
    # stop: the answer is "The capital of Spain is Madrid."; " Madrid" is one token, cut after its space
    "stop inside a token": GenerationOptions(max_tokens=48, stop=("Madrid",)),
    "stop at a token boundary": GenerationOptions(max_tokens=48, stop=(" is",)),
    "max-token cut": GenerationOptions(max_tokens=3),
    "end token": GenerationOptions(max_tokens=48),
}
SHOWN = {
    "stop inside a token": "The capital of Spain is ",
    "stop at a token boundary": "The capital of Spain",
    "max-token cut": "The capital of",
    "end token": "The capital of Spain is Madrid.",
}


def final(backends, options, messages=SPAIN):
    *_, last = compare_stream(backends, {side: messages for side in backends}, options)
    return last


def stopped(backends, options, after: int = 3):
    """The partial results at the moment Stop is pressed, after `after` transformers tokens."""
    stream = compare_stream(backends, {side: SPAIN for side in backends}, options)
    for latest in stream:
        if len(latest["transformers"].pieces) >= after and latest["onnx"].pieces:
            stream.close()
            return latest
    raise AssertionError("the answer ended before Stop")


def assert_scores_what_is_shown(backends, results, options):
    for side, result in results.items():
        assert result.usage.completion_tokens == len(result.pieces), side  # each shown token counted once
        assert "".join(result.pieces) == result.text, side
    reference = results["transformers"]
    fidelity = score(backends, results, options).fidelity
    assert fidelity is not None
    assert fidelity.tokens == reference.usage.completion_tokens == len(fidelity.per_token)
    assert "".join(t.token for t in fidelity.per_token if not t.hidden) == reference.text
    if results["onnx"].text == reference.text:  # the tiny model's int4 export agrees on these
        assert fidelity.tokens == results["onnx"].usage.completion_tokens
    return fidelity


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_fidelity_scores_exactly_the_tokens_each_pane_shows(backends, ending):
    options = ENDINGS[ending]
    results = final(backends, options)
    assert results["transformers"].text == results["onnx"].text == SHOWN[ending]
    fidelity = assert_scores_what_is_shown(backends, results, options)
    texts = [t.token for t in fidelity.per_token]
    if ending == "stop inside a token":  # the case: 6 tokens shown, 7 scored, "Madrid ." in the strip
        assert fidelity.tokens == 6 and texts[-1] == " " and "Madrid" not in "".join(texts)
    if ending == "stop at a token boundary":  # " is" is generated, scored, and shown as hidden
        assert fidelity.per_token[-1].hidden and texts[-1] == ""
    if ending == "end token":
        assert texts[-1] == "<|end|>" and fidelity.per_token[-1].hidden


def test_a_stopped_comparison_scores_its_partial_answers(backends):
    options = ENDINGS["end token"]
    results = stopped(backends, options)
    assert not results["transformers"].done
    assert_scores_what_is_shown(backends, results, options)


def test_the_flavor_stops_generating_at_the_stop_sequence(backends):
    """raw stays what predict returned: it ends with the token that holds the stop, and no further."""
    results = final(backends, ENDINGS["stop inside a token"])
    raw = results["transformers"].raw[0]
    assert raw["choices"][0]["message"]["content"] == "The capital of Spain is Madrid"
    assert raw["usage"]["completion_tokens"] == results["transformers"].usage.completion_tokens == 6


def test_different_histories_are_scored_on_the_reference_conversation(backends):
    """Bug: after a turn whose answers differed, every later turn said the chat templates differed."""
    turns = [
        Turn("What is the capital of Spain?", {"transformers": Answer("Madrid."), "onnx": Answer("Spain.")})
    ]
    assert histories_differ(turns, ("transformers", "onnx"))
    conversations = {side: messages_for(turns, side, "", "What is seven times eight?") for side in backends}
    options = GenerationOptions(max_tokens=16)
    *_, results = compare_stream(backends, conversations, options)
    scored = score(backends, results, options, same_conversation=False)
    assert scored.fidelity is not None, scored.reason
    assert "different histories" in scored.fidelity.note and "chat templates" not in scored.fidelity.note
    same = score(backends, results, options)  # told the conversations are the same: they are not
    assert same.fidelity is None and "chat templates" in same.reason


def test_each_side_says_the_settings_it_really_used(backends):
    """Bug: after regenerating one side at temperature 1.5, the note said both were sampled at 1.5."""
    greedy, hot = GenerationOptions(max_tokens=12), GenerationOptions(max_tokens=12, temperature=1.5)
    results = final(backends, greedy) | {"onnx": final(backends, hot)["onnx"]}
    note = score(backends, results, hot).fidelity.note
    assert "transformers greedy" in note and "onnx sampled at temperature 1.5" in note
    assert "transformers answer was sampled" not in note  # the reference answer was greedy
    summary = judge(results["transformers"], results["onnx"], ("transformers", "onnx")).summary
    assert "different settings: transformers greedy" in summary
    both_hot = final(backends, hot)
    note = score(backends, both_hot, hot).fidelity.note
    assert "different settings" not in note and "transformers answer was sampled at temperature 1.5" in note
