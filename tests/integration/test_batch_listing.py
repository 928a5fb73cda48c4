"""GET /batches: recent batches, newest first, from their monthly partitions of GSI4, as the console lists them."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import load_event
from tests.helpers import body_of, hook_every_client, passing_filters, receipt, stream_batch, stream_records
from tests.helpers import every_page as paged
from tests.helpers import listed_ids as ids

SIMS = [f"4477009{n:05d}" for n in range(20, 23)]


def listing(stack, **query: str) -> dict[str, Any]:
    event = load_event("batches_list")
    event["queryStringParameters"] = query or None
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} or None
    return stack.invoke("BatchesFunction", event)


def every_page(stack, **query: str) -> tuple[list[str], int]:
    return paged(lambda **q: listing(stack, **q), **query)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


def stored(stack, created: datetime, state: str = "completed", **fields: Any) -> str:
    """A batch written through the repository's create (as POST /batches writes it), created at `created`."""
    batch_id = uuid.uuid4().hex
    at = iso(created)
    batch = {"id": batch_id, "state": state, "total": 1, "skipped": 0, "source": "to", "content": {"text": "PING"}, "options": {}}
    batch.update(created_at=at, updated_at=at, created_by="test", request_hash="h", chunks_total=1)
    if state == "completed":
        batch.update(completed_at=at, counts={"delivered": 1})
    assert stack.deps().store.batches.create({**batch, **fields}, [[{"to": SIMS[0]}]]) is None
    return batch_id


def batch_call(stack, event_name: str, batch_id: str | None = None, body: Any = None, query: dict | None = None):
    event = load_event(event_name)
    if body is not None:
        event["body"] = json.dumps(body)
        event["headers"] = {**event["headers"], "Idempotency-Key": uuid.uuid4().hex}  # each POST a batch of its own
    if batch_id is not None:
        suffix = "/messages" if event_name == "batches_messages" else ""
        event.update(path=f"/batches/{batch_id}{suffix}", pathParameters={"id": batch_id})
    if query is not None:
        event["queryStringParameters"] = query
    return stack.invoke("BatchesFunction", event)


def posted(stack, recipients: list[str], text: str = "FW CHECK") -> str:
    response = batch_call(stack, "batches_post", body={"to": recipients, "text": text})
    assert response["statusCode"] == 202, response["body"]
    return body_of(response)["id"]


def fan_out(stack) -> None:
    while jobs := stack.queue_jobs("BatchQueue", wait=0):
        for job in jobs:
            event = load_event("batch_fanout_chunk")
            event["Records"][0]["body"] = json.dumps(job)
            assert stack.invoke("BatchFanoutFunction", event) == {"batchItemFailures": []}


def follow_stream(stack) -> None:
    assert stack.invoke("SimQueueFunction", stream_batch(stack)) == {"batchItemFailures": []}
    publisher = passing_filters(stack, "PublisherFunction", stream_records(stack))
    assert stack.invoke("PublisherFunction", {"Records": publisher}) == {"batchItemFailures": []}


@pytest.fixture
def queries(stack, monkeypatch):
    seen = {"queries": 0}

    def after_query(http_response, parsed, **_):
        seen["queries"] += 1

    hook_every_client(monkeypatch, "after-call.dynamodb.Query", after_query)
    return seen


def test_batches_are_listed_newest_first_each_as_get_batch_answers_it(stack):
    # Given batches created over the last days, one of them through the API just now, and one 10 days old
    old = stored(stack, ago(10 * 86400))
    five_days = stored(stack, ago(5 * 86400))
    two_days = stored(stack, ago(2 * 86400), state="sending", chunks_total=1)
    hour = stored(stack, ago(3600), state="accepted")
    now = posted(stack, SIMS)

    # When the batches are listed without filters
    response = listing(stack)

    # Then those of the last 7 days come newest first, and nothing is left to page
    assert ids(response) == [now, hour, two_days, five_days]
    assert body_of(response)["next_cursor"] is None
    # each summary is what GET /batches/{id} answers
    for summary in body_of(response)["items"]:
        assert summary == body_of(batch_call(stack, "batches_get", batch_id=summary["id"]))
    first = body_of(response)["items"][0]
    assert (first["state"], first["total"], first["counts"], first["text"]) == ("accepted", 3, {"accepted": 3}, "FW CHECK")
    # and an older batch is reached with since
    assert old in ids(listing(stack, since=iso(ago(11 * 86400))))


def test_the_state_filter_lists_only_batches_in_that_state(stack):
    # Given batches in every state
    made = {state: [stored(stack, ago(n * 600 + 60), state=state) for n in range(2)] for state in ("accepted", "sending", "completed", "cancelled")}

    # When each state is asked for, Then exactly its batches come back, newest first
    for state, batch_ids in made.items():
        assert ids(listing(stack, state=state)) == batch_ids
    assert ids(listing(stack, state="fanning_out")) == []


def test_since_and_until_bound_the_window_across_months(stack):
    # Given batches either side of the start of this month
    month_start = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    before_month = stored(stack, month_start - timedelta(days=1))
    just_before = stored(stack, month_start - timedelta(hours=2))
    just_after = stored(stack, month_start + timedelta(hours=2))
    stored(stack, month_start - timedelta(days=4))  # before the window

    # When a window across the month boundary is listed
    window = {"since": iso(month_start - timedelta(days=3)), "until": iso(month_start + timedelta(days=2))}

    # Then its batches come from both months' partitions, newest first
    assert ids(listing(stack, **window)) == [just_after, just_before, before_month]
    assert every_page(stack, **window, limit="1") == ([just_after, just_before, before_month], 3)
    # and a narrower window holds only its own; until is included
    assert ids(listing(stack, since=iso(month_start - timedelta(hours=3)), until=iso(month_start + timedelta(hours=2)))) == [just_after, just_before]


def test_paging_returns_every_batch_exactly_once_with_bounded_work(stack, queries):
    # Given 30 batches over the last six days
    expected = [stored(stack, ago(60 + n * 17_000), state=("completed", "cancelled")[n % 2]) for n in range(30)]

    # When they are read 7 at a time, and the cancelled ones 4 at a time
    seen, pages = every_page(stack, limit="7")
    cancelled, cancelled_pages = every_page(stack, limit="4", state="cancelled")

    # Then each comes once, newest first, and no request made more than a few queries
    assert (seen, pages) == (expected, 5)
    assert cancelled == expected[1::2]
    assert queries["queries"] <= 12 * (pages + cancelled_pages)


def test_a_cursor_is_refused_when_tampered_with_or_used_with_another_query(stack):
    # Given a first page of cancelled batches
    for n in range(4):
        stored(stack, ago(60 + n), state="cancelled")
    cursor = body_of(listing(stack, state="cancelled", limit="2"))["next_cursor"]
    assert cursor
    payload, mac = cursor.split(".")
    # the same position signed for the fleet's message listing (GET /messages), whose positions look alike
    position = {"before": iso(ago(30)), "since": iso(ago(86400))}
    fleet_cursor = stack.deps("BatchesFunction").cursors.issue("fleet-messages", {"fleet": True}, position)

    # When the cursor is edited, used with another filter, or another listing's cursor is given
    attempts = [
        listing(stack, state="cancelled", limit="2", cursor=payload + "." + ("A" if mac[0] != "A" else "B") + mac[1:]),
        listing(stack, state="cancelled", limit="2", cursor=payload[:-1] + "." + mac),
        listing(stack, state="completed", limit="2", cursor=cursor),
        listing(stack, state="cancelled", limit="2", cursor="garbage"),
        listing(stack, cursor=fleet_cursor),
    ]

    # Then each is 400 invalid_cursor, and the cursor still works with its own query
    for response in attempts:
        assert response["statusCode"] == 400, response["body"]
        assert body_of(response)["error"]["code"] == "invalid_cursor"
    assert len(ids(listing(stack, state="cancelled", limit="2", cursor=cursor))) == 2


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"state": "running"}, "state"),
        ({"state": ""}, "state"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"since": "last week"}, "since"),
        ({"until": "2026-13-01T00:00:00Z"}, "until"),
        ({"since": "0001-01-01T00:00:00+01:00"}, "since"),
        ({"until": "0001-01-02T00:00:00Z"}, "since"),
        ({"since": "2026-01-01T00:00:00Z", "until": "2026-03-01T00:00:00Z"}, "since"),
        ({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
    ],
)
def test_bad_filters_are_422_naming_the_field(stack, query, field):
    # When the batches are listed with a bad filter
    response = listing(stack, **query)

    # Then it is 422 validation_error naming the field, never a 500
    assert response["statusCode"] == 422, response["body"]
    error = body_of(response)["error"]
    assert error["code"] == "validation_error"
    assert field in error["details"]["fields"]


def test_a_completed_and_a_cancelled_batch_are_listed_with_their_counts(stack):
    # Given a batch that was sent and delivered to every SIM
    done = posted(stack, SIMS[:2])
    fan_out(stack)
    follow_stream(stack)
    page = body_of(batch_call(stack, "batches_messages", batch_id=done, query={"status": "sent"}))
    for message in page["items"]:
        assert receipt(stack, message["id"])["statusCode"] == 200
    follow_stream(stack)
    # and a batch cancelled before its fan-out, and one still sending
    time.sleep(0.002)  # distinct creation times, so the order below is the order of creation
    cancelled = posted(stack, SIMS, text="STOP")
    assert batch_call(stack, "batches_delete", batch_id=cancelled)["statusCode"] == 200
    fan_out(stack)
    time.sleep(0.002)
    sending = posted(stack, SIMS[2:])
    fan_out(stack)
    follow_stream(stack)

    # When the batches are listed
    items = {b["id"]: b for b in body_of(listing(stack))["items"]}

    # Then each is there with its state and its messages counted by status
    assert list(items) == [sending, cancelled, done]
    assert (items[done]["state"], items[done]["counts"], items[done]["total"]) == ("completed", {"delivered": 2}, 2)
    assert (items[cancelled]["state"], items[cancelled]["counts"]) == ("cancelled", {"cancelled": 3})
    assert items[cancelled]["cancelled_at"] >= items[cancelled]["created_at"]
    assert (items[sending]["state"], items[sending]["counts"]) == ("sending", {"sent": 1})
    # and the state filter finds them too
    assert ids(listing(stack, state="completed")) == [done]
    assert ids(listing(stack, state="cancelled")) == [cancelled]


def test_a_page_stops_before_a_batch_whose_counts_would_read_past_the_chunk_budget(stack, monkeypatch):
    # Given five unfinished batches of two chunks each (their counts are read from their chunks), a completed
    # one among them (its counts are stored), and a budget of five chunk items a request
    from smsgw.logic import batches

    monkeypatch.setattr(batches, "LIST_CHUNK_BUDGET", 5)
    made = [stored(stack, ago(60 + n), state="sending", chunks_total=2) for n in range(5)]
    made.insert(2, stored(stack, ago(61.5)))

    # When the batches are listed page by page
    pages = []
    query: dict[str, str] = {}
    while True:
        page = body_of(listing(stack, **query))
        pages.append([b["id"] for b in page["items"]])
        if page["next_cursor"] is None:
            break
        query = {"cursor": page["next_cursor"]}

    # Then each page holds the batches whose chunks fit the budget, and every batch comes once
    assert pages == [made[:3], made[3:5], made[5:]]
