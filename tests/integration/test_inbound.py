"""Receipts and MO webhooks, history, lists and the event publisher, handlers in-process against moto."""

from tests.conftest import load_event
from tests.helpers import body_of, mo, receipt, received_events, send, sent_message, stream_batch, submit_pdu, subscribe, validate_event


def test_get_receipt_delivers_the_message_and_keeps_raw_fields(stack):
    message = sent_message(stack)
    response = receipt(stack, message["id"], reference="3fd515e6")
    assert (response["statusCode"], response["body"]) == (200, "OK")
    stored = stack.message_item(message["id"])
    assert stored["status"] == "delivered"
    assert stored["history"][-1]["detail"]["receipt"] == {
        "messageid": message["id"],
        "referenceid": "3fd515e6",
        "statuscode": "delivered",
        "status": "delivered",
    }


def test_form_post_receipt_fails_the_message(stack):
    message = sent_message(stack)
    assert receipt(stack, message["id"], "failed", via="receipt_post_form_failed")["statusCode"] == 200
    assert stack.message_item(message["id"])["status"] == "failed"


def test_duplicate_receipt_changes_nothing(stack):
    message = sent_message(stack)
    receipt(stack, message["id"])
    before = stack.message_item(message["id"])
    assert receipt(stack, message["id"])["statusCode"] == 200
    assert stack.message_item(message["id"]) == before


def test_failed_after_delivered_is_kept_but_changes_no_status(stack):
    message = sent_message(stack)
    receipt(stack, message["id"], "delivered", reference="r1")
    receipt(stack, message["id"], "failed", reference="r2")
    stored = stack.message_item(message["id"])
    assert stored["status"] == "delivered"
    assert "ignored" in stored["history"][-1]["cause"]


def test_receipt_before_the_message_is_applied_when_it_is_stored(stack):
    from smsgw.logic import send as send_logic

    # Given a receipt for an id not stored yet
    early_id = "ab" * 16
    assert receipt(stack, early_id, "delivered")["statusCode"] == 200
    assert get_status(stack, early_id) == 404
    # When a message with that id is stored, the receipt is applied
    deps = stack.deps()
    request = send_logic.parse_send_request({"to": "447700900001", "text": "x"}, deps.clock())
    analysis, payload = send_logic.analyse(request)
    item = send_logic.new_message(request, analysis, payload, "https://example.test", deps, early_id, "owner", "hash")
    stored = deps.store.messages.create(item)
    from smsgw.logic import receipt as receipt_logic

    assert receipt_logic.apply_orphans(stored, deps)["status"] == "delivered"


def get_status(stack, message_id):
    event = load_event("get_message")
    event.update(path=f"/messages/{message_id}", pathParameters={"message_id": message_id})
    return stack.invoke("GetMessageFunction", event)["statusCode"]


def test_wrong_token_is_403_and_the_second_token_also_works(stack):
    message = sent_message(stack)
    assert receipt(stack, message["id"], token="wrong-token")["statusCode"] == 403
    assert receipt(stack, message["id"], token="tok-secondary-9876543210")["statusCode"] == 200


def test_missing_fields_are_400_and_quarantined(stack):
    response = stack.invoke("ReceiptWebhookFunction", load_event("receipt_missing_fields"))
    assert response["statusCode"] == 400
    quarantine_id = body_of(response)["error"]["details"]["quarantine_id"]
    items = stack.clients["dynamodb"].scan(TableName=stack.table)["Items"]
    kept = [i for i in items if i["PK"]["S"].startswith("Q#") and quarantine_id in i["SK"]["S"]]
    assert kept and kept[0]["request"]["M"]["query"]["M"]["referenceid"]["S"] == "x"


def test_mo_form_text_is_stored(stack):
    response = stack.invoke("MoWebhookFunction", load_event("mo_form_text"))
    assert response["statusCode"] == 200
    history = body_of(stack.invoke("HistoryFunction", load_event("history_by_msisdn")))
    [message] = history["items"]
    assert (message["direction"], message["from"], message["text"], message["status"]) == ("mo", "447700900123", "TEMP 21.5C OK", "received")


def test_duplicate_mo_is_ignored(stack):
    stack.invoke("MoWebhookFunction", load_event("mo_form_text"))
    stack.invoke("MoWebhookFunction", load_event("mo_form_text"))
    assert len(body_of(stack.invoke("HistoryFunction", load_event("history_by_msisdn")))["items"]) == 1


def test_mo_ucs2_pdu_in_json_is_decoded(stack):
    assert stack.invoke("MoWebhookFunction", load_event("mo_json_binary_ucs2"))["statusCode"] == 200
    [message] = body_of(stack.invoke("HistoryFunction", load_event("history_by_msisdn")))["items"]
    assert (message["text"], message["encoding"]) == ("中文OK", "ucs2")


def test_mo_7bit_and_8bit_pdus(stack):
    mo(stack, {"source": "447700900123", "message_id": "a1", "binary": submit_pdu("Alarm {3}")})
    mo(stack, {"source": "447700900123", "message_id": "a2", "binary": submit_pdu(dcs=0x04, octets=b"\x01\x02\xff")})
    items = body_of(stack.invoke("HistoryFunction", load_event("history_by_msisdn")))["items"]
    assert {(i.get("text"), i.get("data")) for i in items} == {("Alarm {3}", None), (None, "0102FF")}


def test_concatenated_mo_is_reassembled_once_all_parts_arrive(stack):
    parts = [submit_pdu(text, dcs=0x08, udh=bytes([0, 3, 0x42, 3, n])) for n, text in ((2, "two "), (1, "one "), (3, "three"))]
    for index, pdu in enumerate(parts):
        mo(stack, {"source": "447700900123", "message_id": f"p{index}", "binary": pdu})
        items = body_of(stack.invoke("HistoryFunction", load_event("history_by_msisdn")))["items"]
        assert len(items) == (1 if index == 2 else 0)
    [message] = items
    assert message["text"] == "one two three"
    assert [p["sequence"] for p in message["parts"]] == [1, 2, 3]
    mo(stack, {"source": "447700900123", "message_id": "p0", "binary": parts[0]})  # a late duplicate part
    assert len(body_of(stack.invoke("HistoryFunction", load_event("history_by_msisdn")))["items"]) == 1


def test_mo_from_a_blocked_number_is_stored_as_blocked_and_not_published(stack):
    assert (
        stack.invoke(
            "ListsFunction", {**load_event("list_put_block"), "pathParameters": {"msisdn": "447700900123"}, "path": "/lists/block/447700900123"}
        )["statusCode"]
        == 201
    )
    stack.invoke("MoWebhookFunction", load_event("mo_form_text"))
    [message] = body_of(stack.invoke("HistoryFunction", load_event("history_by_msisdn")))["items"]
    assert message["status"] == "blocked"
    url = subscribe(stack)
    stack.invoke("PublisherFunction", stream_batch(stack))
    assert received_events(stack, url) == []


def test_lists_api_records_who_and_when(stack):
    event = load_event("list_put_block")
    assert stack.invoke("ListsFunction", event)["statusCode"] == 201
    assert stack.invoke("ListsFunction", event)["statusCode"] == 200
    get = {**event, "httpMethod": "GET", "body": None}
    entry = body_of(stack.invoke("ListsFunction", get))
    assert (entry["msisdn"], entry["note"], entry["added_by"]) == ("447700900666", "stolen SIM", "arn:aws:iam::123456789012:user/local-developer")
    assert stack.invoke("ListsFunction", {**get, "httpMethod": "DELETE"})["statusCode"] == 200
    assert stack.invoke("ListsFunction", get)["statusCode"] == 404


def test_history_is_newest_first_and_paginates(stack):
    ids = [body_of(send(stack, body={"to": "447700900123", "text": f"m{n}"}))["id"] for n in range(3)]
    event = load_event("history_by_msisdn")
    event["queryStringParameters"] = {"msisdn": "+447700900123", "limit": "2"}
    first = body_of(stack.invoke("HistoryFunction", event))
    assert [i["id"] for i in first["items"]] == ids[::-1][:2]
    event["queryStringParameters"]["cursor"] = first["next_cursor"]
    second = body_of(stack.invoke("HistoryFunction", event))
    assert [i["id"] for i in second["items"]] == ids[:1]
    event["queryStringParameters"] = {"msisdn": "447700900123", "direction": "mo"}
    assert body_of(stack.invoke("HistoryFunction", event))["items"] == []
    event["queryStringParameters"] = {"msisdn": "nope"}
    assert stack.invoke("HistoryFunction", event)["statusCode"] == 422


def test_every_status_change_is_published_once_with_filterable_attributes(stack):
    url = subscribe(stack)
    message = sent_message(stack)
    receipt(stack, message["id"])
    receipt(stack, message["id"])  # duplicate: no second event
    stack.invoke("MoWebhookFunction", load_event("mo_form_text"))
    assert stack.invoke("PublisherFunction", stream_batch(stack)) == {"batchItemFailures": []}
    events = received_events(stack, url)
    assert [(e["type"], e["data"]["status"]) for e in events] == [
        ("sms.mt.status", "pending"),
        ("sms.mt.status", "sent"),
        ("sms.mt.status", "delivered"),
        ("sms.mo.received", "received"),
    ]
    assert events[2]["id"] == f"{message['id']}:delivered"
    for event in events:
        validate_event(event)


def test_sns_down_then_up_loses_no_event(stack, monkeypatch):
    url = subscribe(stack)
    sent_message(stack)
    batch = stream_batch(stack)
    # Given SNS refuses every publish
    import botocore.client

    real = botocore.client.BaseClient._make_api_call

    def failing(self, operation, params):
        if operation == "PublishBatch":
            raise botocore.exceptions.EndpointConnectionError(endpoint_url="https://sns")
        return real(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", failing)
    result = stack.invoke("PublisherFunction", batch)
    # Then every record is reported failed, so Lambda retries the batch
    assert result["batchItemFailures"], "failed events must be reported"
    # When SNS is back, the retry publishes them all
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", real)
    assert stack.invoke("PublisherFunction", batch) == {"batchItemFailures": []}
    assert [e["data"]["status"] for e in received_events(stack, url)] == ["pending", "sent"]


def test_mo_in_the_query_string_is_read_and_readable_by_id(stack):
    event = load_event("mo_form_text")
    fields = {"source": "447700900123", "destination": "447000000001", "message_id": "q1", "text": "via query"}
    event.update(body=None, queryStringParameters=fields, multiValueQueryStringParameters={k: [v] for k, v in fields.items()})
    event["headers"] = {}
    assert stack.invoke("MoWebhookFunction", event)["statusCode"] == 200
    [message] = body_of(stack.invoke("HistoryFunction", load_event("history_by_msisdn")))["items"]
    shown = load_event("get_message")
    shown.update(path=f"/messages/{message['id']}", pathParameters={"message_id": message["id"]})
    by_id = body_of(stack.invoke("GetMessageFunction", shown))
    assert (by_id["direction"], by_id["text"], by_id["from"]) == ("mo", "via query", "447700900123")


def test_a_receipt_with_a_status_word_we_do_not_know_is_kept_and_moves_nothing(stack):
    # Eseye documents only delivered and failed; anything else is stored, never guessed at
    message = sent_message(stack)
    assert receipt(stack, message["id"], "expired", reference="x1")["statusCode"] == 200
    stored = stack.message_item(message["id"])
    assert stored["status"] == "sent"
    assert stored["history"][-1]["detail"]["receipt"]["status"] == "expired"
    assert receipt(stack, message["id"], "expired", reference="x1")["statusCode"] == 200  # and once only
    assert sum(1 for h in stack.message_item(message["id"])["history"] if h["event"] == "receipt") == 1
