"""Garbage, mutated and hostile input: every request is stored or refused with a reason, never a 500."""

import json
import os
from urllib.parse import quote_from_bytes

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import load_event
from tests.helpers import body_of, history, publish_all, replay, send, webhook_event, window

REFUSALS = {400, 403, 404, 409, 413, 415, 422}
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CONTENT_TYPES = st.sampled_from(
    ["application/x-www-form-urlencoded", "application/json", "text/plain", "", "multipart/form-data; boundary=x", "application/xml"]
)
FIELD_VALUES = st.one_of(
    st.text(max_size=80),
    st.binary(max_size=80).map(lambda b: b.decode("latin-1")),
    st.sampled_from(["", "\x00", "\ud800".encode("utf-8", "surrogatepass").decode("latin-1"), "a" * 5000]),
)


def quarantined(stack) -> int:
    items = stack.clients["dynamodb"].scan(
        TableName=stack.table, FilterExpression="begins_with(PK, :q)", ExpressionAttributeValues={":q": {"S": "Q#"}}
    )
    return items["Count"]


@FUZZ
@given(body=st.binary(max_size=600), content_type=CONTENT_TYPES, kind=st.sampled_from(["mo", "receipt"]))
def test_random_bytes_to_the_webhooks_are_stored_or_refused(stack, body, content_type, kind):
    handler = stack.handler("MoWebhookFunction" if kind == "mo" else "ReceiptWebhookFunction")
    before = quarantined(stack)
    response = handler(webhook_event(kind, body, content_type))
    assert response["statusCode"] == 200 or response["statusCode"] in REFUSALS
    if response["statusCode"] == 400:
        assert quarantined(stack) == before + 1  # refused, and kept


@FUZZ
@given(
    fields=st.dictionaries(
        st.sampled_from(["source", "destination", "message_id", "text", "binary", "messageid", "referenceid", "status", "statuscode", "x"]),
        FIELD_VALUES,
        max_size=6,
    ),
    as_json=st.booleans(),
    kind=st.sampled_from(["mo", "receipt"]),
)
def test_mutated_fields_are_stored_or_refused(stack, fields, as_json, kind):
    handler = stack.handler("MoWebhookFunction" if kind == "mo" else "ReceiptWebhookFunction")
    if as_json:
        body, content_type = json.dumps(fields).encode(), "application/json"
    else:
        body = "&".join(f"{quote_from_bytes(k.encode())}={quote_from_bytes(v.encode('utf-8', 'surrogatepass'))}" for k, v in fields.items()).encode()
        content_type = "application/x-www-form-urlencoded"
    response = handler(webhook_event(kind, body, content_type))
    assert response["statusCode"] == 200 or response["statusCode"] in REFUSALS, response


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)


@FUZZ
@given(
    body=st.dictionaries(
        st.sampled_from(
            ["to", "text", "data", "data_coding", "encoding", "source", "expires_at", "client_ref", "status_callback", "expect_reply_within", "zzz"]
        ),
        JSON_VALUES,
        max_size=6,
    )
)
def test_random_send_bodies_never_fail_the_server(stack, body):
    handler = stack.handler("SendFunction")
    event = load_event("send_gsm7")
    event["body"] = json.dumps(body)
    response = handler(event)
    assert response["statusCode"] in {200, 202} | REFUSALS, response["body"]
    assert "error" in json.loads(response["body"]) or response["statusCode"] in (200, 202)


def test_invalid_utf8_body_is_400(stack):
    import base64

    event = load_event("send_gsm7")
    event.update(body=base64.b64encode(b'{"to": "447700900123", "text": "\xff\xfe"}').decode(), isBase64Encoded=True)
    response = stack.invoke("SendFunction", event)
    assert response["statusCode"] == 400
    assert "UTF-8" in body_of(response)["error"]["message"]


def test_control_characters_are_refused_in_every_string_field(stack):
    base = {"to": "447700900123", "text": "ok"}
    cases = {
        "to": "4477009\x00123",
        "source": "44770\x07900124",
        "client_ref": "ref\x1b[31m",
        "status_callback": "https://x.test/\x0a",
        "expires_at": "2099-01-01T00:00:00Z\x00",
        "encoding": "gsm7\x00",
    }
    for field, value in cases.items():
        event = load_event("send_gsm7")
        event["body"] = json.dumps({**base, field: value})
        response = stack.invoke("SendFunction", event)
        assert response["statusCode"] == 422, (field, response["body"])
        assert field in body_of(response)["error"]["details"]["fields"]


def test_control_characters_in_text_travel_as_ucs2_not_raw(stack):
    event = load_event("send_gsm7")
    event["body"] = json.dumps({"to": "447700900123", "text": "line\x00break"})
    response = stack.invoke("SendFunction", event)
    assert response["statusCode"] == 202
    assert stack.eseye.requests[0]["form"]["short_message"] == "line\x00break".encode("utf-16-be").hex().upper()


def test_oversized_webhook_body_is_413_and_kept(stack):
    event = webhook_event("mo", b"text=" + b"a" * (70 * 1024), "application/x-www-form-urlencoded")
    assert stack.invoke("MoWebhookFunction", event)["statusCode"] == 413
    assert quarantined(stack) == 1


def _mutated(cursor: str, data) -> str:
    """A cursor with a few characters flipped, dropped or added, or cut short."""
    chars = list(cursor)
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        where = data.draw(st.integers(min_value=0, max_value=len(chars) - 1))
        action = data.draw(st.sampled_from(["flip", "drop", "add", "cut"]))
        if action == "flip":
            chars[where] = data.draw(st.sampled_from("ABCabc0123-_.=+/%"))
        elif action == "drop" and len(chars) > 1:
            del chars[where]
        elif action == "add":
            chars.insert(where, data.draw(st.characters()))
        else:
            chars = chars[: max(where, 1)]
    return "".join(chars)


@FUZZ
@given(data=st.data())
def test_mutated_or_random_cursors_are_400_invalid_cursor(stack, data):
    # Given real cursors of GET /messages and POST /events/replay
    if not hasattr(stack, "_cursors"):
        for n in range(3):
            send(stack, body={"to": "447700900123", "text": f"m{n}"})
        publish_all(stack)
        frame = window()
        stack._cursors = (frame, body_of(history(stack, limit="1"))["next_cursor"], body_of(replay(stack, {**frame, "limit": 1}))["next_cursor"])
    frame, history_cursor, replay_cursor = stack._cursors
    # When a client sends one mutated, or something else entirely
    kind = data.draw(st.sampled_from(["history", "replay"]))
    original = history_cursor if kind == "history" else replay_cursor
    source = data.draw(st.sampled_from(["mutated", "text", "json"]))
    if source == "mutated":
        cursor = _mutated(original, data)
    else:
        cursor = data.draw(st.text(max_size=300) if source == "text" else JSON_VALUES)
    if kind == "history":
        if not isinstance(cursor, str) or not cursor or "\x00" in cursor:
            return  # a query string carries non-empty text only
        response = history(stack, limit="1", cursor=cursor)
    else:
        response = replay(stack, {**frame, "limit": 1, "cursor": cursor})
    # Then it pages on only if it is the cursor as issued; anything else is 400 invalid_cursor, never a 5xx
    if cursor == original or (kind == "replay" and (cursor is None or cursor == "")):
        assert response["statusCode"] == 200
    else:
        assert response["statusCode"] in (400, 422), (cursor, response["body"])  # 422: not a string at all
        if isinstance(cursor, str):
            assert body_of(response)["error"]["code"] == "invalid_cursor", (cursor, response["body"])
