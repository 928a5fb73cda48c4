"""The console's pure helpers: what a form's fields become in the API's request, and what a page says."""

from __future__ import annotations

import pytest

from smsgw_client import Client
from smsgw_console.server import api_time, create_app


@pytest.mark.parametrize(
    "typed, sent",
    [
        ("2026-01-02T03:04", "2026-01-02T03:04:00Z"),
        ("2026-01-02T03:04:05", "2026-01-02T03:04:05Z"),
        ("2026-01-02T03:04:05.123", "2026-01-02T03:04:05.123Z"),
        ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z"),
        ("2026-01-02T03:04:05+01:00", "2026-01-02T03:04:05+01:00"),
        ("", ""),
    ],
)
def test_a_datetime_local_field_is_sent_as_utc(typed, sent):
    # Given what a datetime-local field (UTC, no zone) holds; When it becomes the API's time; Then ISO 8601 in UTC
    assert api_time(typed) == sent


@pytest.mark.parametrize("typed", ["yesterday", "2026-01-02", "12:00", "2026-01-02T03:04:05.123456", "x" * 40])
def test_what_is_not_a_datetime_local_value_reaches_the_api_as_typed(typed):
    # Given something else in a time field (a hand-edited URL); When it is sent; Then as typed, so the API's refusal
    # quotes what the operator wrote, not a value the console made up
    assert api_time(typed) == typed


def _health(error_rate: float, threshold: float) -> dict:
    return {
        "dead_letter_queues": [],
        "quarantine": {"count": 0, "days": 7, "complete": True},
        "eseye": {"error_rate": error_rate, "alarm_threshold": threshold, "window_minutes": 15, "sent": 10, "rejected": 5, "retried": 0},
    }


def test_an_error_rate_past_the_alarm_says_so_in_words_not_only_in_red():
    # Given Eseye's error rate above the alarm's threshold, and another below it
    app = create_app(Client("http://127.0.0.1:9"))
    with app.test_request_context("/health"):
        from flask import render_template

        # When the health figures are rendered
        breaching = render_template("_health.html", health=_health(0.5, 0.1), redrive_limit=100)
        quiet = render_template("_health.html", health=_health(0.01, 0.1), redrive_limit=100)

    # Then the breaching one says it in words, the other does not
    assert "above the alarm" in breaching and "above the alarm" not in quiet
