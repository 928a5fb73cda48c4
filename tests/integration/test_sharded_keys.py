"""Keys every message would share are sharded (issue 14, 'Scale on paper'): the event archive and the idempotency
records spread over many partitions, and whoever reads them still finds every record, once and in order."""

from __future__ import annotations

import json
import time

from tests.helpers import body_of, hook_every_client, replay, send

HOUR = 3600


def hour_start(seconds_ago: float) -> float:
    moment = time.time() - seconds_ago
    return moment - moment % HOUR


def stamp(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + f".{int(moment * 1000) % 1000:03d}Z"


def iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def archive(stack, moments: list[float], msisdns: tuple[str, ...] = ("447700900123",), into=None, prefix="m") -> list[str]:
    """Events archived as the publisher archives them (by `into`, a container's archive, or a new one), at
    `moments`; returns their ids in archive order."""
    from smsgw.logic.publish import archive_item

    events = []
    for n, moment in enumerate(moments):
        msisdn = msisdns[n % len(msisdns)]
        data = {"id": f"{prefix}{n:05d}", "status": "delivered", "direction": "mt", "to": msisdn}
        event = {"type": "sms.mt.status", "id": f"{prefix}{n:05d}:delivered", "time": stamp(moment), "data": data, "msisdn": msisdn}
        events.append(archive_item(event, 0))
    (into or stack.deps("PublisherFunction").store.events).append(events)
    return [json.loads(e.body)["id"] for e in sorted(events, key=lambda e: e.position)]


def archive_partitions(stack) -> dict[str, int]:
    items = stack.clients["dynamodb"].scan(TableName=stack.table)["Items"]
    counts: dict[str, int] = {}
    for item in items:
        if item["PK"]["S"].startswith("EVT#"):
            counts[item["PK"]["S"]] = counts.get(item["PK"]["S"], 0) + 1
    return counts


def replay_all(stack, request: dict, answers: list | None = None) -> list[dict]:
    """Every event a replay republishes, request after request along its cursor, in the order it publishes them
    (and each request's answer, in `answers`)."""
    from smsgw.logic import replay as replay_logic

    deps = stack.deps("ReplayFunction")
    published: list[dict] = []
    publish = deps.events.publish

    def recording(events, **kwargs):
        published.extend(events)
        return publish(events, **kwargs)

    deps.events.publish = recording
    cursor = None
    for _ in range(100):
        result = replay_logic.replay_events({**request, **({"cursor": cursor} if cursor else {})}, deps)
        if answers is not None:
            answers.append(result)
        assert result["failed"] == 0
        cursor = result["next_cursor"]
        if not cursor:
            return published
    raise AssertionError("the replay did not end")


def test_an_hours_events_spread_over_many_partitions_and_a_replay_returns_them_all_once_in_order(stack):
    from smsgw.adapters.store import EVENT_SHARDS

    # Given 600 events across an hour's end, archived as the publisher does
    start = hour_start(86400) - 30
    ids = archive(stack, [start + n * 0.1 for n in range(600)])
    # Then they sit in many partitions, none with more than a small share of them
    partitions = archive_partitions(stack)
    assert sum(partitions.values()) == 600
    assert len(partitions) >= EVENT_SHARDS and max(partitions.values()) <= 20
    # When they are replayed
    published = replay_all(stack, {"since": iso(start - 60), "until": iso(start + 180), "limit": 1000})
    # Then every event comes back exactly once, in the order of the archive
    assert [e["id"] for e in published] == ids


def test_a_replay_pages_across_the_shards_exactly_once_even_between_events_of_the_same_millisecond(stack, monkeypatch):
    from smsgw.adapters import store

    # Given 16 shards (fewer queries per page, the same merge) and 150 events across an hour's end, three at
    # each moment, so that pages end between events of the same millisecond that sit in different shards
    monkeypatch.setattr(store, "EVENT_SHARDS", 16)
    start = hour_start(86400) - 10
    ids = archive(stack, [start + (n // 3) * 0.4 for n in range(150)])
    assert len(archive_partitions(stack)) > 16
    # When they are replayed seven at a time, following the cursor
    published = replay_all(stack, {"since": iso(start - 60), "until": iso(start + 180), "limit": 7})
    # Then every event comes back exactly once, in the order of the archive
    assert [e["id"] for e in published] == ids


def test_a_filtered_replay_finds_one_sims_events_across_the_shards_once_in_order(stack, monkeypatch):
    from smsgw.adapters import store

    # Given 200 events of two SIMs, interleaved, in one hour, over 16 shards
    monkeypatch.setattr(store, "EVENT_SHARDS", 16)
    start = hour_start(7200) + 600
    ids = archive(stack, [start + n * 0.05 for n in range(200)], msisdns=("447700900123", "447700900456"))
    # When one SIM's events are replayed a few at a time
    published = replay_all(stack, {"since": iso(start - 1), "until": iso(start + 60), "msisdn": "447700900456", "limit": 9})
    # Then exactly that SIM's events come back, each once, in order
    assert [e["id"] for e in published] == [i for i in ids if int(i[1:6]) % 2 == 1]
    assert {e["msisdn"] for e in published} == {"447700900456"}


def test_a_weeks_replay_reads_only_the_partitions_that_hold_events(stack, monkeypatch):
    # Given a week in which only one hour holds events (ten of them)
    start = hour_start(3 * 86400) + 60
    ids = archive(stack, [start + n for n in range(10)])
    queries = []
    hook_every_client(monkeypatch, "after-call.dynamodb.Query", lambda **_: queries.append(1))
    # When the week is replayed through the API
    response = replay(stack, {"since": iso(time.time() - 7 * 86400 + 60), "until": iso(time.time()), "limit": 100})
    # Then all ten come back in one answer, from one read of the archive's markers and one per partition the
    # hour's events sit in: the week's empty hours cost nothing
    assert body_of(response) == {"republished": 10, "failed": 0, "next_cursor": None}
    assert len(queries) == 1 + len(archive_partitions(stack)) <= 11
    assert len(ids) == 10


def test_events_archived_before_the_shards_are_replayed_once_their_hour_is_marked(stack):
    from smsgw.logic.publish import archive_item

    # Given events archived before the shards came (one partition for the hour) and events archived since
    start = hour_start(5 * 3600) + 120
    deps = stack.deps("PublisherFunction")
    sim = "447700900123"
    old = [
        archive_item({"type": "sms.mt.status", "id": f"old{n}:sent", "time": stamp(start + n), "data": {"id": f"old{n}"}, "msisdn": sim}, 0)
        for n in range(3)
    ]
    deps.store.table.put_items([{"PK": f"EVT#{e.hour}", "SK": e.position, **e.to_item()} for e in old])
    ids = archive(stack, [start + 0.5 + n for n in range(3)])
    # When the operator marks the hours archived before (a one-off after upgrading)
    from tools.mark_archive_hours import main as mark_archive_hours

    assert mark_archive_hours(["--table", stack.table, "--days", "1"], client=stack.clients["dynamodb"]) == 0
    assert deps.store.events.mark_legacy_hour(stamp(start + 3600)[:13]) is False
    # Then a replay finds both, interleaved in time order, each once
    published = replay_all(stack, {"since": iso(start - 1), "until": iso(start + 60), "limit": 4})
    assert [e["id"] for e in published] == ["old0:sent", ids[0], "old1:sent", ids[1], "old2:sent", ids[2]]


def test_idempotency_records_spread_over_partitions_and_a_retry_finds_its_own(stack):
    # Given sends with twenty different Idempotency-Keys, each to a SIM of its own
    first = {}
    for n in range(20):
        response = send(stack, body={"to": f"4477009013{n:02d}", "text": "CONFIG"}, headers={"Idempotency-Key": f"fleet-{n}"})
        assert response["statusCode"] == 202, response["body"]
        first[n] = body_of(response)
    # When each request is retried
    for n in range(20):
        again = send(stack, body={"to": f"4477009013{n:02d}", "text": "CONFIG"}, headers={"Idempotency-Key": f"fleet-{n}"})
        # Then it gets the first answer, and Eseye got each message once
        assert (again["statusCode"], body_of(again)) == (202, first[n])
    assert len(stack.eseye.requests) == 20
    # and the twenty records sit in many partitions, none under one shared key, one record per request
    items = stack.clients["dynamodb"].scan(TableName=stack.table)["Items"]
    records = [i["PK"]["S"] for i in items if i["PK"]["S"].startswith("IDEM")]
    assert len(records) == 20 and "IDEM" not in records
    assert len(set(records)) >= 10


def test_commands_waiting_for_replies_spread_over_partitions_and_the_sweep_times_out_every_one(stack):
    from datetime import timedelta

    from smsgw.logic import replies

    # Given 24 commands that expect a reply within a minute, each to a SIM of its own, and one that waits
    # under the index's single partition of before the shards
    commands = [body_of(send(stack, body={"to": f"4477009014{n:02d}", "text": "STATUS?", "expect_reply_within": 60})) for n in range(25)]
    assert {c["reply_state"] for c in commands} == {"waiting"}
    old = stack.message_item(commands[-1]["id"])
    stack.clients["dynamodb"].update_item(
        TableName=stack.table,
        Key={"PK": {"S": f"MSG#{old['id']}"}, "SK": {"S": "META"}},
        UpdateExpression="SET GSI2PK = :old",
        ExpressionAttributeValues={":old": {"S": "REPLYWAIT"}},
    )
    # Then their waits sit in many partitions of the reply-wait index
    partitions = {stack.message_item(c["id"])["GSI2PK"] for c in commands[:-1]}
    assert len(partitions) >= 12 and "REPLYWAIT" not in partitions
    # When the sweep runs after their windows, with room for ten at a time
    later = stack.deps("ReplyTimeoutsFunction")
    later.clock = lambda: stack.deps().clock() + timedelta(minutes=2)
    swept = [replies.sweep_timeouts(later, limit=10) for _ in range(4)]
    # Then every command is timed out, once
    assert swept == [10, 10, 5, 0]
    assert {stack.message_item(c["id"])["reply_state"] for c in commands} == {"timed_out"}


def test_scheduled_messages_spread_over_the_sweep_index_and_every_one_starts_at_its_time(stack):
    from datetime import timedelta

    from smsgw.logic import sims

    # Given 40 messages scheduled two minutes ahead, each to a SIM of its own, and one of them indexed as
    # before the shards (under its id's last hex digit)
    send_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 120))
    scheduled = [body_of(send(stack, body={"to": f"4477009015{n:02d}", "text": "REPORT", "send_at": send_at})) for n in range(40)]
    assert {m["status"] for m in scheduled} == {"scheduled"}
    old = scheduled[-1]["id"]
    stack.clients["dynamodb"].update_item(
        TableName=stack.table,
        Key={"PK": {"S": f"MSG#{old}"}, "SK": {"S": "META"}},
        UpdateExpression="SET GSI3PK = :old",
        ExpressionAttributeValues={":old": {"S": f"SCHED#{old[-1]}"}},
    )
    # Then the sweep index holds them in more partitions than the 16 of before
    partitions = {stack.message_item(m["id"])["GSI3PK"] for m in scheduled[:-1]}
    assert len(partitions) > 16
    # When the minute's sweep runs after their time
    later = stack.deps("SchedulerFunction")
    later.clock = lambda: stack.deps().clock() + timedelta(minutes=3)
    # Then every one of them enters its SIM's queue, once
    assert sims.start_due_scheduled(later) == 40
    assert sims.start_due_scheduled(later) == 0
    assert "scheduled" not in {stack.message_item(m["id"])["status"] for m in scheduled}


def test_a_busy_publisher_marks_the_next_hours_shards_ahead_so_the_turn_of_the_hour_brings_no_burst_of_markers(stack):
    # Given a publisher archiving a busy hour's last minute (events in every shard)
    archive_ = stack.deps("PublisherFunction").store.events
    written: list[str] = []

    def count_markers(params, **_):
        requests = params["RequestItems"][stack.table]
        written.extend(r["PutRequest"]["Item"]["SK"]["S"] for r in requests if r["PutRequest"]["Item"]["PK"]["S"] == "EVTHOURS")

    archive_.table.client.meta.events.register("before-parameter-build.dynamodb.BatchWriteItem", count_markers)
    start = hour_start(86400) - 60
    ids = archive(stack, [start + n * 0.1 for n in range(500)], into=archive_)
    first_hour, next_hour = stamp(start)[:13], stamp(start + 60)[:13]
    assert {m[:13] for m in written} == {first_hour, next_hour}
    # When the next hour's first events come to the same container
    written.clear()
    later = archive(stack, [start + 60 + n * 0.01 for n in range(200)], into=archive_, prefix="n")
    # Then it writes them with no marker: every shard of the hour was marked ahead
    assert written == []
    published = replay_all(stack, {"since": iso(start - 1), "until": iso(start + 120), "limit": 1000})
    assert [e["id"] for e in published] == ids + later


def test_a_replay_of_many_busy_hours_goes_on_where_its_budget_stopped_it_and_misses_none(stack, monkeypatch):
    from smsgw.adapters import store

    # Given 16 shards and fourteen hours with forty events each: more partitions than one request may query
    monkeypatch.setattr(store, "EVENT_SHARDS", 16)
    start = hour_start(20 * 3600) + 30
    ids = archive(stack, [start + hour * 3600 + n * 2 for hour in range(14) for n in range(40)])
    assert len(archive_partitions(stack)) > 200
    # When they are replayed, a thousand at most per request
    answers: list[dict] = []
    published = replay_all(stack, {"since": iso(start - 60), "until": iso(start + 14 * 3600), "limit": 1000}, answers)
    # Then the requests, each stopped by its queries, together republish every event once, in order
    assert len(answers) > 1 and all(a["republished"] < 1000 for a in answers)
    assert [e["id"] for e in published] == ids
