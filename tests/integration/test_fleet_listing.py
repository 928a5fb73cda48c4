"""GET /messages without msisdn: the whole fleet's messages, newest first, from a sharded time index (GSI4)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.conftest import load_event
from tests.helpers import SIM, body_of, history, hook_every_client, send
from tests.helpers import every_page as paged
from tests.helpers import listed_ids as ids

OTHER_SIM = "447700900456"
THIRD_SIM = "447700900789"


def fleet(stack, **query: str) -> dict[str, Any]:
    event = load_event("history_by_msisdn")
    event["queryStringParameters"] = query or None
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} or None
    return stack.invoke("HistoryFunction", event)


def at(seconds_ago: float) -> str:
    moment = time.time() - seconds_ago
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + f".{int(moment * 1000) % 1000:03d}Z"


def ago(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - seconds))


def store(stack, message_id: str, seconds_ago: float, msisdn: str = SIM, **fields: Any) -> str:
    """A message written through the repository's create, as the send and inbound paths write them."""
    direction = fields.pop("direction", "mt")
    party = {"to": msisdn} if direction == "mt" else {"from": msisdn}
    created = at(seconds_ago)
    message = {"id": message_id, "direction": direction, "status": "delivered", "text": "x", "created_at": created, "updated_at": created}
    stack.deps().store.messages.create({**message, **party, "history": [], **fields})
    return message_id


def every_page(stack, **query: str) -> tuple[list[str], int]:
    return paged(lambda **q: fleet(stack, **q), **query)


@pytest.fixture
def queries(stack, monkeypatch):
    seen = {"queries": 0, "items": 0}

    def after_query(http_response, parsed, **_):
        seen["queries"] += 1
        seen["items"] += parsed.get("ScannedCount", 0)

    hook_every_client(monkeypatch, "after-call.dynamodb.Query", after_query)
    return seen


def test_the_fleet_listing_is_newest_first_across_sims_hours_and_directions(stack):
    # Given messages of three SIMs over the last few hours, an MO among them, and one sent through the API
    store(stack, "m-3h", 3 * 3600, SIM)
    store(stack, "m-2h", 2 * 3600 + 60, OTHER_SIM)
    store(stack, "mo-90m", 90 * 60, THIRD_SIM, direction="mo", status="received")
    store(stack, "m-10m", 600, OTHER_SIM)
    sent = send(stack)
    assert sent["statusCode"] in (200, 201, 202), sent["body"]
    sent_id = body_of(sent)["id"]

    # When the fleet is listed without an msisdn
    response = fleet(stack)

    # Then every message is there, newest first, whole
    assert ids(response) == [sent_id, "m-10m", "mo-90m", "m-2h", "m-3h"]
    first = body_of(response)["items"][0]
    assert first["to"] == SIM and first["status"]
    # and the rest of the default 24 hours (each hour a query per shard) holds nothing more
    assert every_page(stack)[0] == [sent_id, "m-10m", "mo-90m", "m-2h", "m-3h"]


def test_each_filter_narrows_the_fleet_listing(stack):
    # Given messages that differ in status, direction, batch, client reference and age
    store(stack, "delivered", 100, SIM)
    store(stack, "failed", 200, OTHER_SIM, status="failed")
    store(stack, "mo", 300, THIRD_SIM, direction="mo", status="received")
    store(stack, "batched", 400, SIM, batch_id="b-1")
    store(stack, "ref", 500, OTHER_SIM, client_ref="order-7")
    store(stack, "old", 3 * 86400, SIM)

    # When each filter is applied, Then only its messages come back
    assert ids(fleet(stack, status="failed")) == ["failed"]
    assert ids(fleet(stack, direction="mo")) == ["mo"]
    assert ids(fleet(stack, direction="mt")) == ["delivered", "failed", "batched", "ref"]
    assert ids(fleet(stack, batch_id="b-1")) == ["batched"]
    assert ids(fleet(stack, client_ref="order-7")) == ["ref"]
    assert ids(fleet(stack, since=ago(250), until=ago(150))) == ["failed"]
    # the default window is the last 24 hours; an older message is reached with since
    assert "old" not in ids(fleet(stack))
    assert every_page(stack, since=ago(4 * 86400), until=ago(2 * 86400))[0] == ["old"]


def test_all_failures_in_the_last_hour_are_one_call(stack, queries):
    # Given a busy last hour (many delivered messages across the fleet), a few failures in it, and older ones
    for n in range(120):
        store(stack, f"ok{n:03d}", 60 + n * 25, (SIM, OTHER_SIM, THIRD_SIM)[n % 3])
    recent = [store(stack, f"fail{n}", 100 + n * 700, OTHER_SIM, status="failed") for n in range(4)]
    store(stack, "fail-old", 2 * 3600, SIM, status="failed")

    # When the failures of the last hour are asked for
    response = fleet(stack, status="failed", since=ago(3600))

    # Then one call returns exactly them, newest first, with nothing left to page, and bounded work
    assert ids(response) == recent
    assert body_of(response)["next_cursor"] is None
    assert queries["queries"] <= 200


def test_paging_with_a_small_limit_returns_every_message_exactly_once_across_shards_and_hours(stack, queries):
    # Given 80 messages over three hours, spread over the index's shards
    expected = [store(stack, f"p{n:03d}", 30 + n * 130, (SIM, OTHER_SIM)[n % 2]) for n in range(80)]

    # When the fleet is read page by page, 7 at a time
    seen, pages = every_page(stack, limit="7", since=ago(4 * 3600))

    # Then every message comes exactly once, newest first, and no page did unbounded work
    assert seen == expected
    assert pages >= 80 // 7
    assert queries["queries"] <= 200 * pages


def test_a_narrow_filter_over_a_busy_window_returns_short_pages_with_a_cursor_until_done(stack, queries):
    # Given a busy window with one message of the batch asked for, near its start
    for n in range(300):
        store(stack, f"busy{n:03d}", 60 + n * 10, SIM)
    store(stack, "needle", 3200, SIM, batch_id="b-needle")

    # When the batch's messages are listed
    seen, pages = every_page(stack, batch_id="b-needle", since=ago(3300), limit="5")

    # Then the message is found once, and each request did bounded work
    assert seen == ["needle"]
    assert queries["queries"] <= 200 * pages


def test_a_fleet_cursor_is_bound_to_its_query(stack):
    # Given a first page of the fleet's failures
    for n in range(5):
        store(stack, f"f{n}", 60 + n, status="failed")
    cursor = body_of(fleet(stack, status="failed", limit="2"))["next_cursor"]
    assert cursor

    # When the cursor is used with another filter, with an msisdn, or edited
    other_filter = fleet(stack, status="delivered", limit="2", cursor=cursor)
    with_msisdn = history(stack, limit="2", cursor=cursor)
    edited = fleet(stack, status="failed", limit="2", cursor=cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1])

    # Then each is 400 invalid_cursor, and the cursor still works with its own query
    for response in (other_filter, with_msisdn, edited):
        assert response["statusCode"] == 400, response["body"]
        assert body_of(response)["error"]["code"] == "invalid_cursor"
    assert ids(fleet(stack, status="failed", limit="2", cursor=cursor)) == ["f2", "f3"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"direction": "sideways"}, "direction"),
        ({"status": "lost"}, "status"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01T00:00:00Z"}, "until"),
        ({"limit": "0"}, "limit"),
        ({"batch_id": "x" * 300}, "batch_id"),
        ({"client_ref": "a\u0000b"}, "client_ref"),
        ({"since": "2026-01-01T00:00:00Z", "until": "2026-01-09T00:00:00Z"}, "since"),
        ({"since": "0001-01-01T00:00:00+01:00"}, "since"),  # its UTC falls before the calendar's first day
        ({"until": "9999-12-31T23:30:00-01:00"}, "until"),
    ],
)
def test_bad_fleet_filters_are_422_naming_the_field(stack, query, field):
    # When the fleet is listed with a bad filter
    response = fleet(stack, **query)

    # Then it is 422 validation_error, and the error names the field
    assert response["statusCode"] == 422, response["body"]
    error = body_of(response)["error"]
    assert error["code"] == "validation_error"
    assert field in error["message"] or field in (error.get("details") or {})


def test_the_msisdn_listing_still_lists_one_sim_only(stack):
    # Given messages of two SIMs
    store(stack, "mine", 100, SIM)
    store(stack, "theirs", 50, OTHER_SIM)

    # When one SIM's messages are listed, Then only its own come back, as before
    assert ids(history(stack)) == ["mine"]
    # and an empty msisdn is still a validation error, not the fleet
    assert history(stack, msisdn="")["statusCode"] == 422
