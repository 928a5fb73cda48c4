"""Awaiting conditions instead of sleeping: a test waits for what it needs to see, for as long as a loaded machine
takes, and not a moment longer. The timeouts are generous on purpose: they only bound a test that is failing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float = 30.0, interval: float = 0.05, message: str = "") -> T:
    """Call `condition` until it returns something truthy, and return that. Raises AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {message or getattr(condition, '__name__', condition)} (last: {result!r})")
        time.sleep(interval)
