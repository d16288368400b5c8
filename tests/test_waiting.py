"""The suite's own waits fail loudly: a wait that runs out says what it waited for and what it saw,
and never lets a test go on with a partial result."""

from __future__ import annotations

import pytest

from waiting import wait_until


def test_a_wait_that_runs_out_fails_naming_what_it_waited_for_and_what_it_saw():
    polled = []
    with pytest.raises(pytest.fail.Exception, match=r"^timed out after 0.05 s waiting for the answer; saw \[41, 41"):
        wait_until(lambda: polled.append(41) and False, "the answer", 0.05, seen=lambda: polled)


def test_a_wait_returns_the_first_true_value_its_check_gives():
    calls = []
    assert wait_until(lambda: calls.append(len(calls)) or (len(calls) == 3 and list(calls)), "three calls") == [0, 1, 2]
