"""The ballot box: one vote per blind comparison and a rate limit per voter, across threads and processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

from compare.ballots import BallotBox, VoteLimit, VoteRefused
from wrappers.config import ROOT

RACE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from compare.ballots import BallotBox, VoteRefused
    box = BallotBox(Path(sys.argv[1]))
    while time.time() < float(sys.argv[2]):  # start together
        time.sleep(0.001)
    won = 0
    for i in range(50):
        try:
            with box.ballot(f"voter-{sys.argv[3]}-{i}", blind_comparison=f"battle-{i}"):
                won += 1
        except VoteRefused:
            pass
    print(won)
""")


def test_app_processes_racing_for_the_same_blind_comparisons_claim_each_exactly_once(tmp_path):
    """Two app processes on one data folder, 50 battles each voted on by both at the same instant."""
    import time

    start = time.time() + 1.5
    races = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(tmp_path / "ballots.sqlite"), str(start), str(n)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    won = [int(race.communicate(timeout=60)[0]) for race in races]
    assert sum(won) == 50


def test_threads_voting_on_one_blind_comparison_at_once_admit_exactly_one(tmp_path):
    boxes = [BallotBox(tmp_path / "ballots.sqlite") for _ in range(2)]  # two connections, as two processes
    admitted, refused, barrier = [], [], threading.Barrier(8)

    def vote(n: int) -> None:
        barrier.wait()
        try:
            with boxes[n % 2].ballot(f"clicker-{n}", blind_comparison="battle"):
                admitted.append(n)
        except VoteRefused as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=vote, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 1 and len(refused) == 7
    assert all("already been voted on" in reason for reason in refused)


def test_a_voter_over_the_limit_is_refused_with_the_wait_and_others_are_not(tmp_path):
    box = BallotBox(tmp_path / "ballots.sqlite", VoteLimit(votes=3, window_s=600))
    for _ in range(3):
        with box.ballot("busy"):
            pass
    refused = pytest.raises(VoteRefused, match=r"at most 3 in 10 minutes per voter\. Try again in 10 minutes")
    with refused, box.ballot("busy"):
        pass
    with box.ballot("someone else"):
        pass


def test_a_vote_that_fails_to_store_is_taken_back(tmp_path):
    box = BallotBox(tmp_path / "ballots.sqlite", VoteLimit(votes=1, window_s=600))
    with pytest.raises(ConnectionError), box.ballot("v", blind_comparison="battle"):
        raise ConnectionError("the store is down")
    with box.ballot("v", blind_comparison="battle"):  # neither the limit nor the claim was used up
        pass
