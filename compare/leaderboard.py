"""Bradley–Terry ratings with bootstrap intervals, as pure functions over a table of votes.

A vote table has one row per vote: `model_a`, `model_b` (registered "name/version"),
`outcome` (`a`, `b`, `tie` or `both_bad`) and `blind` (True for arena votes, where the
voter did not know which model was which); optionally `voter` (who voted) and `at` (when).
Blind and named votes are rated apart: a voter who knows the names may vote for the name.

The model: P(i beats j) = 1 / (1 + exp(θj - θi)), fitted by maximum likelihood
(scipy's L-BFGS on the exact gradient). Choices made, and why:

- **Ties.** A tie and a both-bad vote each count as half a win for either side, the
  usual treatment (LMSYS arena); they pull the two ratings together. The vote counts
  keep them apart, so nothing is hidden.
- **A weak prior.** Each pair of models that met also gets one virtual tie. Without it,
  a model that won every vote has an infinite rating; with it, 5 wins out of 5 read
  as 5.5 to 0.5. Its weight fades as votes accumulate.
- **Scale.** Ratings are shown on the Elo scale, 1000 + 400·log10(e)·θ, with the mean of
  a group at 1000: 400 points apart means 10 to 1 odds.
- **Groups.** Models that never met, directly or through others, cannot be compared:
  each connected group is fitted and centred on its own, and labelled.
- **One voter cannot dominate.** At most `MAX_PER_VOTER_AND_PAIR` votes of one voter on
  one pair of models (in each mode) count, the earliest ones, as public arenas cap what one
  voter can weigh: three sessions scripting 61 one-sided votes in a minute count as at most
  3 × 10. Each model's table row says how many distinct voters its counted votes come from.
  A table without a `voter` column counts every vote (each its own voter).
- **Intervals.** 95 % percentile bootstrap (scipy.stats.bootstrap) over votes, 1000
  resamples, a fixed seed so the same votes always give the same table. A model whose
  every vote went the same way gets a zero-width interval: resampling cannot show
  variation the votes do not contain; read the vote count beside it. A single vote
  has no interval (NaN).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import optimize, sparse, stats
from threadpoolctl import threadpool_limits

OUTCOMES = ("a", "b", "tie", "both_bad")
SCALE = 400 / math.log(10)  # Elo points per unit of log-odds
CENTRE = 1000.0
RESAMPLES = 1000
SEED = 20261126
MAX_PER_VOTER_AND_PAIR = 10  # votes of one voter on one pair of models (per mode) that count
COLUMNS = [
    "group",
    "model",
    "rating",
    "lower",
    "upper",
    "votes",
    "voters",
    "wins",
    "losses",
    "ties",
    "both_bad",
]


def ratings(
    votes: pd.DataFrame, resamples: int = RESAMPLES, seed: int = SEED, cap: int = MAX_PER_VOTER_AND_PAIR
) -> pd.DataFrame:
    """One row per model: rating with its 95 % interval, and the counted votes; best first.

    >>> votes = pd.DataFrame({"model_a": ["x/1"] * 4, "model_b": ["y/1"] * 4,
    ...                       "outcome": ["a", "a", "a", "b"], "blind": True})
    >>> ratings(votes, resamples=0)[["model", "rating", "wins", "losses"]].round(1).values.tolist()
    [['x/1', 1073.6, 3, 1], ['y/1', 926.4, 1, 3]]
    """
    check_votes(votes)
    votes = counted(votes, cap)
    models = sorted(set(votes["model_a"]) | set(votes["model_b"]))
    if not models:
        return pd.DataFrame(columns=COLUMNS)
    index = {model: i for i, model in enumerate(models)}
    a = votes["model_a"].map(index).to_numpy()
    b = votes["model_b"].map(index).to_numpy()
    outcome = votes["outcome"].map(OUTCOMES.index).to_numpy()
    groups = _groups(a, b, len(models))
    rows = []
    for group in np.unique(groups):  # (group -> its models, rated on their own)
        members = np.flatnonzero(groups == group)
        mask = np.isin(a, members)
        # Thousands of fits of a few numbers each: BLAS threads only contend on a busy machine.
        with threadpool_limits(limits=1):
            fitted = _rate_group(a[mask], b[mask], outcome[mask], members, resamples, seed)
        for model, (rating, lower, upper) in zip(members, fitted, strict=True):
            rows.append([int(group) + 1, models[model], rating, lower, upper])
    table = pd.DataFrame(rows, columns=COLUMNS[:5])
    table = table.merge(_counts(votes), on="model")
    return table.sort_values(["group", "rating"], ascending=[True, False], ignore_index=True)


def check_votes(votes: pd.DataFrame) -> None:
    """Refuse a vote table the ratings would misread."""
    missing = {"model_a", "model_b", "outcome", "blind"} - set(votes.columns)
    if missing:
        raise ValueError(f"a vote table needs the columns {sorted(missing)}")
    bad = set(votes["outcome"]) - set(OUTCOMES)
    if bad:
        raise ValueError(f"outcomes must be one of {OUTCOMES}, got {sorted(bad)}")
    if (votes["model_a"] == votes["model_b"]).any():
        raise ValueError("a vote must compare two different models")


def split_by_mode(
    votes: pd.DataFrame, resamples: int = RESAMPLES, cap: int = MAX_PER_VOTER_AND_PAIR
) -> dict[str, pd.DataFrame]:
    """Blind and named votes rated apart: {"blind": table, "named": table}."""
    blind = votes["blind"].astype(bool) if len(votes) else pd.Series(dtype=bool)
    return {
        "blind": ratings(votes[blind], resamples, cap=cap),
        "named": ratings(votes[~blind], resamples, cap=cap),
    }


def counted(votes: pd.DataFrame, cap: int = MAX_PER_VOTER_AND_PAIR) -> pd.DataFrame:
    """The votes that count: each voter's earliest `cap` on each pair of models, in each mode.

    Without a `voter` column every vote is its own voter; without `at`, the table's order is time.

    >>> table = pd.DataFrame({"model_a": ["x/1", "y/1", "x/1"], "model_b": ["y/1", "x/1", "y/1"],
    ...                       "outcome": "a", "blind": False, "voter": ["v", "v", "w"]})
    >>> counted(table, cap=1)["voter"].tolist()
    ['v', 'w']
    """
    if "voter" not in votes.columns:
        return votes.assign(voter=[f"vote {i}" for i in range(len(votes))])
    order = votes.sort_values("at", kind="stable") if "at" in votes.columns else votes
    pair = ["|".join(sorted(models)) for models in zip(order["model_a"], order["model_b"], strict=True)]
    rank = order.assign(pair=pair).groupby(["voter", "blind", "pair"], sort=False).cumcount()
    return order[rank < cap].sort_index()


def _rate_group(a, b, outcome, members, resamples: int, seed: int) -> list[tuple[float, float, float]]:
    """Ratings and interval bounds for one connected group, in the order of `members`."""
    local = {int(m): i for i, m in enumerate(members)}
    a = np.array([local[int(x)] for x in a], dtype=int)
    b = np.array([local[int(x)] for x in b], dtype=int)
    n = len(members)
    # Votes collapse into cells (ordered pair, outcome); a resample is a new count per cell.
    cells, cell_of_vote = np.unique(np.stack([a, b, outcome], axis=1), axis=0, return_inverse=True)
    pairs = {(min(i, j), max(i, j)) for i, j, _ in cells}

    def fit(sample: np.ndarray) -> np.ndarray:
        counts = np.bincount(sample, minlength=len(cells))
        return _elo(_fit(_win_matrix(cells, counts, pairs, n)))

    cell_of_vote = cell_of_vote.ravel()
    point = fit(cell_of_vote)
    if resamples <= 0 or len(cell_of_vote) < 2:  # one vote: nothing to resample
        return [(r, math.nan, math.nan) for r in point]
    result = stats.bootstrap(
        (cell_of_vote,),
        fit,
        n_resamples=resamples,
        confidence_level=0.95,
        method="percentile",
        vectorized=False,
        rng=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return list(zip(point, low, high, strict=True))


def _win_matrix(cells: np.ndarray, counts: np.ndarray, pairs: set, n: int) -> np.ndarray:
    """wins[i, j]: how often i beat j, ties as halves, plus the prior's one virtual tie per pair."""
    wins = np.zeros((n, n))
    for (i, j, outcome), count in zip(cells, counts, strict=True):
        if OUTCOMES[outcome] == "a":
            wins[i, j] += count
        elif OUTCOMES[outcome] == "b":
            wins[j, i] += count
        else:
            wins[i, j] += count / 2
            wins[j, i] += count / 2
    for i, j in pairs:
        wins[i, j] += 0.5
        wins[j, i] += 0.5
    return wins


def _fit(wins: np.ndarray) -> np.ndarray:
    """Maximum-likelihood log-strengths, centred on zero."""

    def negative_log_likelihood(theta: np.ndarray) -> tuple[float, np.ndarray]:
        diff = theta[:, None] - theta[None, :]  # (i, j) -> θi - θj
        p = 1 / (1 + np.exp(-diff))  # P(i beats j)
        value = -(wins * np.log(p)).sum()
        residual = wins * (1 - p)  # d/dθi of wins[i, j]·log p[i, j]
        gradient = -(residual.sum(axis=1) - residual.sum(axis=0))
        return value, gradient

    n = len(wins)
    result = optimize.minimize(negative_log_likelihood, np.zeros(n), jac=True, method="L-BFGS-B")
    return result.x - result.x.mean()


def _elo(theta: np.ndarray) -> np.ndarray:
    return CENTRE + SCALE * theta


def _groups(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """Connected groups of models, numbered from 0 in order of their first model."""
    graph = sparse.coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    _, labels = sparse.csgraph.connected_components(graph, directed=False)
    first_seen = {label: i for i, label in reversed(list(enumerate(labels)))}
    order = {label: rank for rank, label in enumerate(sorted(first_seen, key=first_seen.get))}
    return np.array([order[label] for label in labels])


def _counts(votes: pd.DataFrame) -> pd.DataFrame:
    """Votes, wins, losses, ties and both-bad per model."""
    as_a = votes.assign(model=votes["model_a"], won="a", lost="b")
    as_b = votes.assign(model=votes["model_b"], won="b", lost="a")
    both = pd.concat([as_a, as_b], ignore_index=True)
    counts = both.groupby("model").apply(
        lambda rows: pd.Series(
            {
                "votes": len(rows),
                "voters": rows["voter"].nunique(),
                "wins": int((rows["outcome"] == rows["won"]).sum()),
                "losses": int((rows["outcome"] == rows["lost"]).sum()),
                "ties": int((rows["outcome"] == "tie").sum()),
                "both_bad": int((rows["outcome"] == "both_bad").sum()),
            }
        ),
        include_groups=False,
    )
    return counts.reset_index()
