"""smsgw_client, the library for integrators: retries that never send twice, typed errors, pagination.

The API is played by a requests transport adapter that answers from a script and records what it was sent
(tests.helpers.ScriptedApi)."""

from __future__ import annotations

import json

import pytest
import requests

from smsgw_client import ApiError, Client
from tests.helpers import ScriptedApi

API = "https://api.example.test/v1"


def client_for(api: ScriptedApi, **options) -> tuple[Client, list[float]]:
    session = requests.Session()
    session.mount("https://", api)
    slept: list[float] = []
    return Client(API, session=session, sleep=slept.append, **options), slept


def test_a_send_retried_after_a_5xx_and_a_timeout_carries_one_idempotency_key():
    # Given an API that fails twice, ambiguously, before answering
    api = ScriptedApi(
        (503, {"error": {"code": "unavailable", "message": "try again"}}), requests.ReadTimeout("slow"), (202, {"id": "m1", "status": "sent"})
    )
    client, slept = client_for(api)
    # When a message is sent
    message = client.send_message("447700900001", "hello")
    # Then it is sent, after two waits, and every attempt carried the same key, so the gateway sends it once
    assert message == {"id": "m1", "status": "sent"}
    assert len(slept) == 2
    keys = {request.headers["Idempotency-Key"] for request in api.requests}
    assert len(api.requests) == 3 and len(keys) == 1 and next(iter(keys))
    assert all(json.loads(request.body) == {"to": "447700900001", "text": "hello"} for request in api.requests)


def test_each_send_has_its_own_key_unless_given_one():
    api = ScriptedApi((202, {"id": "a"}), (202, {"id": "b"}), (202, {"id": "c"}))
    client, _ = client_for(api)
    client.send_message("447700900001", "one")
    client.send_message("447700900001", "two")
    client.send_message("447700900001", "three", idempotency_key="mine")
    keys = [request.headers["Idempotency-Key"] for request in api.requests]
    assert keys[0] != keys[1] and keys[2] == "mine"


def test_a_batch_retried_after_a_connection_reset_keeps_its_key():
    api = ScriptedApi(requests.ConnectionError("connection reset by peer"), (202, {"id": "b1"}))
    client, _ = client_for(api)
    assert client.create_batch({"to": ["447700900001"], "text": "hi"}) == {"id": "b1"}
    assert api.requests[0].headers["Idempotency-Key"] == api.requests[1].headers["Idempotency-Key"]


def test_429_waits_as_long_as_retry_after_asks():
    api = ScriptedApi((429, {"error": {"code": "sim_queue_full", "message": "full"}}, {"Retry-After": "7"}), (202, {"id": "m1"}))
    client, slept = client_for(api)
    client.send_message("447700900001", "hello")
    assert slept[0] >= 7


def test_backoff_grows_with_jitter_and_gives_up_after_max_retries_with_the_apis_error():
    api = ScriptedApi(*[(502, {"error": {"code": "bad_gateway", "message": "upstream", "details": {"n": n}}}) for n in range(3)])
    client, slept = client_for(api, max_retries=2)
    with pytest.raises(ApiError) as raised:
        client.get_message("m1")
    assert (raised.value.status, raised.value.code, raised.value.message, raised.value.details) == (502, "bad_gateway", "upstream", {"n": 2})
    assert len(api.requests) == 3 and len(slept) == 2
    assert 0 <= slept[0] <= 0.5 and 0 <= slept[1] <= 1.0


def test_a_non_idempotent_post_is_not_retried_after_an_ambiguous_failure():
    # Given an event replay whose answer times out, and one answered 503
    for failure in (requests.ReadTimeout("slow"), (503, {"error": {"code": "unavailable", "message": "down"}})):
        api = ScriptedApi(failure, (200, {"published": 1}))
        client, slept = client_for(api)
        # When it is called / Then the failure is the caller's to judge: no second replay was sent
        with pytest.raises((requests.ReadTimeout, ApiError)):
            client.replay_events("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")
        assert len(api.requests) == 1 and slept == []


def test_client_errors_are_not_retried_and_raise_the_typed_error():
    api = ScriptedApi((422, {"error": {"code": "validation", "message": "bad msisdn", "details": {"field": "to"}}}))
    client, _ = client_for(api)
    with pytest.raises(ApiError) as raised:
        client.send_message("x", "hello")
    assert raised.value.status == 422 and raised.value.code == "validation" and raised.value.details == {"field": "to"}
    assert len(api.requests) == 1


def test_dry_run_refresh_and_api_key_reach_the_api():
    api = ScriptedApi((200, {"encoding": "gsm7"}), (200, {"id": "m1"}))
    client, _ = client_for(api, api_key="k-123")
    client.send_message("447700900001", "hello", dry_run=True)
    client.get_message("m/1", refresh=True)
    assert api.requests[0].url == f"{API}/messages?dry_run=true"
    assert api.requests[1].url == f"{API}/messages/m%2F1?refresh=true"
    assert all(request.headers["x-api-key"] == "k-123" for request in api.requests)


def test_iterators_follow_next_cursor_until_null():
    api = ScriptedApi(
        (200, {"items": [{"id": "1"}, {"id": "2"}], "next_cursor": "c1"}),
        (200, {"items": [], "next_cursor": "c2"}),
        (200, {"items": [{"id": "3"}], "next_cursor": None}),
    )
    client, _ = client_for(api)
    assert [m["id"] for m in client.iter_messages(msisdn="447700900001", direction="mt")] == ["1", "2", "3"]
    assert [r.url for r in api.requests] == [
        f"{API}/messages?msisdn=447700900001&direction=mt",
        f"{API}/messages?msisdn=447700900001&direction=mt&cursor=c1",
        f"{API}/messages?msisdn=447700900001&direction=mt&cursor=c2",
    ]


def test_group_batch_and_command_iterators():
    api = ScriptedApi(
        (200, {"name": "g", "members": ["1", "2"], "next_cursor": "x"}),
        (200, {"name": "g", "members": ["3"], "next_cursor": None}),
        (200, {"items": [{"id": "m"}], "next_cursor": None}),
        (200, {"items": [{"name": "reboot"}], "next_cursor": None}),
    )
    client, _ = client_for(api)
    assert list(client.iter_group_members("g")) == ["1", "2", "3"]
    assert list(client.iter_batch_messages("b1", status="failed")) == [{"id": "m"}]
    assert list(client.iter_commands()) == [{"name": "reboot"}]
    assert api.requests[2].url == f"{API}/batches/b1/messages?status=failed"


def test_an_answer_carries_its_status_so_a_caller_tells_created_from_replaced():
    api = ScriptedApi((201, {"name": "g", "size": 2}), (200, {"name": "g", "size": 3}))
    client, _ = client_for(api)
    created, replaced = client.put_group("g", ["1", "2"]), client.put_group("g", ["1", "2", "3"])
    # the answer is the API's object as it came (equal to it, serialized as it), with its status beside it
    assert (created, created.http_status, replaced.http_status) == ({"name": "g", "size": 2}, 201, 200)
    assert json.dumps(created) == '{"name": "g", "size": 2}'


def test_api_gateways_own_refusals_and_non_json_answers_keep_their_words_and_body():
    # Given API Gateway refusing before any function runs ({"message"}, its kind in a header), and a proxy's HTML
    refusal = (403, {"message": "Missing Authentication Token"}, {"x-amzn-ErrorType": "MissingAuthenticationTokenException"})
    api = ScriptedApi(refusal, (400, b"<html>Bad Request</html>"))
    client, _ = client_for(api)
    errors = []
    for call in (lambda: client.get_sim("447700900001"), lambda: client.replay_events("a", "b")):
        with pytest.raises(ApiError) as raised:
            call()
        errors.append(raised.value)
    # Then each error says what the answer said, and keeps the body as it was sent
    assert [(e.status, e.code, e.message) for e in errors] == [
        (403, "MissingAuthenticationTokenException", "Missing Authentication Token"),
        (400, "http_error", "<html>Bad Request</html>"),
    ]
    assert errors[0].body == '{"message": "Missing Authentication Token"}' and errors[1].body == "<html>Bad Request</html>"


def test_iter_groups_reads_every_page():
    api = ScriptedApi((200, {"items": [{"name": "a"}], "next_cursor": "c"}), (200, {"items": [{"name": "b"}], "next_cursor": None}))
    client, _ = client_for(api)
    assert [g["name"] for g in client.iter_groups(limit=100)] == ["a", "b"]
    assert [r.url for r in api.requests] == [f"{API}/groups?limit=100", f"{API}/groups?limit=100&cursor=c"]


def test_an_answers_http_status_never_hides_a_messages_own_status():
    # Given a message the API answers with 201
    api = ScriptedApi((201, {"id": "m1", "status": "pending"}))
    client, _ = client_for(api)
    # When a caller (or a Jinja template, which looks attributes up first) reads its status
    message = client.send_message("447700900123", "hi")
    # Then it is the message's status; the HTTP status has a name of its own
    assert getattr(message, "status", message["status"]) == "pending"
    assert message.http_status == 201
