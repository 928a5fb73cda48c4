"""POST /messages, handler in-process against moto and the Eseye simulator."""

import copy
import json

from tests.conftest import load_event
from tests.helpers import body_of, send


def test_gsm7_text_is_sent_and_stored(stack):
    # Given Eseye is up / When a customer sends plain text
    response = send(stack)
    # Then it is accepted, sent as 7-bit text, and stored with its history
    assert response["statusCode"] == 202
    message = body_of(response)
    assert message["status"] == "sent"
    assert (message["to"], message["encoding"], message["length"], message["client_ref"]) == ("447700900123", "gsm7", 11, "order-42")
    [request] = stack.eseye.requests
    assert request["form"]["text"] == "Hello World"
    assert request["form"]["mode"] == "7"
    assert request["form"]["destination"] == "447700900123"
    assert request["form"]["message_id"] == message["id"]
    assert request["form"]["receipt_url"].startswith("https://abc123.execute-api.eu-west-1.amazonaws.com/v1/webhooks/tok-primary")
    assert [h["status"] for h in message["history"]] == ["pending", "sent"]
    stored = stack.message_item(message["id"])
    assert stored["status"] == "sent" and stored["GSI1PK"] == "MSISDN#447700900123"


def test_unicode_text_goes_as_ucs2_short_message(stack):
    response = send(stack, "send_ucs2")
    assert response["statusCode"] == 202
    form = stack.eseye.requests[0]["form"]
    assert (form["short_message"], form["data_coding"]) == ("4F60597D4E16754C", "8")
    assert "text" not in form


def test_binary_data_goes_with_its_data_coding(stack):
    response = send(stack, "send_binary_data")
    assert response["statusCode"] == 202
    form = stack.eseye.requests[0]["form"]
    assert (form["short_message"], form["data_coding"]) == ("0102A0FF", "F6")


def test_eseye_rejection_is_422_with_the_eseye_code(stack):
    response = send(stack, "send_rejected_by_eseye")
    assert response["statusCode"] == 422
    error = body_of(response)["error"]
    assert error["code"] == "eseye_rejected"
    assert error["details"]["eseye_code"] == 570
    assert stack.message_item(error["details"]["id"])["status"] == "rejected"


def test_too_long_text_is_refused_with_the_analysis(stack):
    response = send(stack, "send_too_long")
    assert response["statusCode"] == 422
    error = body_of(response)["error"]
    assert error["details"] == {"encoding": "ucs2", "length": 71, "limit": 70, "unicode_characters": ["Ω"], "fits": False}
    assert "Ω" in error["message"] and "71" in error["message"]
    assert stack.eseye.requests == []


def test_dry_run_analyses_without_sending_or_storing(stack):
    response = send(stack, "send_dry_run")
    assert response["statusCode"] == 200
    result = body_of(response)
    assert (result["encoding"], result["unicode_characters"]) == ("ucs2", ["°", "✓"])
    assert stack.eseye.requests == []
    assert stack.clients["dynamodb"].scan(TableName=stack.table)["Count"] == 0


def test_invalid_fields_are_each_named(stack):
    response = send(stack, "send_invalid")
    assert response["statusCode"] == 422
    fields = body_of(response)["error"]["details"]["fields"]
    assert set(fields) == {"to", "text", "colour"}


def test_malformed_json_is_400(stack):
    response = send(stack, "send_malformed_json")
    assert response["statusCode"] == 400
    assert body_of(response)["error"]["code"] == "bad_request"


def test_oversized_body_is_413(stack):
    response = send(stack, body={"to": "447700900123", "text": "a" * 17000})
    assert response["statusCode"] == 413


def test_wrong_content_type_is_415(stack):
    response = send(stack, headers={"Content-Type": "text/plain"})
    assert response["statusCode"] == 415


def test_body_that_is_not_an_object_is_422(stack):
    assert send(stack, body="[1, 2]")["statusCode"] == 422


def test_expiry_in_the_past_is_refused_and_a_future_one_is_sent_in_utc(stack):
    assert send(stack, body={"to": "447700900123", "text": "x", "expires_at": "2001-01-01T00:00:00Z"})["statusCode"] == 422
    response = send(stack, body={"to": "447700900123", "text": "x", "expires_at": "2099-01-01T12:00:00+02:00"})
    assert response["statusCode"] == 202
    assert stack.eseye.requests[0]["form"]["expiry"] == "2099-01-01 10:00:00"


def test_same_idempotency_key_and_body_replays_the_first_response(stack):
    # Given a send with an Idempotency-Key
    first = send(stack, "send_idempotent")
    # When the client retries it
    second = send(stack, "send_idempotent")
    # Then it gets the same answer and Eseye got the message once
    assert first["statusCode"] == second["statusCode"] == 202
    assert body_of(first)["id"] == body_of(second)["id"]
    assert len(stack.eseye.requests) == 1


def test_same_idempotency_key_with_another_body_is_409(stack):
    send(stack, "send_idempotent")
    event = load_event("send_idempotent")
    event["body"] = json.dumps({"to": "447700900123", "text": "SHUTDOWN"})
    response = stack.invoke("SendFunction", event)
    assert response["statusCode"] == 409
    assert "Idempotency-Key" in body_of(response)["error"]["message"]


def test_blocklisted_msisdn_is_refused_with_403(stack):
    from smsgw.logic import lists

    lists.put_entry("block", "447700900123", "ops@example.com", deps=stack.deps())
    response = send(stack)
    assert response["statusCode"] == 403
    assert "blocklist" in body_of(response)["error"]["message"]
    assert stack.eseye.requests == []


def test_allowlist_admits_only_its_members(stack):
    from smsgw.logic import lists

    lists.put_entry("allow", "447700900999", "ops@example.com", deps=stack.deps())
    assert send(stack)["statusCode"] == 403
    assert send(stack, body={"to": "447700900999", "text": "hi"})["statusCode"] == 202


def test_unknown_route_is_a_json_404(stack):
    event = copy.deepcopy(load_event("send_gsm7"))
    event["path"] = event["resource"] = "/nowhere"
    response = stack.invoke("SendFunction", event)
    assert response["statusCode"] == 404
    assert body_of(response)["error"]["code"] == "route_not_found"


def test_a_status_callback_to_a_private_or_metadata_address_is_refused_at_send_time(stack):
    # Given callbacks that could only reach our own insides (literal addresses: no DNS is asked at send time)
    for url in (
        "https://127.0.0.1/hook",
        "https://10.0.0.5/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[fd00:ec2::254]/hook",
        "https://224.0.0.1/hook",
        "https://2130706433/hook",
    ):
        # When a message names one
        response = send(stack, body={"to": "447700900123", "text": "hi", "status_callback": url})
        # Then it is refused before anything is stored or sent, naming the field
        assert response["statusCode"] == 422, url
        assert "status_callback" in body_of(response)["error"]["details"]["fields"], url
    assert stack.eseye.requests == []
    # And a public address or a name is still accepted (a name is checked when the callback is delivered)
    for url in ("https://93.184.216.34/hook", "https://hooks.example.com/hook"):
        assert send(stack, body={"to": "447700900123", "text": "hi", "status_callback": url})["statusCode"] == 202, url
