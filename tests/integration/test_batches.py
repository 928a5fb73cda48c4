"""Batches (POST /batches and the fan-out) as deployed, against moto and the Eseye simulator."""

import json
import time

import pytest

from tests.conftest import load_event
from tests.helpers import (
    body_of,
    passing_filters,
    receipt,
    received_events,
    run_dispatcher,
    stream_batch,
    stream_records,
    subscribe,
    validate_event,
)

BATCH_QUEUE = "BatchQueue"


def batch_request(stack, event_name, body=None, batch_id=None, query=None, headers=None):
    event = load_event(event_name)
    if body is not None:
        event["body"] = json.dumps(body)
    if batch_id is not None:
        suffix = "/messages" if event_name == "batches_messages" else ""
        event.update(path=f"/batches/{batch_id}{suffix}", pathParameters={"id": batch_id})
    if query is not None:
        event["queryStringParameters"] = query
    if headers is not None:
        event["headers"] = {"Content-Type": "application/json", **headers}
    return stack.invoke("BatchesFunction", event)


def post_batch(stack, body, key=None):
    return batch_request(stack, "batches_post", body, headers={"Idempotency-Key": key} if key else {})


def batch_of(stack, batch_id):
    return body_of(batch_request(stack, "batches_get", batch_id=batch_id))


def fan_out(stack, limit=None):
    """Run the batch queue's jobs (plans queue chunks) until it is empty, or `limit` jobs ran."""
    ran = 0
    while jobs := stack.queue_jobs(BATCH_QUEUE, wait=0):
        for job in jobs:
            if limit is not None and ran >= limit:
                _requeue(stack, [job])
                continue
            event = json.loads(json.dumps(load_event("batch_fanout_chunk")))
            event["Records"][0]["body"] = json.dumps(job)
            assert stack.invoke("BatchFanoutFunction", event) == {"batchItemFailures": []}
            ran += 1
        if limit is not None and ran >= limit:
            return ran
    return ran


def _requeue(stack, jobs):
    url = stack.physical(BATCH_QUEUE)
    for job in jobs:
        stack.clients["sqs"].send_message(QueueUrl=url, MessageBody=json.dumps(job))


def follow_stream(stack):
    """What the table stream drives: the SIM queues (and batch progress), then the events."""
    assert stack.invoke("SimQueueFunction", stream_batch(stack)) == {"batchItemFailures": []}
    publisher = passing_filters(stack, "PublisherFunction", stream_records(stack))
    assert stack.invoke("PublisherFunction", {"Records": publisher}) == {"batchItemFailures": []}


def sends_at_eseye(stack):
    """Every send request that reached Eseye (mtsmsapi), whatever Eseye answered."""
    return [r for r in stack.eseye.requests if r["request"] == "mtsmsapi"]


def deliver_all(stack, batch_id):
    """Receipts for every message of the batch Eseye has (the simulator cannot reach a webhook here)."""
    page = body_of(batch_request(stack, "batches_messages", batch_id=batch_id, query={"status": "sent", "limit": "100"}))
    for message in page["items"]:
        assert receipt(stack, message["id"])["statusCode"] == 200
    return [m["id"] for m in page["items"]]


SIMS = [f"4477009{n:05d}" for n in range(10, 13)]


def test_a_batch_is_answered_at_once_then_fans_out_sends_and_completes_with_an_event(stack):
    # Given a subscriber to the events
    subscriber = subscribe(stack)
    # When a batch to three SIMs is posted
    response = post_batch(stack, {"to": SIMS, "text": "FW CHECK", "client_ref": "fw"})
    # Then it is accepted at once, before any message exists
    assert response["statusCode"] == 202
    batch = body_of(response)
    assert (batch["state"], batch["total"], batch["skipped"]) == ("accepted", 3, 0)
    assert stack.deps().store.messages.get_many([]) == {}
    assert batch_of(stack, batch["id"])["state"] == "accepted"
    # When its fan-out runs (a plan job, then one chunk job)
    assert fan_out(stack) == 2
    # Then each SIM got one ordinary message of the batch, sent to Eseye
    after = batch_of(stack, batch["id"])
    assert after["state"] == "sending"
    follow_stream(stack)
    assert batch_of(stack, batch["id"])["counts"] == {"sent": 3}
    page = body_of(batch_request(stack, "batches_messages", batch_id=batch["id"], query={}))
    assert sorted(m["to"] for m in page["items"]) == SIMS
    assert {(m["batch_id"], m["status"], m["text"], m["client_ref"]) for m in page["items"]} == {(batch["id"], "sent", "FW CHECK", "fw")}
    # When every receipt comes and the stream is followed
    deliver_all(stack, batch["id"])
    follow_stream(stack)
    # Then the batch completed, with its counts, and sms.batch.completed went out once
    done = batch_of(stack, batch["id"])
    assert (done["state"], done["counts"]) == ("completed", {"delivered": 3})
    assert done["completed_at"] >= done["created_at"]
    events = [e for e in received_events(stack, subscriber) if e["type"] == "sms.batch.completed"]
    assert [e["data"]["counts"] for e in events] == [{"delivered": 3}]
    assert events[0]["data"]["id"] == batch["id"] and events[0]["data"]["state"] == "completed"
    validate_event(events[0])
    # and the batch's records expire with the messages
    items = stack.clients["dynamodb"].scan(TableName=stack.table)["Items"]
    records = [i for i in items if i["PK"]["S"] == f"BATCH#{batch['id']}"]
    assert len(records) == 2 and all("ttl" in i for i in records)


def test_invalid_recipients_are_listed_with_422_or_skipped_on_request(stack):
    # Given a batch with a malformed MSISDN and a duplicate among good ones
    body = {"to": [SIMS[0], "12ab", SIMS[1], SIMS[0]], "text": "PING"}
    # When it is posted as it is
    refused = post_batch(stack, body)
    # Then it is refused, each bad recipient named with its position and why
    assert refused["statusCode"] == 422
    details = body_of(refused)["error"]["details"]
    assert details["invalid_count"] == 2
    assert [(i["index"], i["to"], sorted(i["problems"])) for i in details["invalid"]] == [(1, "12ab", ["to"]), (3, SIMS[0], ["to"])]
    assert "duplicate" in details["invalid"][1]["problems"]["to"]
    assert stack.queue_jobs(BATCH_QUEUE, wait=0) == []
    # When it is posted with skip_invalid
    accepted = post_batch(stack, {**body, "skip_invalid": True})
    # Then the rest is accepted and the skipped ones are reported
    assert accepted["statusCode"] == 202
    batch = body_of(accepted)
    assert (batch["total"], batch["skipped"]) == (4, 2)
    assert [s["index"] for s in batch["skipped_recipients"]] == [1, 3]
    fan_out(stack)
    follow_stream(stack)
    assert batch_of(stack, batch["id"])["counts"] == {"sent": 2}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "x"}, "to"),
        ({"to": SIMS, "group": "fleet", "text": "x"}, "to"),
        ({"to": SIMS}, "text"),
        ({"to": SIMS, "text": "x", "data": "00"}, "text"),
        ({"to": SIMS, "text": "x", "expires_at": "yesterday"}, "expires_at"),
        ({"to": SIMS, "text": "x", "colour": "red"}, "colour"),
        ({"to": SIMS, "text": "x" * 161}, "text"),
        ({"to": SIMS, "text": "x", "skip_invalid": "yes"}, "skip_invalid"),
        ({"to": [f"4477{n:08d}" for n in range(10_001)], "text": "x"}, "to"),
        ({"to": SIMS, "text": "x", "variables": {"a": "b"}}, "variables"),
    ],
)
def test_a_bad_batch_request_is_refused_naming_the_field(stack, body, field):
    # When a batch request is wrong in one field
    response = post_batch(stack, body)
    # Then it is refused with 422 naming that field, and nothing is queued
    assert response["statusCode"] == 422, body_of(response)
    error = body_of(response)["error"]
    assert field in (error.get("details") or {}).get("fields", {}) or field in error["message"]
    assert stack.queue_jobs(BATCH_QUEUE, wait=0) == []


def test_a_retried_batch_with_the_same_idempotency_key_is_the_same_batch_and_sends_nothing_twice(stack):
    # Given a batch posted with an Idempotency-Key and fanned out
    body = {"to": SIMS, "text": "WAKE"}
    first = body_of(post_batch(stack, body, key="wake-1"))
    fan_out(stack)
    sent = len(sends_at_eseye(stack))
    # When the client retries it (its answer was lost), and even the fan-out jobs run again
    again = post_batch(stack, body, key="wake-1")
    fan_out(stack)
    _requeue(stack, [{"batch": first["id"], "kind": "chunk", "chunk": 0}])
    fan_out(stack)
    # Then it is the same batch, and no SIM got the command twice
    assert again["statusCode"] == 202 and body_of(again)["id"] == first["id"]
    assert len(sends_at_eseye(stack)) == sent == 3
    # and the same key with another body is a conflict
    conflict = post_batch(stack, {**body, "text": "SLEEP"}, key="wake-1")
    assert conflict["statusCode"] == 409


def test_a_cancel_mid_way_stops_every_message_not_yet_sent(stack):
    subscriber = subscribe(stack)
    # Given a batch of 120 SIMs (five chunks) whose first chunk went out
    sims = [f"4477018{n:05d}" for n in range(120)]
    batch = body_of(post_batch(stack, {"to": sims, "text": "RESET"}))
    fan_out(stack, limit=2)  # the plan and the first chunk
    sent_before = len(sends_at_eseye(stack))
    assert sent_before == 25
    # When the batch is cancelled
    cancelled = batch_request(stack, "batches_delete", batch_id=batch["id"])
    assert cancelled["statusCode"] == 200 and body_of(cancelled)["state"] == "cancelled"
    # and the rest of its fan-out runs
    fan_out(stack)
    # Then no message reached Eseye after the cancel
    assert len(sends_at_eseye(stack)) == sent_before
    # and once the sent ones are delivered, the batch ends cancelled, with everything counted
    follow_stream(stack)
    deliver_all(stack, batch["id"])
    follow_stream(stack)
    done = batch_of(stack, batch["id"])
    assert (done["state"], done["counts"]) == ("cancelled", {"cancelled": 95, "delivered": 25})
    assert done["completed_at"]
    [event] = [e for e in received_events(stack, subscriber) if e["type"] == "sms.batch.completed"]
    assert (event["data"]["state"], event["data"]["counts"]) == ("cancelled", {"cancelled": 95, "delivered": 25})
    validate_event(event)
    # and cancelling again changes nothing, while an unknown batch is 404
    assert body_of(batch_request(stack, "batches_delete", batch_id=batch["id"]))["state"] == "cancelled"
    assert batch_request(stack, "batches_get", batch_id="0" * 32)["statusCode"] == 404


def save(stack, name, body):
    """PUT /commands/{name}, through CommandsFunction."""
    event = load_event("commands_put")
    event.update(path=f"/commands/{name}", pathParameters={"name": name}, body=json.dumps(body))
    return stack.invoke("CommandsFunction", event)


def put(stack, name, members):
    """PUT /groups/{name}, through GroupsFunction."""
    event = load_event("groups_put")
    event.update(path=f"/groups/{name}", pathParameters={"name": name}, body=json.dumps({"members": members}))
    return stack.invoke("GroupsFunction", event)


def test_a_batch_to_a_group_renders_a_saved_command_with_shared_and_per_recipient_variables(stack):
    # Given a group of three SIMs and a command with two variables
    fleet = [f"4477019{n:05d}" for n in range(1002, 1005)]
    assert put(stack, "depot-9", fleet)["statusCode"] == 201
    variables = {"key": {"pattern": "[A-Z]{1,8}", "max_length": 8}, "value": {"pattern": "[0-9]{1,4}", "max_length": 4}}
    assert save(stack, "set-kv", {"text": "SET {key}={value}", "variables": variables})["statusCode"] == 201
    # When a batch sends the command to the group with the batch's variables
    to_group = post_batch(stack, {"group": "depot-9", "command": "set-kv", "variables": {"key": "APN", "value": "7"}})
    # and another to listed SIMs, each with a value of its own over the batch's
    recipients = [{"to": sim, "variables": {"value": str(n)}} for n, sim in enumerate(fleet)]
    listed = post_batch(stack, {"recipients": recipients, "command": "set-kv", "variables": {"key": "TIMER", "value": "0"}})
    assert (to_group["statusCode"], listed["statusCode"]) == (202, 202)
    assert body_of(to_group)["total"] == 3 and body_of(to_group)["command"] == "set-kv"
    fan_out(stack)
    follow_stream(stack)
    # Then each SIM got each rendered text, recorded with the command and its variables
    group_page = body_of(batch_request(stack, "batches_messages", batch_id=body_of(to_group)["id"], query={}))["items"]
    assert sorted((m["to"], m["text"], m["command"], m["variables"]["key"]) for m in group_page) == [
        (sim, "SET APN=7", "set-kv", "APN") for sim in fleet
    ]
    listed_page = body_of(batch_request(stack, "batches_messages", batch_id=body_of(listed)["id"], query={}))["items"]
    assert sorted((m["to"], m["text"]) for m in listed_page) == [(sim, f"SET TIMER={n}") for n, sim in enumerate(fleet)]
    assert sorted(m.destination for m in stack.eseye.messages.values()) == sorted(fleet * 2)


def test_a_recipient_whose_variables_break_the_command_is_named_and_others_are_sent_with_skip_invalid(stack):
    variables = {"value": {"pattern": "[0-9]{1,4}", "max_length": 4}}
    assert save(stack, "set-timer", {"text": "TIMER {value}", "variables": variables})["statusCode"] == 201
    recipients = [{"to": SIMS[0], "variables": {"value": "12"}}, {"to": SIMS[1], "variables": {"value": "twelve"}}, {"to": SIMS[2]}]
    # When a recipient's value does not match its pattern and another has none
    refused = post_batch(stack, {"recipients": recipients, "command": "set-timer"})
    # Then both are named, with the variable at fault
    assert refused["statusCode"] == 422
    invalid = body_of(refused)["error"]["details"]["invalid"]
    assert [(i["index"], sorted(i["problems"])) for i in invalid] == [(1, ["variables.value"]), (2, ["variables.value"])]
    # and an unknown command is refused naming the field
    unknown = post_batch(stack, {"to": SIMS, "command": "no-such-command"})
    assert unknown["statusCode"] == 422 and "command" in body_of(unknown)["error"]["details"]["fields"]
    # When sent with skip_invalid, the valid one goes
    accepted = body_of(post_batch(stack, {"recipients": recipients, "command": "set-timer", "skip_invalid": True}))
    assert (accepted["total"], accepted["skipped"]) == (3, 2)
    fan_out(stack)
    assert [m.fields["text"] for m in stack.eseye.messages.values()] == ["TIMER 12"]


def test_a_blocklisted_recipient_becomes_a_blocked_message_with_the_reason(stack):
    # Given a SIM on the blocklist
    event = load_event("list_put_block")
    event.update(path=f"/lists/block/{SIMS[1]}", pathParameters={"list_name": "block", "msisdn": SIMS[1]})
    assert stack.invoke("ListsFunction", event)["statusCode"] in (200, 201)
    # When a batch includes a blocklisted SIM
    batch = body_of(post_batch(stack, {"to": SIMS, "text": "PING"}))
    fan_out(stack)
    follow_stream(stack)
    # Then it is stored as blocked, with the reason, and never reaches Eseye
    blocked = body_of(batch_request(stack, "batches_messages", batch_id=batch["id"], query={"status": "blocked"}))["items"]
    assert [(m["to"], m["status"]) for m in blocked] == [(SIMS[1], "blocked")]
    assert "blocklist" in blocked[0]["history"][0]["cause"]
    assert SIMS[1] not in {m.destination for m in stack.eseye.messages.values()}
    assert batch_of(stack, batch["id"])["counts"] == {"blocked": 1, "sent": 2}


@pytest.mark.parametrize("source", ["to", "group"])
def test_a_batch_cancelled_before_its_fan_out_sends_nothing_and_completes_cancelled(stack, source):
    # Given a batch accepted but not yet fanned out
    if source == "group":
        assert put(stack, "depot-c", SIMS)["statusCode"] == 201
    batch = body_of(post_batch(stack, {source: SIMS if source == "to" else "depot-c", "text": "RESET"}))
    # When it is cancelled, and then its fan-out jobs run
    assert body_of(batch_request(stack, "batches_delete", batch_id=batch["id"]))["state"] == "cancelled"
    fan_out(stack)
    # Then nothing reached Eseye, and the batch completed cancelled with every recipient counted
    assert sends_at_eseye(stack) == []
    done = batch_of(stack, batch["id"])
    assert done["state"] == "cancelled" and done["completed_at"]
    assert done["counts"] == ({"cancelled": 3} if source == "to" else {})


def test_a_data_command_takes_no_variables(stack):
    assert save(stack, "reboot-bin", {"data": "0102"})["statusCode"] == 201
    response = post_batch(stack, {"to": SIMS, "command": "reboot-bin", "variables": {"a": "b"}})
    assert response["statusCode"] == 422
    assert "variables" in body_of(response)["error"]["details"]["fields"]


def test_a_scheduled_batch_waits_for_its_send_at_then_its_sweep_sends_each_message_once(stack):
    from datetime import timedelta

    from smsgw.logic import sims

    # Given a batch to three SIMs scheduled ten minutes ahead
    sims_ = [f"4477019{n:05d}" for n in range(3)]
    send_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 600))
    batch = body_of(post_batch(stack, {"to": sims_, "text": "NIGHTLY", "send_at": send_at}))
    # When its fan-out runs
    fan_out(stack)
    follow_stream(stack)
    # Then nothing reached Eseye: every message is scheduled for send_at, and the batch is still sending
    assert sends_at_eseye(stack) == []
    page = body_of(batch_request(stack, "batches_messages", batch_id=batch["id"], query={}))
    assert {(m["status"], m["send_at"]) for m in page["items"]} == {("scheduled", send_at.replace("Z", ".000Z"))}
    assert (batch_of(stack, batch["id"])["state"], batch_of(stack, batch["id"])["counts"]) == ("sending", {"scheduled": 3})
    # When the minute's sweep runs after send_at
    later = stack.deps("SchedulerFunction")
    later.clock = lambda: stack.deps().clock() + timedelta(minutes=11)
    assert sims.start_due_scheduled(later) == 3
    follow_stream(stack)
    run_dispatcher(stack)
    # Then each SIM got its message once, and a later sweep starts nothing again
    assert sorted(r["form"]["destination"] for r in sends_at_eseye(stack)) == sims_
    assert sims.start_due_scheduled(later) == 0


def test_a_scheduled_batch_cancelled_before_send_at_sends_nothing_and_ends_cancelled(stack):
    # Given a scheduled batch whose messages are waiting for their time
    send_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 600))
    batch = body_of(post_batch(stack, {"to": [f"4477019{n:05d}" for n in range(10, 13)], "text": "NIGHTLY", "send_at": send_at}))
    fan_out(stack)
    follow_stream(stack)
    # When it is cancelled
    assert body_of(batch_request(stack, "batches_delete", batch_id=batch["id"]))["state"] == "cancelled"
    fan_out(stack)  # its cancel job
    follow_stream(stack)
    # Then nothing was sent, and the batch ended cancelled with every message counted
    assert sends_at_eseye(stack) == []
    done = batch_of(stack, batch["id"])
    assert (done["state"], done["counts"]) == ("cancelled", {"cancelled": 3})
