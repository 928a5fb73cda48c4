"""Reply correlation, event replay and signed status callbacks."""

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import load_event
from tests.helpers import (
    body_of,
    callback_records,
    mo,
    publish_all,
    received_events,
    replay,
    send,
    stream_batch,
    subscribe,
    validate_event,
    wait_until,
)


def test_a_device_reply_is_linked_to_the_command_that_asked(stack):
    # Given a command that expects a reply within a minute
    command = body_of(send(stack, body={"to": "447700900123", "text": "STATUS?", "expect_reply_within": 60}))
    assert command["reply_state"] == "waiting"
    # When the device answers
    mo(stack, {"source": "447700900123", "message_id": "r1", "text": "STATUS OK"})
    # Then the reply and the command point at each other
    history = body_of(stack.invoke("HistoryFunction", load_event("history_by_msisdn")))["items"]
    reply = next(i for i in history if i["direction"] == "mo")
    assert reply["in_reply_to"] == command["id"]
    linked = stack.message_item(command["id"])
    assert (linked["reply_id"], linked["reply_state"]) == (reply["id"], "replied")
    # and a second MO is not linked to the same command
    mo(stack, {"source": "447700900123", "message_id": "r2", "text": "again"})
    later = next(i for i in body_of(stack.invoke("HistoryFunction", load_event("history_by_msisdn")))["items"] if i.get("text") == "again")
    assert "in_reply_to" not in later


def test_no_reply_in_the_window_fires_reply_timeout(stack):
    url = subscribe(stack)
    command = body_of(send(stack, body={"to": "447700900001", "text": "PING", "expect_reply_within": 1}))
    # the sweeper times the command out once the window has passed, and only once
    assert wait_until(lambda: stack.invoke("ReplyTimeoutsFunction", {"source": "aws.events"})["timed_out"], interval=0.2) == 1
    assert stack.invoke("ReplyTimeoutsFunction", {"source": "aws.events"}) == {"timed_out": 0}
    publish_all(stack)
    events = received_events(stack, url)
    timeout = [e for e in events if e["type"] == "sms.mt.reply_timeout"]
    assert [e["id"] for e in timeout] == [f"{command['id']}:reply_timeout"]
    validate_event(timeout[0])
    # a late reply is not linked to a timed-out command
    mo(stack, {"source": "447700900001", "message_id": "late", "text": "PONG"})
    assert stack.message_item(command["id"])["reply_state"] == "timed_out"


def test_replay_republishes_stored_events_with_their_ids(stack):
    message = body_of(send(stack))
    publish_all(stack)
    url = subscribe(stack)
    response = replay(stack, {"since": "2020-01-01T00:00:00Z", "until": "2020-01-02T00:00:00Z"})
    assert body_of(response)["republished"] == 0
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 5))
    result = body_of(replay(stack, {"since": start, "until": end}))
    assert result == {"republished": 2, "failed": 0, "next_cursor": None}
    assert sorted(e["id"] for e in received_events(stack, url)) == sorted([f"{message['id']}:pending", f"{message['id']}:sent"])


def test_replay_pages_with_a_cursor_and_checks_its_input(stack):
    for _ in range(2):
        send(stack)
    publish_all(stack)
    window = {
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60)),
        "until": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60)),
    }
    first = body_of(replay(stack, {**window, "limit": 3}))
    assert first["republished"] == 3 and first["next_cursor"]
    second = body_of(replay(stack, {**window, "limit": 3, "cursor": first["next_cursor"]}))
    assert (second["republished"], second["next_cursor"]) == (1, None)
    assert replay(stack, {"since": "2026-01-01T00:00:00Z", "until": "2026-02-01T00:00:00Z"})["statusCode"] == 422
    assert replay(stack, {"since": "yesterday"})["statusCode"] == 422
    ancient = replay(stack, {"since": "0004-01-01T00:00:00Z", "until": "0004-01-01T00:00:01.0Z"})  # found by schemathesis
    assert (ancient["statusCode"], body_of(ancient)["republished"]) == (200, 0)


class Receiver:
    """A status_callback receiver on loopback that verifies signatures the documented way."""

    def __init__(self, key: str, fail_first: int = 0):
        self.key, self.fail_first, self.received = key, fail_first, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                timestamp, signature = self.headers["X-Smsgw-Timestamp"], self.headers["X-Smsgw-Signature"]
                expected = "v1=" + hmac.new(receiver.key.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
                fresh = abs(time.time() - int(timestamp)) < 300
                receiver.received.append({"valid": hmac.compare_digest(signature, expected) and fresh, "event": json.loads(body)})
                status = 500 if receiver.fail_first > 0 else 204
                receiver.fail_first -= 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/sms"


@pytest.fixture
def receiver(stack, monkeypatch):
    monkeypatch.setenv("ALLOW_INSECURE_CALLBACKS", "true")  # a loopback receiver; deployed functions accept https only
    key = stack.clients["secretsmanager"].get_secret_value(SecretId=stack.physical("CallbackSigningSecret"))["SecretString"]
    made = []

    def make(fail_first=0):
        made.append(Receiver(key, fail_first))
        return made[-1]

    yield make
    for r in made:
        r.server.shutdown()


def test_status_callbacks_are_signed_and_only_for_messages_that_asked(stack, receiver):
    hook = receiver()
    wanted = body_of(send(stack, body={"to": "447700900001", "text": "x", "status_callback": hook.url}))
    send(stack, body={"to": "447700900001", "text": "no callback"})
    stack.invoke("PublisherFunction", stream_batch(stack))
    records = callback_records(stack)
    assert {json.loads(r["body"])["data"]["id"] for r in records["Records"]} == {wanted["id"]}
    assert stack.invoke("CallbacksFunction", records) == {"batchItemFailures": []}
    assert [(r["valid"], r["event"]["data"]["status"]) for r in hook.received] == [(True, "pending"), (True, "sent")]


def test_a_failing_receiver_is_retried_later(stack, receiver):
    hook = receiver(fail_first=1)
    send(stack, body={"to": "447700900001", "text": "x", "status_callback": hook.url})
    stack.invoke("PublisherFunction", stream_batch(stack))
    records = callback_records(stack)
    result = stack.invoke("CallbacksFunction", records)
    assert len(result["batchItemFailures"]) == 1  # the receiver's 500 leaves that event on the queue, delayed


def test_status_callback_must_be_https(stack):
    response = send(stack, body={"to": "447700900001", "text": "x", "status_callback": "http://example.com/hook"})
    assert response["statusCode"] == 422
    assert "status_callback" in body_of(response)["error"]["details"]["fields"]


def test_the_sample_events_drive_their_functions(stack):
    # Given the fixtures that sam local invoke -e would use, each function answers without failing
    assert stack.invoke("ReplyTimeoutsFunction", load_event("reply_timeouts_schedule")) == {"timed_out": 0}
    assert stack.invoke("ReconcilerFunction", load_event("reply_timeouts_schedule")) == {
        "rescheduled": 0,
        "incomplete_published": 0,
        "dequeued_by_repair": 0,
    }
    assert stack.invoke("PublisherFunction", load_event("publisher_stream_delivered")) == {"batchItemFailures": []}
    assert stack.invoke("ListsFunction", load_event("list_get_allow"))["statusCode"] == 404
    assert stack.invoke("ListsFunction", load_event("list_delete_block"))["statusCode"] == 404
    assert body_of(stack.invoke("ReplayFunction", load_event("events_replay")))["failed"] == 0
