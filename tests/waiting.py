"""Waiting for something another thread or process does, in tests.

:func:`wait_until` polls a condition until it holds and returns what it returned; when it does not
hold in time the test fails, naming what it waited for and what it saw last, rather than going on
with a partial result. The bound is generous and only keeps a broken test from hanging: it is no
timing assertion (the machine running the suite is shared and its speed says nothing).
"""

from __future__ import annotations

import time
from typing import Any, Callable, TypeVar

import pytest

T = TypeVar("T")

#: how long a wait may take before the test fails: minutes of margin over an idle machine's time
GENEROUS_S = 30.0


def wait_until(check: Callable[[], T], what: str, timeout: float = GENEROUS_S,
               seen: Callable[[], Any] | None = None, interval: float = 0.01) -> T:
    """Call ``check()`` until it returns a true value, and return that value.

    After ``timeout`` seconds fail with "timed out after N s waiting for <what>; saw <seen()>"
    (``seen`` defaults to the last value ``check()`` returned). ``check`` may do work of its own,
    such as polling a consumer, so that a wait also drives what it waits for.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            saw = value if seen is None else seen()
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}; saw {saw!r}")
        time.sleep(interval)
