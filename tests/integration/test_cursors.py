"""Page cursors are opaque, authenticated and bound to their query; every listing and replay does bounded work."""

from __future__ import annotations

import base64
import json
import time

import pytest

from tests.conftest import reset_caches
from tests.helpers import SIM, body_of, callback_records, history, hook_every_client, publish_all, replay, send, window


def assert_invalid_cursor(response):
    assert response["statusCode"] == 400, response["body"]
    assert body_of(response)["error"]["code"] == "invalid_cursor"


@pytest.fixture
def reads(stack, monkeypatch):
    """Items DynamoDB evaluated and queries made, by every client built from here on (the functions' own)."""
    seen = {"items": 0, "queries": 0}

    def after_query(http_response, parsed, **_):
        seen["queries"] += 1
        seen["items"] += parsed.get("ScannedCount", 0)

    hook_every_client(monkeypatch, "after-call.dynamodb.Query", after_query)
    return seen


def store_messages(stack, count: int, msisdn: str = SIM) -> None:
    """`count` delivered messages of one SIM, written directly (fast), a millisecond apart."""
    deps = stack.deps()
    base = time.time() - 3600
    items = []
    for n in range(count):
        at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(base + n)) + f".{n % 1000:03d}Z"
        message_id = f"bulk{n:06d}"
        items.append(
            {
                "PK": f"MSG#{message_id}",
                "SK": "META",
                "GSI1PK": f"MSISDN#{msisdn}",
                "GSI1SK": f"{at}#{message_id}",
                "id": message_id,
                "direction": "mt",
                "status": "delivered",
                "to": msisdn,
                "text": "x",
                "created_at": at,
                "updated_at": at,
                "history": [],
            }
        )
    deps.store.table.put_items(items)


def archive_events(stack, count: int, msisdn: str = SIM, event_type: str = "sms.mt.status") -> None:
    from smsgw.logic.publish import archive_item

    deps = stack.deps()
    start = time.time() - 120
    turn = start + count * 0.01 - (start + count * 0.01) % 3600
    if start < turn:  # all in one hour: an hour's archive shards are a request's worth of queries
        start = turn - count * 0.01 - 5
    events = []
    for n in range(count):
        at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start + n * 0.01)) + f".{n % 1000:03d}Z"
        data = {"id": f"ev{n:06d}", "status": "delivered", "direction": "mt", "to": msisdn}
        events.append(archive_item({"type": event_type, "id": f"ev{n:06d}:delivered", "time": at, "data": data, "msisdn": msisdn}, 0))
    deps.store.events.append(events)


# --- GET /messages ------------------------------------------------------------------------------------


def test_a_forged_history_cursor_is_400_invalid_cursor(stack):
    # Given a cursor made by hand in the old, readable format
    forged = base64.urlsafe_b64encode(
        json.dumps({"PK": "MSG#x", "SK": "META", "GSI1PK": "MSISDN#447700900999", "GSI1SK": "2026-01-01T00:00:00.000Z#x"}).encode()
    ).decode()
    # When it is presented / Then it is refused as a cursor, not a server failure
    assert_invalid_cursor(history(stack, cursor=forged))
    assert_invalid_cursor(history(stack, cursor="not a cursor at all"))
    assert_invalid_cursor(history(stack, cursor="a" * 5000))


def test_a_history_cursor_works_only_for_the_query_that_issued_it(stack):
    # Given two pages of one SIM's messages
    for n in range(3):
        send(stack, body={"to": SIM, "text": f"m{n}"})
    cursor = body_of(history(stack, limit="2"))["next_cursor"]
    assert cursor
    # When the cursor is used for the same query (the page size may change) / Then it pages on
    assert history(stack, limit="5", cursor=cursor)["statusCode"] == 200
    assert history(stack, msisdn="+" + SIM, cursor=cursor)["statusCode"] == 200  # the same SIM, spelt differently
    # When it is used for another SIM, another filter, or edited by one character / Then it is refused
    assert_invalid_cursor(history(stack, msisdn="447700900124", cursor=cursor))
    assert_invalid_cursor(history(stack, direction="mt", cursor=cursor))
    assert_invalid_cursor(history(stack, since="2020-01-01T00:00:00Z", cursor=cursor))
    edited = cursor[:-1] + ("A" if cursor[-1] != "A" else "B")
    assert_invalid_cursor(history(stack, cursor=edited))
    mac = cursor.split(".")[1]
    other = body_of(history(stack, limit="1"))["next_cursor"]
    assert_invalid_cursor(history(stack, cursor=f"{other.split('.')[0]}.{mac}"))  # a position spliced in


def test_a_sparse_filter_reads_a_bounded_number_of_items_per_request(stack, reads):
    # Given a SIM with 300 delivered messages and none blocked
    store_messages(stack, 300)
    # When a client asks for one blocked message
    reads.update(items=0, queries=0)
    first = history(stack, limit="1", status="blocked")
    # Then the request reads a bounded number of items and hands back a cursor to go on from
    assert first["statusCode"] == 200
    page = body_of(first)
    assert page["items"] == [] and page["next_cursor"]
    assert reads["items"] <= 200
    # and following the cursors reaches the end in a bounded number of requests
    requests, cursor = 1, page["next_cursor"]
    while cursor:
        reads.update(items=0)
        cursor = body_of(history(stack, limit="1", status="blocked", cursor=cursor))["next_cursor"]
        assert reads["items"] <= 200
        requests += 1
    assert requests <= 3


def test_cursors_survive_a_key_rotation_but_not_two(stack):
    # Given a cursor issued before the cursor key is rotated
    for n in range(3):
        send(stack, body={"to": SIM, "text": f"m{n}"})
    cursor = body_of(history(stack, limit="2"))["next_cursor"]
    secrets = stack.clients["secretsmanager"]
    secret_id = stack.physical("CursorSigningSecret")
    # When the key is rotated once (a new container reads the new key) / Then the cursor still works
    secrets.put_secret_value(SecretId=secret_id, SecretString="rotated-once-" + "x" * 40)
    reset_caches()
    assert [i["text"] for i in body_of(history(stack, limit="2", cursor=cursor))["items"]] == ["m0"]
    # and a cursor issued with the new key works too
    assert history(stack, limit="2", cursor=body_of(history(stack, limit="2"))["next_cursor"])["statusCode"] == 200
    # When it is rotated again / Then the first cursor is too old
    secrets.put_secret_value(SecretId=secret_id, SecretString="rotated-twice-" + "y" * 40)
    reset_caches()
    assert_invalid_cursor(history(stack, limit="2", cursor=cursor))


def test_a_container_with_the_old_key_cached_accepts_a_cursor_signed_with_the_new_one(stack):
    from smsgw.logic import history as listing

    # Given two containers, one of which read the cursor key before a rotation
    for n in range(3):
        send(stack, body={"to": SIM, "text": f"m{n}"})
    stale, fresh = stack.deps("HistoryFunction"), stack.deps("HistoryFunction")
    listing.list_messages({"msisdn": SIM, "limit": "2"}, stale)  # caches the key of the day
    stack.clients["secretsmanager"].put_secret_value(SecretId=stack.physical("CursorSigningSecret"), SecretString="new-" + "z" * 60)
    # When the other container issues a cursor with the new key, and the client's next page lands on the first
    cursor = listing.list_messages({"msisdn": SIM, "limit": "2"}, fresh)["next_cursor"]
    page = listing.list_messages({"msisdn": SIM, "limit": "2", "cursor": cursor}, stale)
    # Then the page follows: the stale container read the key again rather than refuse the cursor
    assert [i["text"] for i in page["items"]] == ["m0"]


# --- POST /events/replay ------------------------------------------------------------------------------


def old_style_cursor(after) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode().rstrip("=")


def test_a_crafted_replay_cursor_cannot_leave_the_requested_range(stack):
    # Given events archived in the last few minutes
    send(stack)
    publish_all(stack)
    # When a cursor is crafted to start far before the range, or holds a number or a word
    for after in ("2000-01-01T00:00:00.000Z", 12345, "yesterday", None, ["x"]):
        response = replay(stack, {**window(), "cursor": old_style_cursor(after)})
        # Then it is refused: nothing is republished, and never a 500
        assert_invalid_cursor(response)
    for cursor in (12345, True, "", "x.y", "%%%", "a" * 5000):
        response = replay(stack, {**window(), "cursor": cursor})
        assert response["statusCode"] in (200, 400), response
        if response["statusCode"] == 200:  # an empty cursor is no cursor
            assert cursor == ""


def test_a_replay_cursor_is_bound_to_its_range_and_filters(stack):
    for _ in range(2):
        send(stack)
    publish_all(stack)
    request = {**window(), "limit": 1}
    cursor = body_of(replay(stack, request))["next_cursor"]
    assert replay(stack, {**request, "limit": 3, "cursor": cursor})["statusCode"] == 200
    assert_invalid_cursor(replay(stack, {**request, "since": "2020-01-01T00:00:00Z", "until": "2020-01-02T00:00:00Z", "cursor": cursor}))
    assert_invalid_cursor(replay(stack, {**request, "type": "sms.mo.received", "cursor": cursor}))
    assert_invalid_cursor(replay(stack, {**request, "msisdn": "447700900999", "cursor": cursor}))


def test_a_replay_reads_a_bounded_number_of_items_and_queries_per_request(stack, reads):
    # Given 2,100 archived events, none of them for the SIM asked about
    archive_events(stack, 2100, msisdn="447700900555")
    # When a replay asks for one SIM's events over a week
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60 - 7 * 86400 + 1))
    reads.update(items=0, queries=0)
    first = body_of(replay(stack, {"since": since, "until": until, "msisdn": SIM, "limit": 1}))
    # Then it stops at its budget with a cursor, having republished nothing
    assert (first["republished"], bool(first["next_cursor"])) == (0, True)
    assert reads["items"] <= 2000 and reads["queries"] <= 200
    reads.update(items=0, queries=0)
    second = body_of(replay(stack, {"since": since, "until": until, "msisdn": SIM, "limit": 1, "cursor": first["next_cursor"]}))
    assert second == {"republished": 0, "failed": 0, "next_cursor": None}
    assert reads["items"] <= 2000 and reads["queries"] <= 200


def test_a_replay_republishes_each_event_once_and_starts_no_status_callback(stack):
    from smsgw.logic.publish import archive_item

    # Given a message that asked for status callbacks, whose events went out and were delivered to the callback queue
    send(stack, body={"to": SIM, "text": "x", "status_callback": "https://receiver.example.com/hook"})
    publish_all(stack)
    assert len(callback_records(stack)["Records"]) == 2
    stack.clients["sqs"].purge_queue(QueueUrl=stack.physical("CallbackQueue"))
    # and an archive that holds one event twice (a publisher retry at another moment)
    [stored] = [i for i in stack.clients["dynamodb"].scan(TableName=stack.table)["Items"] if i["PK"]["S"].startswith("EVT#")][:1]
    event = json.loads(stored["event"]["S"])
    later = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 1)) + ".999Z"
    stack.deps().store.events.append([archive_item({**event, "time": later, "msisdn": SIM}, 0)])
    # When the window is replayed
    from tests.helpers import received_events, subscribe

    url = subscribe(stack)
    result = body_of(replay(stack, window()))
    # Then every event is republished once
    ids = [e["id"] for e in received_events(stack, url)]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 2 and result["republished"] == 2
    # and no status callback is started again (they have their own retries)
    assert callback_records(stack)["Records"] == []
