"""Faults injected one at a time. Every accepted message ends in the table with the right status, and
every event reaches the topic exactly once as a deduplicating subscriber sees it."""

import hashlib
import json
import threading

import botocore.client
import pytest
from botocore.awsrequest import AWSResponse

from tests.helpers import body_of, cancel, get, receipt, received_events, send, settle, stream_batch, subscribe, wait_until


def assert_events_match_history(stack, url, message_id):
    publish = stack.invoke("PublisherFunction", stream_batch(stack))
    assert publish == {"batchItemFailures": []}
    seen = {}
    for event in received_events(stack, url):
        seen.setdefault(event["id"], event)  # the subscriber deduplicates by id
    statuses = [e["data"]["status"] for e in seen.values() if e["data"]["id"] == message_id and e["type"] == "sms.mt.status"]
    history = []
    for entry in get_message(stack, message_id)["history"]:
        if not history or history[-1] != entry["status"]:
            history.append(entry["status"])
    assert statuses == history


def get_message(stack, message_id):
    return body_of(get(stack, message_id))


@pytest.fixture
def short_timeout(stack, monkeypatch):
    monkeypatch.setitem(stack.context.parameters, "EseyeReadTimeoutSeconds", "1")


@pytest.mark.parametrize(
    ("fault", "delay", "final", "ambiguous"),
    [
        ("empty", 0, "sent", True),
        ("html", 0, "sent", True),
        ("http500", 0, "sent", True),
        ("unknown_code", 0, "rejected", None),
        ("slow", 0.5, "sent", None),  # just under the 1 s timeout: an ordinary answer
        ("slow", 1.5, "delivered", True),  # just over: Eseye took it; the probe finds it, no second send
        ("timeout", 1.5, "sent", True),  # never answered, never taken: the probe finds nothing, we resend
    ],
)
def test_eseye_faults_end_in_the_right_state_with_events_once(stack, short_timeout, fault, delay, final, ambiguous):
    url = subscribe(stack)
    stack.eseye.inject(fault, delay=delay)
    response = send(stack, body={"to": "447700900001" if final != "delivered" else "447700900123", "text": "x"})
    message = body_of(response) if response["statusCode"] == 202 else body_of(response)["error"]["details"]["message"]
    settle(stack)
    if final == "delivered":  # the probe saw what the simulator had settled; its receipt may still be on its way
        wait_until(lambda: stack.eseye.messages[message["id"]].status == "delivered", message="the simulator to deliver it")
    result = get_message(stack, message["id"])
    if final == "delivered":
        assert result["status"] in ("sent", "delivered")  # the probe sees what the simulator has settled
    else:
        assert result["status"] == final
    if fault in ("slow", "timeout") and ambiguous:
        assert stack.eseye.messages[message["id"]].sends == 1
    if fault == "unknown_code":
        assert (response["statusCode"], result["eseye_code"]) == (422, 599)
    assert_events_match_history(stack, url, message["id"])


def lose_answers(monkeypatch, operation: str | tuple[str, ...], times: int):
    """DynamoDB applies `operation` (or each of several) but its answer is lost `times` times (the SDK sees
    throttling and retries).

    botocore calls every before-send handler: moto executes the request, and our reply replaces its answer.
    """
    remaining = {"n": times}

    def before_send(request, **kwargs):
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else target
        operations = (operation,) if isinstance(operation, str) else operation
        if target.endswith(tuple("." + o for o in operations)) and remaining["n"] > 0:
            remaining["n"] -= 1
            body = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException", "message": "throttled"})
            return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.0"}, _Raw(body.encode()))
        return None

    original = botocore.client.BaseClient._make_api_call

    def make_api_call(self, operation_name, params):
        self.meta.events.register_first("before-send.dynamodb", before_send, unique_id="lose-answers")
        return original(self, operation_name, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", make_api_call)
    return remaining


def throttle(monkeypatch, method: str, times: int):
    """DynamoDB refuses `method` (a moto backend method) with throttling `times` times: nothing is written."""
    from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, DynamodbException
    from moto.dynamodb.models import DynamoDBBackend

    class ProvisionedThroughputExceeded(DynamodbException):
        """Named as DynamoDB names the cancellation reason of a transaction whose write was throttled
        (moto reports a failing write's exception class as its reason)."""

    remaining = {"n": times}
    original = getattr(DynamoDBBackend, method)

    def refusing(self, *args, **kwargs):
        if remaining["n"] > 0:
            remaining["n"] -= 1
            raise ProvisionedThroughputExceeded(
                ERROR_TYPE_PREFIX + "ProvisionedThroughputExceededException", "The level of configured provisioned throughput was exceeded"
            )
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DynamoDBBackend, method, refusing)
    return remaining


class _Raw:
    def __init__(self, data: bytes):
        self.data = data

    def stream(self, *args, **kwargs):
        yield self.data


def test_brief_dynamodb_throttling_is_absorbed_by_retries(stack, monkeypatch):
    remaining = throttle(monkeypatch, "update_item", 2)
    response = send(stack)
    assert response["statusCode"] == 202 and body_of(response)["status"] == "sent"
    assert remaining["n"] == 0


def test_lost_dynamodb_answers_are_retried_without_harm(stack, monkeypatch):
    # The create and the sent write both land, but their answers are lost once each: the retries must
    # recognise our own writes rather than fail.
    remaining = lose_answers(monkeypatch, "UpdateItem", 2)
    response = send(stack)
    assert response["statusCode"] == 202 and body_of(response)["status"] == "sent"
    assert remaining["n"] == 0
    assert len(stack.eseye.requests) == 1


def test_persistent_throttling_refuses_with_503_and_stores_nothing(stack, monkeypatch):
    throttle(monkeypatch, "update_item", 100)
    response = send(stack)
    assert response["statusCode"] == 503
    assert body_of(response)["error"]["code"] == "service_unavailable"
    monkeypatch.undo()
    assert stack.clients["dynamodb"].scan(TableName=stack.table)["Count"] == 0
    assert stack.eseye.requests == []  # nothing reached Eseye either


def test_two_receipts_at_once_apply_once(stack, atomic_items):
    url = subscribe(stack)
    message = body_of(send(stack, body={"to": "447700900001", "text": "x"}))
    results = []
    threads = [threading.Thread(target=lambda: results.append(receipt(stack, message["id"])["statusCode"])) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 4
    stored = stack.message_item(message["id"])
    assert stored["status"] == "delivered"
    assert sum(1 for h in stored["history"] if h["event"] == "receipt") == 1
    assert_events_match_history(stack, url, message["id"])


def test_cancel_racing_a_delivery_receipt_ends_consistent(stack, atomic_items):
    url = subscribe(stack)
    message = body_of(send(stack, body={"to": "447700900001", "text": "x"}))
    outcomes = {}
    racers = [
        threading.Thread(target=lambda: outcomes.update(cancel=cancel(stack, message["id"])["statusCode"])),
        threading.Thread(target=lambda: outcomes.update(receipt=receipt(stack, message["id"])["statusCode"])),
    ]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    final = get_message(stack, message["id"])["status"]
    assert final in ("cancelled", "delivered")
    assert outcomes["cancel"] == (200 if final == "cancelled" else 409)
    assert outcomes["receipt"] == 200
    assert_events_match_history(stack, url, message["id"])


def test_a_long_outage_keeps_accepting_then_fails_visibly_with_an_event(stack):
    url = subscribe(stack)
    stack.eseye.stop()
    accepted = [body_of(send(stack, body={"to": "447700900001", "text": f"m{n}"})) for n in range(3)]
    assert {m["status"] for m in accepted} == {"pending"}
    settle(stack)  # three attempts in this stack, all refused
    for message in accepted:
        final = get_message(stack, message["id"])
        assert final["status"] == "failed"
        assert "Eseye unavailable after 3 attempts" in final["history"][-1]["cause"]
        assert_events_match_history(stack, url, message["id"])


def test_dead_lettered_sends_are_redriven_by_the_operator_command(stack, tmp_path):
    from smsgw_cli.main import main as smsgw

    stack.eseye.stop()
    message = body_of(send(stack))
    [job] = stack.queue_jobs()
    # Given the retry ended in the dead-letter queue (as repeated dispatcher crashes would leave it)
    dlq = stack.physical("SendRetryDeadLetterQueue")
    stack.clients["sqs"].send_message(QueueUrl=dlq, MessageBody=json.dumps(job))
    stack.eseye.start()
    # When the operator redrives once Eseye is back
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"SendRetryDeadLetterQueueUrl": dlq, "SendRetryQueueUrl": stack.physical("SendRetryQueue"), "Region": "eu-west-1"}))
    assert smsgw(["--outputs", str(outputs), "redrive-sends"]) == 0
    settle(stack)
    # Then the message is sent
    assert get_message(stack, message["id"])["status"] == "sent"


def test_a_lambda_killed_mid_send_does_not_block_its_idempotency_key_for_ever(stack, monkeypatch):
    from local_stack.apigw import LambdaContext
    from smsgw import http
    from smsgw.logic import send as send_logic

    deps = stack.deps()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # a timeout kills the sandbox: no cleanup code runs

    monkeypatch.setattr(send_logic, "send_message", killed)
    with pytest.raises(KeyboardInterrupt):
        send_logic.send_idempotently({"to": "447700900123", "text": "x"}, "https://x", "k1", "caller", LambdaContext(timeout_seconds=1), deps)
    monkeypatch.undo()
    # While the killed invocation could still be running, the key is busy
    with pytest.raises(Exception) as busy:
        send_logic.send_idempotently({"to": "447700900123", "text": "x"}, "https://x", "k1", "caller", LambdaContext(timeout_seconds=25), deps)
    assert "still in progress" in str(busy.value)

    # Once its time is up, a retry goes through
    def retried():
        try:
            return send_logic.send_idempotently(
                {"to": "447700900123", "text": "x"}, "https://x", "k1", "caller", LambdaContext(timeout_seconds=25), deps
            )
        except Exception as exc:
            assert "still in progress" in str(exc)
            return None

    result = wait_until(retried, message="the killed invocation's time to run out")
    assert http.send_response(result).status_code == 202


def test_a_message_left_pending_by_lost_answers_is_rescued_by_the_reconciler(stack, monkeypatch):
    from datetime import timedelta

    from smsgw.logic import reconcile

    # Given the create lands but every answer is lost: the client gets a 503, the message sits pending,
    # and the invocation that held its attempt lease is gone (its lease has run out)
    with pytest.MonkeyPatch.context() as lease:
        lease.setitem(stack.context.parameters, "SendLeaseSeconds", "0")
        lose_answers(monkeypatch, ("UpdateItem", "TransactWriteItems"), 100)  # the create is a transaction
        assert send(stack)["statusCode"] == 503
        monkeypatch.undo()
    [item] = [i for i in stack.clients["dynamodb"].scan(TableName=stack.table)["Items"] if i["PK"]["S"].startswith("MSG#")]
    message_id = item["id"]["S"]
    assert stack.message_item(message_id)["status"] == "pending"
    assert stack.queue_jobs(wait=900) == []  # nothing scheduled to move it, not even with a backoff
    # When the reconciler runs (as if its stale threshold had passed)
    assert reconcile.reconcile_pending(stack.deps(), stale_after=timedelta(0)) == 1
    assert reconcile.reconcile_pending(stack.deps(), stale_after=timedelta(minutes=20)) == 0  # just touched
    settle(stack)
    # Then the message is probed, sent once, and its history says why
    final = get_message(stack, message_id)
    assert final["status"] == "sent"
    assert [h["event"] for h in final["history"]][-3:] == ["reconcile", "eseye_probe", "eseye_send"]


def test_messages_leave_the_pending_index_when_they_move_on(stack):
    sent = body_of(send(stack))
    stored = stack.message_item(sent["id"])
    assert "GSI3PK" not in stored
    stack.eseye.stop()
    pending = stack.message_item(body_of(send(stack))["id"])
    assert pending["GSI3PK"] == f"PENDING#{int(hashlib.sha256(pending['id'].encode()).hexdigest()[:2], 16) % 64:02x}"


def test_dead_lettered_callbacks_are_redriven_by_the_operator_command(stack, tmp_path):
    from smsgw_cli.main import main as smsgw

    dlq, queue = stack.physical("CallbackDeadLetterQueue"), stack.physical("CallbackQueue")
    stack.clients["sqs"].send_message(QueueUrl=dlq, MessageBody=json.dumps({"type": "sms.mt.status", "id": "x:sent"}))
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"CallbackDeadLetterQueueUrl": dlq, "CallbackQueueUrl": queue, "Region": "eu-west-1"}))
    assert smsgw(["--outputs", str(outputs), "redrive-callbacks"]) == 0
    [moved] = stack.clients["sqs"].receive_message(QueueUrl=queue)["Messages"]
    assert json.loads(moved["Body"])["id"] == "x:sent"
    assert "Messages" not in stack.clients["sqs"].receive_message(QueueUrl=dlq)
