"""AWS calls per operation, counted by a botocore event hook, against the minimum the design needs.

Run by make test as budgets (a regression fails CI) and by make bench, which prints the table.
Each operation runs in a warm container: the gateway secret is already cached, as it is for every
request but the first in each cache period.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import load_event
from tests.helpers import CallCounter, callback_records, hook_every_client, mo, receipt, stream_batch

# operation -> (the design's minimum, budget); each counts every AWS API call (Secrets Manager included).
BUDGETS = {
    # The SIM's queue (issue 13) adds one request: its state read; the create and the slot are one transaction.
    # The steady rate toward Eseye (issue 14) adds one per send to Eseye: the conditional write that takes
    # its slot (logic/pacing.py; one write when the container's guess of the counter is right, as here).
    "send (accepted)": ({"dynamodb": 5}, 5),  # lists read, SIM state read, create with the slot, send slot, status change
    "send (rejected)": ({"dynamodb": 5}, 5),
    # send: lists, SIM, create, send slot, retry note, enqueue; dispatcher: read, send slot, status
    "send (retried once)": ({"dynamodb": 8, "sqs": 1}, 9),
    "status": ({"dynamodb": 1}, 1),
    "status (refresh)": ({"dynamodb": 2}, 2),
    "cancel (pending)": ({"dynamodb": 2}, 2),
    "cancel (sent)": ({"dynamodb": 2}, 2),
    "receipt": ({"dynamodb": 1}, 1),
    "receipt (duplicate)": ({"dynamodb": 1}, 1),
    "mo": ({"dynamodb": 3}, 3),  # lists read, waiting-command query, create
    "publish (10 events)": ({"dynamodb": 1, "sns": 1}, 2),  # one archive batch, one SNS batch
    # A status callback (issue 15) records each attempt on its message's history: one write (before: none).
    "callback (delivered)": ({"dynamodb": 1}, 1),
    "callback (refused)": ({"dynamodb": 1, "sqs": 1}, 2),  # the attempt's record, its retry's delay (before: the delay)
}


@pytest.fixture
def counted(stack, monkeypatch):
    """Count calls of every client built from here on (the functions' clients are built lazily)."""
    counter = CallCounter()
    hook_every_client(monkeypatch, "before-call", counter)
    return counter


def warm(stack, function):
    handler = stack.handler(function)
    return handler


def measure(stack, counted) -> dict[str, dict]:
    """Run each operation once, warm, and return its calls."""
    results = {}
    send = warm(stack, "SendFunction")
    event = load_event("send_gsm7")

    def send_body(body):
        return send({**event, "body": json.dumps(body)})

    send_body({"to": "447700900001", "text": "warm-up"})  # fills the secret cache, as any earlier request would
    counted.reset()
    accepted = json.loads(send_body({"to": "447700900001", "text": "x"})["body"])
    results["send (accepted)"] = dict(counted.calls)

    counted.reset()
    send_body({"to": "447700900570", "text": "x"})
    results["send (rejected)"] = dict(counted.calls)

    dispatcher = warm(stack, "DispatcherFunction")
    template = load_event("dispatcher_retry")["Records"][0]

    def retried_once():
        stack.eseye.stop()
        message = json.loads(send_body({"to": "447700900001", "text": "x"})["body"])
        stack.eseye.start()
        jobs = stack.queue_jobs()
        dispatcher({"Records": [{**template, "body": json.dumps(job)} for job in jobs]})
        return message

    pending = retried_once()  # warms the dispatcher's container
    counted.reset()
    retried_once()
    results["send (retried once)"] = dict(counted.calls)
    assert json.loads(send_body({"to": "447700900001", "text": "y"})["body"])["status"] == "sent"

    get = warm(stack, "GetMessageFunction")
    get_event = load_event("get_message")
    get_event.update(path=f"/messages/{accepted['id']}", pathParameters={"message_id": accepted["id"]})
    get({**get_event, "queryStringParameters": {"refresh": "true"}})  # warm-up: the secret for refresh
    counted.reset()
    get({**get_event, "queryStringParameters": None})
    results["status"] = dict(counted.calls)
    counted.reset()
    get({**get_event, "queryStringParameters": {"refresh": "true"}})
    results["status (refresh)"] = dict(counted.calls)

    cancel = warm(stack, "CancelMessageFunction")
    cancel_event = load_event("cancel_message")
    stack.eseye.stop()
    waiting = json.loads(send_body({"to": "447700900001", "text": "z"})["body"])
    stack.eseye.start()
    cancel({**cancel_event, "path": f"/messages/{accepted['id']}", "pathParameters": {"message_id": accepted["id"]}})  # warm-up
    counted.reset()
    cancel({**cancel_event, "path": f"/messages/{waiting['id']}", "pathParameters": {"message_id": waiting["id"]}})
    results["cancel (pending)"] = dict(counted.calls)
    sent = json.loads(send_body({"to": "447700900001", "text": "c"})["body"])
    counted.reset()
    cancel({**cancel_event, "path": f"/messages/{sent['id']}", "pathParameters": {"message_id": sent["id"]}})
    results["cancel (sent)"] = dict(counted.calls)

    target = json.loads(send_body({"to": "447700900001", "text": "r"})["body"])
    receipt(stack, pending["id"])  # warm-up of the receipt function's secret
    handler = warm(stack, "ReceiptWebhookFunction")
    receipt_event = load_event("receipt_get_delivered")
    fields = {"messageid": target["id"], "referenceid": "r1", "statuscode": "delivered", "status": "delivered"}
    receipt_event.update(queryStringParameters=fields)
    handler(receipt_event)  # a warm container
    counted.reset()
    receipt_fields = {**fields, "referenceid": "r2"}
    target2 = json.loads(send_body({"to": "447700900001", "text": "r2"})["body"])
    counted.reset()
    handler({**receipt_event, "queryStringParameters": {**receipt_fields, "messageid": target2["id"]}})
    results["receipt"] = dict(counted.calls)
    counted.reset()
    handler({**receipt_event, "queryStringParameters": {**receipt_fields, "messageid": target2["id"]}})
    results["receipt (duplicate)"] = dict(counted.calls)

    mo(stack, {"source": "447700900123", "message_id": "w", "text": "warm-up"})
    mo_handler = warm(stack, "MoWebhookFunction")
    mo_event = load_event("mo_form_text")
    mo_handler(mo_event)
    counted.reset()
    mo_handler({**mo_event, "body": "source=447700900123&message_id=m2&text=hello"})
    results["mo"] = dict(counted.calls)

    batch = stream_batch(stack)
    changes = [r for r in batch["Records"] if r["eventName"] in ("INSERT", "MODIFY")]
    publisher = warm(stack, "PublisherFunction")
    counted.reset()
    publisher({"Records": changes[:10]})
    results["publish (10 events)"] = dict(counted.calls)

    results.update(measure_callbacks(stack, counted, send_body, publisher))
    return results


def measure_callbacks(stack, counted, send_body, publisher) -> dict[str, dict]:
    """One event delivered to a receiver that takes it, one to a receiver that answers 500 (warm, secret cached)."""
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    class Receiver(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(500 if self.path.endswith("/refuse") else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        # SIMs of their own: 447700900001's in-flight slots are taken by now (its messages get no receipts)
        taken = json.loads(send_body({"to": "447700900201", "text": "cb", "status_callback": f"{base}/ok"})["body"])
        refused = json.loads(send_body({"to": "447700900202", "text": "cb", "status_callback": f"{base}/refuse"})["body"])
        publisher(stream_batch(stack))
        records = {json.loads(r["body"])["id"]: r for r in callback_records(stack)["Records"]}
        callbacks = warm(stack, "CallbacksFunction")
        callbacks({"Records": [records[f"{taken['id']}:pending"]]})  # warm-up: the signing secret
        results = {}
        counted.reset()
        assert callbacks({"Records": [records[f"{taken['id']}:sent"]]}) == {"batchItemFailures": []}
        results["callback (delivered)"] = dict(counted.calls)
        counted.reset()
        with pytest.raises(BatchProcessingError):  # its only record failed: Lambda retries the batch
            callbacks({"Records": [records[f"{refused['id']}:sent"]]})
        results["callback (refused)"] = dict(counted.calls)
        return results
    finally:
        server.shutdown()
        server.server_close()


def test_aws_calls_per_operation_equal_the_design_minimum_within_budget(stack, counted, monkeypatch):
    monkeypatch.setenv("ALLOW_INSECURE_CALLBACKS", "true")  # the callback receivers are on loopback
    results = measure(stack, counted)
    from local_stack.template import ROOT

    (ROOT / ".local").mkdir(exist_ok=True)
    (ROOT / ".local" / "aws_calls.txt").write_text(table(results) + "\n")  # make bench prints it
    for operation, (minimum, budget) in BUDGETS.items():
        calls = results[operation]
        assert "secretsmanager" not in calls, f"{operation} read the secret although it was cached"
        # Each operation makes exactly the calls its design needs, per service: an extra call to any
        # service (even one another service's saving would hide in the total) fails here.
        assert calls == minimum, f"{operation}: {calls} differs from the design minimum {minimum}"
        assert sum(calls.values()) <= budget, f"{operation}: {calls} over budget {budget} (design minimum {minimum})"


def test_the_secret_is_read_once_per_cache_period_not_per_request(stack, counted):
    send = stack.handler("SendFunction")
    for _ in range(5):
        send(load_event("send_gsm7"))
    assert counted.operations.count("secretsmanager.GetSecretValue") == 1


def table(results: dict[str, dict]) -> str:
    lines = [f"{'operation':<22} {'calls':<34} {'total':>5} {'minimum':>8}", "-" * 72]
    for operation, (minimum, _) in BUDGETS.items():
        calls = results[operation]
        shown = ", ".join(f"{k} {v}" for k, v in sorted(calls.items()))
        lines.append(f"{operation:<22} {shown:<34} {sum(calls.values()):>5} {sum(minimum.values()):>8}")
    return "\n".join(lines)
