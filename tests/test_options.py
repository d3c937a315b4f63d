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
        ("max_tokens", 0, "max_tokens must be between"),
        ("max_tokens", -3, "max_tokens must be between"),
        ("max_tokens", 10**9, "max_tokens must be between"),
        ("max_tokens", 2.5, "whole number"),
        ("temperature", -0.1, "temperature must be in"),
        ("temperature", math.nan, "temperature must be in"),
        ("temperature", 1e9, "temperature must be in"),
        ("top_p", 0.0, "top_p must be in (0.0"),
        ("top_p", 1.5, "top_p must be in"),
        ("temperature", "hot", "must be a number"),
    ],
)
def test_out_of_range_values_are_rejected_with_a_clear_message(field, value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        GenerationOptions(**{field: value})


def test_too_many_stop_sequences_are_rejected():
    with pytest.raises(ValueError, match="At most 16 stop sequences"):
        GenerationOptions.from_text(8, 0, 1, "\n".join(f"s{i}" for i in range(100)))


def test_stop_text_is_one_sequence_per_line():
    assert GenerationOptions.from_text(8, 0, 1, "a\n\nEND\n").stop == ("a", "END")


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
