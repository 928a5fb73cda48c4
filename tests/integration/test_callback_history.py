"""Status-callback attempts on the message's own history (issue 15): an operator asking "did our callback
reach the customer?" reads the answer in GET /messages/{id}, not in a queue.

Each attempt is one history entry, `event: callback`, whose `status` is the status the callback reported
and whose `detail.callback` says where it went (the URL without its query), which attempt it was, how it
ended (delivered, refused with the receiver's HTTP status, failed with the reason, gave_up when the queue
dead-letters it, blocked by our URL policy) and how long it took.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from smsgw.logic import callbacks
from tests.helpers import body_of, callback_records, get, send, stream_batch


class Receiver:
    """A status_callback receiver on loopback that answers the statuses a test scripts, then 200."""

    def __init__(self, *statuses: int):
        self.script, self.hits = list(statuses), 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.hits += 1
                self.send_response(receiver.script.pop(0) if receiver.script else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/sms"


@pytest.fixture
def receiver(monkeypatch):
    monkeypatch.setenv("ALLOW_INSECURE_CALLBACKS", "true")  # a loopback receiver; deployed functions accept https only
    made = []

    def make(*statuses):
        made.append(Receiver(*statuses))
        return made[-1]

    yield make
    for r in made:
        r.server.shutdown()
        r.server.server_close()


def closed_port_url() -> str:
    """A loopback URL where nothing listens: the connection is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/sms?token=s3cret"


def the_sent_event(stack, message_id: str) -> dict:
    """The `sent` event of `message_id` as the callback queue holds it now (the other records stay in flight)."""
    wanted = f"{message_id}:sent"
    return {"Records": [r for r in callback_records(stack)["Records"] if json.loads(r["body"])["id"] == wanted]}


def retry_now(stack, records: dict) -> None:
    """Make a delayed event visible again at once, instead of after its backoff."""
    for record in records["Records"]:
        stack.clients["sqs"].change_message_visibility(
            QueueUrl=stack.physical("CallbackQueue"), ReceiptHandle=record["receiptHandle"], VisibilityTimeout=0
        )


def attempt(stack, records: dict) -> bool:
    """Run the CallbacksFunction on these records. True if every one was delivered (or is never to be
    retried); False if they stay on the queue (Powertools raises when every record of a batch failed)."""
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    assert records["Records"], "no event on the queue"
    try:
        return stack.invoke("CallbacksFunction", records) == {"batchItemFailures": []}
    except BatchProcessingError:
        return False


def documented(entry: dict) -> dict:
    """`entry`, checked against the OpenAPI document's HistoryEntry (and its CallbackAttempt)."""
    import jsonschema
    import yaml

    from local_stack.template import ROOT

    document = yaml.safe_load((ROOT / "openapi" / "openapi.yaml").read_text())
    jsonschema.validate(entry, {"$ref": "#/components/schemas/HistoryEntry", "components": document["components"]})
    return entry


def callback_entries(stack, message_id: str) -> list[dict]:
    response = get(stack, message_id)
    assert response["statusCode"] == 200
    return [documented(e) for e in body_of(response)["history"] if e["event"] == "callback"]


def sent_with_callback(stack, url: str) -> str:
    message = body_of(send(stack, body={"to": "447700900001", "text": "x", "status_callback": url}))
    assert message["status"] == "sent"
    stack.invoke("PublisherFunction", stream_batch(stack))
    return message["id"]


def test_a_refused_then_delivered_callback_shows_both_attempts_in_order(stack, receiver):
    # Given a message with a status_callback whose receiver answers 500, then 200
    hook = receiver(500)
    message_id = sent_with_callback(stack, hook.url)

    # When its `sent` event is delivered (refused), and again on its retry (delivered)
    first = the_sent_event(stack, message_id)
    assert not attempt(stack, first)
    retry_now(stack, first)
    second = the_sent_event(stack, message_id)
    assert attempt(stack, second)

    # Then GET /messages/{id} shows the two attempts, in order: refused with the receiver's 500, then delivered
    entries = callback_entries(stack, message_id)
    assert [(e["status"], *(e["detail"]["callback"].get(k) for k in ("attempt", "outcome", "http_status"))) for e in entries] == [
        ("sent", 1, "refused", 500),
        ("sent", 2, "delivered", 200),
    ]
    refused, delivered = (e["detail"]["callback"] for e in entries)
    assert refused["url"] == delivered["url"] == hook.url
    assert refused["event_id"] == f"{message_id}:sent"
    assert all(isinstance(c["duration_ms"], int) and c["duration_ms"] >= 0 for c in (refused, delivered))
    assert "500" in entries[0]["cause"] and "retried" in entries[0]["cause"]
    # And the message itself did not move, nor claim an update: a callback is no progress of the message
    message = body_of(get(stack, message_id))
    assert message["status"] == "sent"
    assert message["updated_at"] < entries[0]["at"]


def test_an_unreachable_receiver_is_recorded_as_failed_with_the_reason_and_no_query(stack, receiver):
    # Given a message whose status_callback points where nothing listens, with a token in its query
    receiver()  # allows loopback callbacks
    url = closed_port_url()
    message_id = sent_with_callback(stack, url)

    # When its `sent` event is attempted
    assert not attempt(stack, the_sent_event(stack, message_id))

    # Then the attempt is on the message: failed, why, and the URL without its query (a secret may live there)
    [entry] = callback_entries(stack, message_id)
    tried = entry["detail"]["callback"]
    assert (tried["outcome"], tried["attempt"], entry["status"]) == ("failed", 1, "sent")
    assert "http_status" not in tried
    assert tried["reason"]
    assert tried["url"] == url.split("?")[0]
    assert "s3cret" not in json.dumps(entry)


def test_a_receiver_that_keeps_refusing_ends_gave_up_when_the_event_is_dead_lettered(stack, receiver):
    # Given a receiver that refuses every callback
    hook = receiver(*[503] * 100)
    message_id = sent_with_callback(stack, hook.url)
    dead_letters = stack.physical("CallbackDeadLetterQueue")

    # When its `sent` event is attempted as often as the queue allows, until the queue dead-letters it
    for _ in range(callbacks.MAX_ATTEMPTS):
        records = the_sent_event(stack, message_id)
        assert not attempt(stack, records)
        retry_now(stack, records)
    assert the_sent_event(stack, message_id) == {"Records": []}
    assert stack.clients["sqs"].receive_message(QueueUrl=dead_letters, MaxNumberOfMessages=10)["Messages"]

    # Then every attempt is on the message, in order, the last one gave_up (with the receiver's last word)
    entries = [e["detail"]["callback"] for e in callback_entries(stack, message_id)]
    assert [e["attempt"] for e in entries] == list(range(1, callbacks.MAX_ATTEMPTS + 1))
    assert {e["outcome"] for e in entries[:-1]} == {"refused"}
    assert (entries[-1]["outcome"], entries[-1]["http_status"]) == ("gave_up", 503)
    assert "dead-letter" in callback_entries(stack, message_id)[-1]["cause"]


def test_a_destination_our_policy_refuses_is_recorded_as_blocked(stack):
    # Given a message whose status_callback names a port the deployment does not allow (443 only)
    message_id = sent_with_callback(stack, "https://hooks.example.com:8443/sms")

    # When its `sent` event is attempted: refused for good, never retried
    assert attempt(stack, the_sent_event(stack, message_id))

    # Then the refusal is on the message, with our reason
    [entry] = callback_entries(stack, message_id)
    assert (entry["detail"]["callback"]["outcome"], entry["detail"]["callback"]["attempt"]) == ("blocked", 1)
    assert entry["detail"]["callback"]["reason"]


def test_a_failure_to_record_never_turns_a_delivered_callback_into_a_retry(stack, receiver, monkeypatch):
    # Given a receiver that takes the callback, and a table that refuses the record of it
    hook = receiver()
    message_id = sent_with_callback(stack, hook.url)
    deps = stack.deps("CallbacksFunction")
    deps.settings = dataclasses.replace(deps.settings, allow_insecure_callbacks=True)
    from smsgw.errors import StoreUnavailable

    def unavailable(*args, **kwargs):
        raise StoreUnavailable("DynamoDB throttled")

    monkeypatch.setattr(deps.store.messages, "note_callback", unavailable)
    [record] = the_sent_event(stack, message_id)["Records"]

    # When it is delivered
    status = callbacks.deliver_record(record["body"], record["receiptHandle"], 1, deps)

    # Then it counts as delivered (no retry, no second POST), and nothing was recorded
    assert status == 200
    assert hook.hits == 1
    assert callback_entries(stack, message_id) == []


def test_a_callback_for_a_message_not_stored_records_nothing_and_delivers(stack, receiver):
    # Given an event for a message the table does not hold (a replayed event of a message since expired)
    hook = receiver()
    deps = stack.deps("CallbacksFunction")
    deps.settings = dataclasses.replace(deps.settings, allow_insecure_callbacks=True)
    event = {
        "type": "sms.mt.status",
        "id": "f" * 32 + ":sent",
        "time": "2026-11-25T12:00:00.000Z",
        "data": {"id": "f" * 32, "status": "sent", "status_callback": hook.url},
    }
    queue = stack.physical("CallbackQueue")
    stack.clients["sqs"].send_message(QueueUrl=queue, MessageBody=json.dumps(event))
    [message] = stack.clients["sqs"].receive_message(QueueUrl=queue, MaxNumberOfMessages=1)["Messages"]

    # When it is delivered / Then it is, and no message appears out of nowhere
    assert callbacks.deliver_record(message["Body"], message["ReceiptHandle"], 1, deps) == 200
    assert get(stack, "f" * 32)["statusCode"] == 404


def test_a_day_of_failing_callbacks_does_not_push_eseyes_answer_out_of_the_history(stack):
    from smsgw.adapters.store import HISTORY_LIMIT

    # Given a message Eseye accepted, with a status_callback
    message_id = body_of(send(stack, body={"to": "447700900001", "text": "x", "status_callback": "https://hooks.example.com/sms"}))["id"]
    before = body_of(get(stack, message_id))["history"]
    assert [e["event"] for e in before] == ["accepted", "eseye_send"]
    # When its receiver stays down for three events' whole retry schedules (66 attempts)
    deps = stack.deps("CallbacksFunction")
    for status in ("pending", "sent", "delivered"):
        event = {"id": f"{message_id}:{status}", "data": {"id": message_id, "status": status, "status_callback": "https://hooks.example.com/sms"}}
        for attempt in range(1, callbacks.MAX_ATTEMPTS + 1):
            callbacks.record(deps, event, callbacks.Attempt(callbacks.FAILED, reason="ConnectTimeout"), attempt, 10)

    # Then the history stays within its bound, the oldest callback attempts gone first: Eseye's answer stays
    shown = body_of(get(stack, message_id))
    history = shown["history"]
    assert len(history) <= HISTORY_LIMIT
    assert history[:2] == before
    assert len(history) - 2 + shown["history_dropped"] == 3 * callbacks.MAX_ATTEMPTS
    latest = history[-1]["detail"]["callback"]
    assert (history[-1]["status"], latest["attempt"]) == ("delivered", callbacks.MAX_ATTEMPTS)
