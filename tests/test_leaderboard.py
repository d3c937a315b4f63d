"""The leaderboard's statistics on votes whose answer is known in closed form."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from compare.leaderboard import SCALE, ratings, split_by_mode


def votes(model_a: str, model_b: str, a: int = 0, b: int = 0, tie: int = 0, both_bad: int = 0, blind=True):
    outcomes = ["a"] * a + ["b"] * b + ["tie"] * tie + ["both_bad"] * both_bad
    return pd.DataFrame({"model_a": model_a, "model_b": model_b, "outcome": outcomes, "blind": blind})


def by_model(table: pd.DataFrame) -> pd.DataFrame:
    return table.set_index("model")


def test_two_models_get_the_closed_form_rating_gap_and_a_delta_method_sized_interval():
    table = by_model(ratings(votes("x/1", "y/1", a=300, b=100)))
    # With the prior's one virtual tie, the maximum-likelihood log-odds are ln(300.5 / 100.5).
    gap = SCALE * math.log(300.5 / 100.5)
    assert table.loc["x/1", "rating"] - table.loc["y/1", "rating"] == pytest.approx(gap, abs=0.1)
    assert table.loc["x/1", "rating"] + table.loc["y/1", "rating"] == pytest.approx(2000, abs=1e-6)
    # Each rating is half the gap from the centre; its standard error is half that of the
    # log-odds, sqrt(1 / (n p q)) (delta method). The bootstrap interval must be about as wide.
    p = 0.75
    half_width = 1.96 * SCALE * 0.5 * math.sqrt(1 / (400 * p * (1 - p)))
    for model in ("x/1", "y/1"):
        low, high, point = table.loc[model, ["lower", "upper", "rating"]]
        assert low < point < high
        assert (high - low) / 2 == pytest.approx(half_width, rel=0.2)
    assert table.loc["x/1", "lower"] > table.loc["y/1", "upper"]  # clearly apart at 300 to 100


def test_three_models_are_ranked_by_their_known_strengths():
    # Counts drawn exactly from strengths A > B > C, each step ln(7/3) in log-odds.
    step = math.log(7 / 3)
    p_ac = 1 / (1 + math.exp(-2 * step))
    table = pd.concat(
        [
            votes("A/1", "B/1", a=700, b=300),
            votes("B/1", "C/1", a=700, b=300),
            votes("A/1", "C/1", a=round(1000 * p_ac), b=1000 - round(1000 * p_ac)),
        ]
    )
    result = ratings(table)
    assert list(result["model"]) == ["A/1", "B/1", "C/1"]
    rated = by_model(result)["rating"]
    assert rated["A/1"] - rated["B/1"] == pytest.approx(SCALE * step, abs=3)
    assert rated["B/1"] - rated["C/1"] == pytest.approx(SCALE * step, abs=3)
    assert (result["group"] == 1).all()


def test_ties_and_both_bad_count_half_a_win_each_and_are_counted_apart():
    even = by_model(ratings(votes("x/1", "y/1", tie=6, both_bad=4)))
    assert even.loc["x/1", "rating"] == pytest.approx(1000, abs=1e-3)
    assert (even.loc["x/1", "ties"], even.loc["x/1", "both_bad"], even.loc["x/1", "votes"]) == (6, 4, 10)
    sweep = by_model(ratings(votes("x/1", "y/1", a=10)))
    pulled = by_model(ratings(votes("x/1", "y/1", a=10, tie=10)))
    assert 1000 < pulled.loc["x/1", "rating"] < sweep.loc["x/1", "rating"]
    # Ten wins plus ten half-wins each way (and the prior): ln(15.5 / 5.5).
    assert pulled.loc["x/1", "rating"] - 1000 == pytest.approx(SCALE * math.log(15.5 / 5.5) / 2, abs=0.1)


def test_a_clean_sweep_stays_finite_and_its_interval_is_zero_width_as_documented():
    table = by_model(ratings(votes("x/1", "y/1", a=5)))
    assert table.loc["x/1", "rating"] - 1000 == pytest.approx(SCALE * math.log(5.5 / 0.5) / 2, abs=0.1)
    assert table.loc["x/1", "lower"] == pytest.approx(table.loc["x/1", "upper"])
    assert (table.loc["x/1", "wins"], table.loc["y/1", "losses"]) == (5, 5)


def test_a_single_vote_has_a_rating_but_no_interval():
    table = by_model(ratings(votes("x/1", "y/1", a=1)))
    assert table.loc["x/1", "rating"] > 1000
    assert math.isnan(table.loc["x/1", "lower"]) and math.isnan(table.loc["x/1", "upper"])


def test_models_that_never_met_are_rated_in_separate_groups_each_centred():
    table = pd.concat([votes("x/1", "y/1", a=8, b=2), votes("u/1", "v/1", a=2, b=8)])
    result = by_model(ratings(table))
    assert result.loc["x/1", "group"] == result.loc["y/1", "group"] != result.loc["u/1", "group"]
    for pair in (("x/1", "y/1"), ("u/1", "v/1")):
        assert result.loc[list(pair), "rating"].mean() == pytest.approx(1000, abs=1e-6)


def test_blind_and_named_votes_are_rated_apart():
    table = pd.concat([votes("x/1", "y/1", a=9, b=1, blind=True), votes("x/1", "y/1", a=1, b=9, blind=False)])
    board = split_by_mode(table)
    assert (
        by_model(board["blind"]).loc["x/1", "rating"] > 1000 > by_model(board["named"]).loc["x/1", "rating"]
    )
    assert by_model(board["blind"]).loc["x/1", "votes"] == by_model(board["named"]).loc["x/1", "votes"] == 10


def test_the_same_votes_always_give_the_same_table():
    table = votes("x/1", "y/1", a=7, b=5, tie=2)
    pd.testing.assert_frame_equal(ratings(table), ratings(table))


def test_no_votes_give_an_empty_table_with_the_columns():
    board = split_by_mode(votes("x/1", "y/1"))
    assert board["blind"].empty and "rating" in board["blind"].columns


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (pd.DataFrame({"model_a": ["x"], "model_b": ["y"], "outcome": ["a"]}), "needs the columns"),
        (votes("x/1", "y/1", a=1).assign(outcome="left"), "outcomes must be one of"),
        (votes("x/1", "x/1", a=1), "two different models"),
    ],
)
def test_a_malformed_vote_table_is_refused(table, message):
    with pytest.raises(ValueError, match=message):
        ratings(table)


def test_one_voter_counts_at_most_the_cap_on_a_pair_and_the_distinct_voters_are_shown():
    # The attack: three voters scripting 61 one-sided votes between them.
    spam = votes("x/1", "y/1", a=61, blind=False).assign(voter=[f"s{i % 3}" for i in range(61)])
    honest = votes("x/1", "y/1", b=4, blind=False).assign(voter=["h1", "h2", "h3", "h4"])
    table = by_model(ratings(pd.concat([spam, honest], ignore_index=True), resamples=0, cap=10))
    assert table.loc["x/1", "votes"] == 3 * 10 + 4  # 31 of the 61 are not counted
    assert table.loc["x/1", "voters"] == table.loc["y/1", "voters"] == 7
    # With the cap, 30 wins and 4 losses (and the prior's tie): ln(30.5 / 4.5) in log-odds.
    assert table.loc["x/1", "rating"] - 1000 == pytest.approx(SCALE * math.log(30.5 / 4.5) / 2, abs=0.1)


def test_the_cap_keeps_a_voters_earliest_votes_per_pair_and_mode():
    early = votes("x/1", "y/1", a=2, blind=False).assign(voter="v", at=[1.0, 2.0])
    late = votes("y/1", "x/1", a=1, blind=False).assign(voter="v", at=[0.5])  # the same pair, reversed
    blind = votes("x/1", "y/1", b=2, blind=True).assign(voter="v", at=[3.0, 4.0])
    board = split_by_mode(pd.concat([early, late, blind], ignore_index=True), resamples=0, cap=2)
    named = by_model(board["named"])
    assert (named.loc["y/1", "wins"], named.loc["x/1", "wins"]) == (1, 1)  # the earliest two
    assert by_model(board["blind"]).loc["y/1", "wins"] == 2  # blind votes have a cap of their own
