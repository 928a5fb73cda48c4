"""Records that grow without bound (issue 9, section 6): histories, items and events stay within
DynamoDB's and SNS's limits, and one event SNS refuses never holds up its neighbours."""

from __future__ import annotations

import json

import botocore.client
import pytest
from botocore.exceptions import ClientError

from tests.conftest import load_event
from tests.helpers import body_of, get, received_events, sent_message, stream_batch, subscribe

SNS_LIMIT = 256 * 1024  # bytes: one message, and the whole of one PublishBatch request


def receipts(stack, message_id, count, status="failed", prefix="copy"):
    """`count` receipts with distinct references, through a warm receipt webhook."""
    handler = stack.handler("ReceiptWebhookFunction")
    event = load_event("receipt_get_delivered")
    for index in range(count):
        fields = {"messageid": message_id, "referenceid": f"{prefix}{index}", "statuscode": status, "status": status}
        event.update(queryStringParameters=fields, multiValueQueryStringParameters={k: [v] for k, v in fields.items()})
        assert handler(event)["statusCode"] == 200


def mt_item(message_id, status, history_entries, raw_size=300, **fields):
    at = "2026-11-25T12:00:00.000Z"
    history = [{"at": at, "event": "created", "status": "pending", "cause": "accepted"}]
    history += [
        {"at": at, "event": "refresh", "status": "sent", "cause": f"Eseye reports 'queued' ({n})", "detail": {"eseye": {"raw": "q" * raw_size}}}
        for n in range(history_entries - 1)
    ]
    return {
        "id": message_id,
        "direction": "mt",
        "to": "447700900001",
        "text": "REBOOT",
        "status": status,
        "created_at": at,
        "updated_at": at,
        "history": history,
        **fields,
    }


def stream_record(stack, sequence, new, old=None, key=None):
    """A stream record as Lambda delivers it, for an item change made before this code ran."""
    store = stack.deps().store
    image = {
        "Keys": {"PK": {"S": f"MSG#{key or new['id']}"}, "SK": {"S": "META"}},
        "NewImage": {k: store.table.serialize(v) for k, v in new.items()},
        "SequenceNumber": str(sequence),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if old is not None:
        image["OldImage"] = {k: store.table.serialize(v) for k, v in old.items()}
    return {"eventID": str(sequence), "eventName": "MODIFY" if old else "INSERT", "eventSource": "aws:dynamodb", "dynamodb": image}


@pytest.fixture
def sns_as_aws(monkeypatch):
    """SNS's batch limit, which moto does not check: a PublishBatch over 256 KiB in all is refused whole.
    Yields the sizes of every PublishBatch request made."""
    real = botocore.client.BaseClient._make_api_call
    sizes: list[int] = []

    def checked(self, operation, params):
        if operation == "PublishBatch":
            total = sum(
                len(e["Message"].encode())
                + sum(
                    len(k.encode()) + len(v["DataType"].encode()) + len(v["StringValue"].encode()) for k, v in e.get("MessageAttributes", {}).items()
                )
                for e in params["PublishBatchRequestEntries"]
            )
            sizes.append(total)
            if total > SNS_LIMIT:
                error = {"Error": {"Code": "BatchRequestTooLong", "Message": "The length of all the messages put together is more than the limit."}}
                raise ClientError(error, operation)
        return real(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", checked)
    return sizes


# --- 1. what changes nothing adds nothing ------------------------------------------------------------


def test_refreshes_that_learn_nothing_add_nothing_to_the_history(stack):
    # Given a message Eseye holds as queued (no receipt will come)
    message = sent_message(stack)
    first = body_of(get(stack, message["id"], refresh=True))
    # When the customer refreshes it again and again and Eseye says the same each time
    for _ in range(3):
        again = body_of(get(stack, message["id"], refresh=True))
        assert again["refresh"] == first["refresh"] == {"ok": True, "eseye_status": "queued"}
    # Then the history holds the one answer, not four copies of it
    assert again["history"] == first["history"]
    assert [e["event"] for e in again["history"]].count("refresh") == 1


def test_refreshes_while_eseye_is_down_note_the_outage_once(stack):
    # Given a sent message and an Eseye that stopped answering
    message = sent_message(stack)
    stack.eseye.stop()
    # When the customer refreshes three times
    answers = [body_of(get(stack, message["id"], refresh=True)) for _ in range(3)]
    # Then each answer says the refresh failed, and the history notes the failure once
    assert all(a["refresh"]["ok"] is False for a in answers)
    assert [e["event"] for e in answers[-1]["history"]].count("refresh") == 1


def test_a_new_answer_after_a_repeated_one_is_still_recorded(stack):
    # Given a refresh that noted "queued"
    message = sent_message(stack)
    get(stack, message["id"], refresh=True)
    # When Eseye then answers something else (it is down), and then "queued" again
    stack.eseye.stop()
    get(stack, message["id"], refresh=True)
    stack.eseye.start()
    final = body_of(get(stack, message["id"], refresh=True))
    # Then all three answers are in the history: only a repeat of the latest entry is dropped
    assert [e["event"] for e in final["history"]].count("refresh") == 3


# --- 2. a bounded history -------------------------------------------------------------------------------


def test_the_history_keeps_the_first_and_latest_entries_and_counts_the_rest(stack):
    from smsgw.adapters.store import HISTORY_LIMIT

    # Given a delivered message
    message = sent_message(stack)
    receipts(stack, message["id"], 1, status="delivered", prefix="real")
    created = stack.message_item(message["id"])["history"][0]
    # When Eseye sends 60 more receipts for copies of it (each is news, so each is kept)
    receipts(stack, message["id"], 60)
    # Then the history holds at most the bound: the first entry, the latest ones, and a count of the dropped
    shown = body_of(get(stack, message["id"]))
    history = shown["history"]
    assert len(history) <= HISTORY_LIMIT
    assert history[0] == created
    assert history[-1]["detail"]["receipt"]["referenceid"] == "copy59"
    assert shown["history_dropped"] == 2 + 1 + 60 - len(history)  # created, sent, delivered, 60 copies
    assert shown["status"] == "delivered"
    # And the receipts' dedup keys are bounded with it, while the latest receipt is still recognised
    stored = stack.message_item(message["id"])
    assert len(stored["receipt_keys"]) < HISTORY_LIMIT
    handler = stack.handler("ReceiptWebhookFunction")
    fields = {"messageid": message["id"], "referenceid": "copy59", "statuscode": "failed", "status": "failed"}
    assert handler({**load_event("receipt_get_delivered"), "queryStringParameters": fields})["statusCode"] == 200
    assert stack.message_item(message["id"])["history"] == stored["history"]


def test_a_message_with_a_short_history_shows_no_dropped_count(stack):
    message = sent_message(stack)
    assert "history_dropped" not in body_of(get(stack, message["id"]))


def test_an_item_stored_with_a_long_history_is_trimmed_by_its_next_write(stack):
    # Given a message stored by an earlier version with 480 history entries (about 190 KB)
    store = stack.deps().store
    item = mt_item("ab" * 16, "sent", 480)
    store.table.put({"PK": f"MSG#{item['id']}", "SK": "META", **item})
    # When a receipt arrives
    receipts(stack, item["id"], 1, status="delivered", prefix="r")
    # Then it applies, and the history is back within its bound, the count saying how much went
    stored = stack.message_item(item["id"])
    assert stored["status"] == "delivered"
    assert stored["history"][0]["event"] == "created"
    assert len(stored["history"]) + stored["history_dropped"] == 481


# --- 3. size guards at the limits ---------------------------------------------------------------------


def test_receipts_and_cancels_still_apply_after_many_large_answers(stack):
    from smsgw.logic.delivery import note
    from smsgw.models import Message

    # Given a sent message, and 70 distinct notes each carrying Eseye's largest raw answer (2000 characters, multi-byte)
    message = sent_message(stack)
    deps = stack.deps()
    current = Message.from_item(stack.message_item(message["id"]))  # as the repository hands it to logic
    for n in range(70):
        detail = {"kind": "unavailable", "reason": f"HTTP 5{n:02d}", "raw": "€" * 2000}
        current = note(deps, current, "retry_scheduled", f"Eseye unavailable (try {n}) " + "é" * 5000, eseye=detail)
    # Then the item is far from DynamoDB's 400 KB limit, and a receipt still applies
    receipts(stack, message["id"], 1, status="delivered", prefix="final")
    stored = stack.message_item(message["id"])
    assert stored["status"] == "delivered"
    assert len(json.dumps(stored).encode()) < 300_000


def test_one_huge_eseye_description_is_cut_to_fit_the_item(stack):
    from smsgw.logic.delivery import note
    from smsgw.models import Message

    # Given a sent message, and Eseye status answers whose description is a megabyte of text
    message = sent_message(stack)
    deps = stack.deps()
    current = Message.from_item(stack.message_item(message["id"]))  # as the repository hands it to logic
    for n in range(3):
        current = note(deps, current, "refresh", f"Eseye reports 'queued': {n}" + "x" * 1_000_000, sets={"eseye_description": "y" * 1_000_000})
    # Then every write applied, with the long text cut and marked
    stored = stack.message_item(message["id"])
    assert len(json.dumps(stored).encode()) < 100_000
    assert stored["history"][-1]["cause"].startswith("Eseye reports 'queued': 2") and stored["history"][-1]["cause"].endswith("[truncated]")


def test_an_event_over_snss_limit_is_cut_to_fit_and_marked(stack, sns_as_aws):
    # Given a change, already on the stream, to a message stored with 800 history entries (an event of ~370 KB)
    url = subscribe(stack)
    old = mt_item("cd" * 16, "sent", 800)
    new = {**mt_item("cd" * 16, "delivered", 800), "updated_at": "2026-11-25T12:00:01.000Z"}
    # When the publisher takes it
    result = stack.invoke("PublisherFunction", {"Records": [stream_record(stack, 100, new, old)]})
    # Then it is published within 256 KiB, marked truncated, with the first and latest entries and the dropped count
    assert result == {"batchItemFailures": []}
    [event] = received_events(stack, url)
    assert len(json.dumps(event, separators=(",", ":")).encode()) <= SNS_LIMIT
    data = event["data"]
    assert (event["id"], data["status"], data["truncated"]) == (f"{new['id']}:delivered", "delivered", True)
    assert data["history"][0] == new["history"][0] and data["history"][-1] == new["history"][-1]
    assert len(data["history"]) + data["history_dropped"] == 800
    from tests.helpers import validate_event

    validate_event(event)


def test_events_are_batched_within_snss_limit_for_a_whole_batch(stack, sns_as_aws):
    # Given ten changes whose events are about 45 KB each (450 KB together)
    url = subscribe(stack)
    records = []
    for n in range(10):
        message_id = f"{n:02x}" * 16
        old = mt_item(message_id, "pending", 40, raw_size=1000)
        records.append(stream_record(stack, 200 + n, {**old, "status": "sent"}, old))
    # When the publisher takes them
    result = stack.invoke("PublisherFunction", {"Records": records})
    # Then every event is published, in requests SNS accepts
    assert result == {"batchItemFailures": []}
    assert len(received_events(stack, url)) == 10
    assert sns_as_aws and max(sns_as_aws) <= SNS_LIMIT


# --- 4. one bad record never holds up its neighbours -----------------------------------------------


def refuse_publishing(monkeypatch, message_id, code="InvalidParameter", sender_fault=True):
    """SNS refuses the entries of one message, and takes the others."""
    real = botocore.client.BaseClient._make_api_call

    def partly(self, operation, params):
        if operation != "PublishBatch":
            return real(self, operation, params)
        entries = params["PublishBatchRequestEntries"]
        refused = [e for e in entries if json.loads(e["Message"])["data"]["id"] == message_id]
        taken = [e for e in entries if e not in refused]
        result = real(self, operation, {**params, "PublishBatchRequestEntries": taken}) if taken else {"Successful": [], "Failed": []}
        result["Failed"] = result.get("Failed", []) + [
            {"Id": e["Id"], "Code": code, "Message": "Invalid parameter", "SenderFault": sender_fault} for e in refused
        ]
        return result

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", partly)
    return real


def test_an_event_sns_refuses_for_good_is_set_aside_and_its_neighbours_publish(stack, monkeypatch):
    # Given three sent messages, and SNS refusing every event of the second as invalid
    url = subscribe(stack)
    first, refused, third = (sent_message(stack) for _ in range(3))
    refuse_publishing(monkeypatch, refused["id"])
    # When the publisher takes the batch
    result = stack.invoke("PublisherFunction", stream_batch(stack))
    # Then the batch succeeds: the neighbours' events are published, and the refused events are set aside, visibly
    assert result == {"batchItemFailures": []}
    published = {(e["data"]["id"], e["data"]["status"]) for e in received_events(stack, url)}
    assert published == {(m["id"], s) for m in (first, third) for s in ("pending", "sent")}
    aside = stack.queue_jobs("PublisherDeadLetterQueue", wait=0)
    assert sorted(a["event_id"] for a in aside) == [f"{refused['id']}:pending", f"{refused['id']}:sent"]
    assert all(a["reason"] == "sns_refused" and a["code"] == "InvalidParameter" for a in aside)


def test_an_event_sns_could_not_take_for_now_is_retried_and_its_neighbours_publish(stack, monkeypatch):
    # Given two sent messages, and SNS failing the second's events with a fault of its own (not ours)
    url = subscribe(stack)
    first, unlucky = sent_message(stack), sent_message(stack)
    batch = stream_batch(stack)
    real = refuse_publishing(monkeypatch, unlucky["id"], code="InternalError", sender_fault=False)
    # When the publisher takes the batch
    result = stack.invoke("PublisherFunction", batch)
    # Then only the unlucky records are reported for a retry; the others are published
    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    unlucky_records = {r["dynamodb"]["SequenceNumber"] for r in batch["Records"] if r["dynamodb"]["Keys"]["PK"]["S"] == f"MSG#{unlucky['id']}"}
    assert failed and failed <= unlucky_records
    assert {e["data"]["id"] for e in received_events(stack, url)} == {first["id"]}
    assert stack.queue_jobs("PublisherDeadLetterQueue", wait=0) == []
    # When SNS recovers and Lambda retries from the first failed record
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", real)
    retry = [r for r in batch["Records"] if int(r["dynamodb"]["SequenceNumber"]) >= min(int(s) for s in failed)]
    assert stack.invoke("PublisherFunction", {"Records": retry}) == {"batchItemFailures": []}
    assert {(e["data"]["id"], e["data"]["status"]) for e in received_events(stack, url)} >= {(unlucky["id"], "pending"), (unlucky["id"], "sent")}


def test_a_record_that_cannot_be_read_is_set_aside_and_its_neighbours_publish(stack):
    # Given a batch with a good change and a record whose image is not a message we can read
    url = subscribe(stack)
    message = sent_message(stack)
    batch = stream_batch(stack)
    broken = stream_record(stack, 1, {"direction": "mt", "status": "sent"}, key="ef" * 16)  # no id
    # When the publisher takes the batch
    result = stack.invoke("PublisherFunction", {"Records": [broken, *batch["Records"]]})
    # Then the good events are published and the broken record is set aside with what went wrong
    assert result == {"batchItemFailures": []}
    assert {e["data"]["id"] for e in received_events(stack, url)} == {message["id"]}
    [aside] = stack.queue_jobs("PublisherDeadLetterQueue", wait=0)
    assert (aside["reason"], aside["sequence_number"]) == ("unreadable_record", "1")
