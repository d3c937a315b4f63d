"""Generation options and stop sequences: pure logic shared by both wrappers."""

from __future__ import annotations

import math

import pytest

from wrappers import GenerationOptions
from wrappers.stops import StopScanner


def test_defaults_are_greedy():
    assert GenerationOptions().greedy


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_tokens", 0, "max_tokens must be a whole number from 1 to 4096, got 0."),
        ("max_tokens", -3, "max_tokens must be a whole number from 1 to 4096, got -3."),
        ("max_tokens", 10**9, "max_tokens must be a whole number from 1 to 4096, got 1000000000."),
        ("max_tokens", 2.5, "max_tokens must be a whole number from 1 to 4096, got 2.5."),
        ("max_tokens", True, "max_tokens must be a whole number from 1 to 4096, got true."),
        ("temperature", -0.1, "temperature must be a number from 0 to 2 (0: greedy), got -0.1."),
        ("temperature", math.nan, "temperature must be a number from 0 to 2 (0: greedy), got nan."),
        ("temperature", 1e308, "temperature must be a number from 0 to 2 (0: greedy), got 1e+308."),
        (
            "temperature",
            10**400,
            "temperature must be a number from 0 to 2 (0: greedy), got a number of 401 digits.",
        ),
        ("top_p", 0.0, "top_p must be a number above 0 and at most 1, got 0.0."),
        ("top_p", 1.5, "top_p must be a number above 0 and at most 1, got 1.5."),
        ("temperature", "hot", 'temperature must be a number from 0 to 2 (0: greedy), got "hot".'),
    ],
)
def test_out_of_range_values_are_rejected_with_a_clear_message(field, value, message):
    with pytest.raises(ValueError) as refused:
        GenerationOptions(**{field: value})
    assert str(refused.value) == message


def test_too_many_stop_sequences_are_rejected():
    with pytest.raises(
        ValueError, match="stop must be text with at most 16 stop sequences.*got a list of 100"
    ):
        GenerationOptions.checked({"stop": "\n".join(f"s{i}" for i in range(100))})


def test_stop_text_is_one_sequence_per_line():
    assert GenerationOptions.checked({"max_tokens": 8, "stop": "a\n\nEND\n"}).stop == ("a", "END")


def test_the_servers_limit_and_the_place_are_in_the_message():
    with pytest.raises(ValueError) as refused:
        GenerationOptions.checked({"max_tokens": 600, "top_p": 0}, max_new_tokens=512, where="settings")
    assert str(refused.value) == (
        "settings.max_tokens must be a whole number from 1 to 512, got 600. (1 more mistake after this one.)"
    )


def test_unknown_settings_are_named():
    with pytest.raises(ValueError, match="tempreature is not a known field; the fields are: max_tokens"):
        GenerationOptions.checked({"tempreature": 1.0})


def test_scanner_releases_text_and_cuts_at_the_stop():
    scanner = StopScanner(["END"])
    released = [scanner.feed(p) for p in ["The cap", "ital E", "N", "D and more"]]
    assert released == ["The cap", "ital ", "", ""]
    assert scanner.stopped and scanner.visible == "The capital "


def test_scanner_releases_a_false_start_once_it_is_decided():
    scanner = StopScanner(["END"])
    assert [scanner.feed("x E"), scanner.feed("Nx")] == ["x ", "ENx"]
    assert not scanner.stopped


def test_scanner_flushes_held_text_at_the_end():
    scanner = StopScanner(["###"])
    assert scanner.feed("a #") == "a "
    assert scanner.flush() == "#"


def test_scanner_without_stops_releases_everything():
    scanner = StopScanner([])
    assert scanner.feed("abc") == "abc" and scanner.flush() == ""
