"""The one exponential backoff: send retries (logic/delivery.py) and status callbacks (logic/callbacks.py)."""

from __future__ import annotations


def exponential(attempt: int, base: float, cap: float) -> float:
    """The wait after the `attempt`-th failure: base x 2^(attempt-1), at most `cap` (the exponent is bounded,
    so a huge attempt count cannot build a huge number)."""
    return float(min(cap, base * 2 ** min(max(attempt - 1, 0), 30)))
