"""What a webhook token holder can make the gateway keep is bounded: in count, in size and in time."""

from __future__ import annotations

import json
import time
import uuid

from tests.conftest import load_event
from tests.helpers import webhook_event

DAY = 86400


def receipt_event(message_id: str, reference: str = "ref1") -> dict:
    event = load_event("receipt_get_delivered")
    fields = {"messageid": message_id, "referenceid": reference, "statuscode": "delivered", "status": "delivered"}
    event["queryStringParameters"] = fields
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in fields.items()}
    return event


def table_items(stack) -> list[dict]:
    client, items, start = stack.clients["dynamodb"], [], None
    while True:
        page = client.scan(TableName=stack.table, **({"ExclusiveStartKey": start} if start else {}))
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return items


def item_bytes(item: dict) -> int:
    return len(json.dumps(item))


def test_a_thousand_receipts_for_unknown_ids_create_bounded_storage(stack):
    # Given a token holder who sends 1,000 receipts for ids the gateway never issued
    handler = stack.handler("ReceiptWebhookFunction")
    before = len(table_items(stack))
    for _ in range(1000):
        assert handler(receipt_event(uuid.uuid4().hex))["statusCode"] == 200
    # When the table is looked at
    now = time.time()
    kept = [i for i in table_items(stack) if i["PK"]["S"].startswith("MSG#")]
    # Then there is one small placeholder per id, each gone within the orphan retention (7 days), not 400
    assert len(table_items(stack)) - before == len(kept) == 1000
    assert max(item_bytes(i) for i in kept) < 2048
    assert all(now < int(i["ttl"]["N"]) <= now + 7 * DAY + 60 for i in kept)


def test_receipts_for_one_unknown_id_do_not_grow_its_placeholder_without_bound(stack):
    # Given 50 different receipts for one id the gateway does not have
    handler = stack.handler("ReceiptWebhookFunction")
    message_id = uuid.uuid4().hex
    for n in range(50):
        assert handler(receipt_event(message_id, reference=f"ref{n}"))["statusCode"] == 200
    # Then its placeholder holds a bounded number of them, and its expiry was not pushed back by the later ones
    [placeholder] = [i for i in table_items(stack) if i["PK"]["S"] == f"MSG#{message_id}"]
    assert len(placeholder["orphan_receipts"]["L"]) <= 8
    assert int(placeholder["ttl"]["N"]) <= time.time() + 7 * DAY + 60


def test_quarantined_requests_are_capped_and_expire_in_days(stack):
    # Given an unusable MO request of 60 KB (under the 64 KB limit) with many long headers
    event = webhook_event("mo", b"nothing=" + b"a" * (60 * 1024), "application/x-www-form-urlencoded")
    event["headers"].update({f"X-Junk-{n}": "j" * 2000 for n in range(80)})
    response = stack.invoke("MoWebhookFunction", event)
    assert response["statusCode"] == 400
    # When its quarantine record is read
    [kept] = [i for i in table_items(stack) if i["PK"]["S"].startswith("Q#")]
    request = kept["request"]["M"]
    # Then it holds a capped body with the original's size and digest, capped headers, and expires in 14 days
    assert len(request["body"]["S"]) <= 4096 and int(request["body_bytes"]["N"]) == len(b"nothing=") + 60 * 1024
    assert request["body_truncated"]["BOOL"] is True and len(request["body_sha256"]["S"]) == 64
    assert len(request["headers"]["M"]) <= 50 and all(len(v["S"]) <= 256 for v in request["headers"]["M"].values())
    assert item_bytes(kept) < 32 * 1024
    assert int(kept["ttl"]["N"]) <= time.time() + 14 * DAY + 60


def test_an_unfinished_concatenation_buffer_expires_in_days_not_with_the_messages(stack):
    from tests.helpers import mo
    from tests.pdus import long_message

    # Given a token holder who sends the first part of a long MO and never the rest
    first, _second = long_message("A long report that never ends", 0x33, per_part=16)
    assert mo(stack, {"source": "447700900123", "message_id": "part-1", "binary": first})["statusCode"] == 200
    # Then its buffer goes within ConcatBufferRetentionDays (3), not the 400-day message retention
    now = time.time()
    [buffer] = [i for i in table_items(stack) if i["PK"]["S"].startswith("CONCAT#")]
    assert now + DAY < int(buffer["ttl"]["N"]) <= now + 3 * DAY + 60  # it outlives the 24 h window it is swept in
