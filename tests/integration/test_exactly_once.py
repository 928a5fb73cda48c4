"""Exactly once to Eseye (issue 9): every documented Eseye answer form understood, one job at a time per
message, outcomes the gateway does not know never called failed, and Eseye's word over the gateway's guesses.

Destinations ending in 0001 never get a receipt from the simulator, so a message Eseye accepted stays
`sent` and the count of accepted `mtsmsapi` requests is the whole truth of what reached Eseye.
"""

import json
import threading

import pytest

from tests.helpers import body_of, cancel, get, receipt, received_events, restart, send, settle, stream_batch, subscribe

QUIET = "447700900001"  # the simulator keeps it queued: no receipt ever settles it
FORMS = ("text", "xml", "xml_bare")


def accepted_sends(stack, message_id):
    held = stack.eseye.messages.get(message_id)
    return held.sends if held else 0


def eseye_requests(stack, message_id, request=None):
    return [r for r in stack.eseye.requests if r["form"].get("message_id") == message_id and request in (None, r["request"])]


@pytest.fixture
def short_timeout(stack, monkeypatch):
    monkeypatch.setitem(stack.context.parameters, "EseyeReadTimeoutSeconds", "1")


def message_of(response):
    body = body_of(response)
    return body["error"]["details"]["message"] if "error" in body else body


# --- 1. every Eseye answer form --------------------------------------------------------------------

SEND_FAULTS = [
    ("empty", 0),  # an empty 200
    ("html", 0),  # an HTML error page
    ("http500", 0),
    ("http503", 0),
    ("drop", 0),  # the connection dropped before Eseye read the request
    ("timeout", 1.5),  # never answered, never processed
    ("slow", 1.5),  # processed, answered after our timeout
    ("drop_after_accept", 1.5),  # processed, never answered
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(("fault", "delay"), SEND_FAULTS)
def test_every_fault_in_every_error_form_ends_sent_with_one_accepted_request(stack, short_timeout, form, fault, delay):
    # Given Eseye answers errors in one documented form, and misbehaves on the first send
    stack.eseye.configure(error_form=form)
    stack.eseye.inject(fault, delay=delay)
    # When a command is sent and the dispatcher runs until nothing is left to retry
    message = message_of(send(stack, body={"to": QUIET, "text": "reboot"}))
    settle(stack)
    # Then the message ends sent, and Eseye accepted exactly one mtsmsapi request for it
    final = body_of(get(stack, message["id"]))
    assert final["status"] == "sent", final["history"]
    assert final["status_source"] == "eseye"
    assert accepted_sends(stack, message["id"]) == 1


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("probe_fault", ["http503", "html", "empty"])
def test_a_probe_that_fails_is_retried_like_a_send_and_never_resends_blindly(stack, short_timeout, form, probe_fault):
    # Given the send times out unprocessed, and the first status probe fails too
    stack.eseye.configure(error_form=form)
    stack.eseye.inject("timeout", delay=1.5)
    message = message_of(send(stack, body={"to": QUIET, "text": "reboot"}))
    stack.eseye.inject(probe_fault)
    # When the dispatcher runs until nothing is left to retry
    settle(stack)
    # Then the failed probe was asked again, Eseye said it does not know the id, and one send went through
    final = body_of(get(stack, message["id"]))
    assert final["status"] == "sent", final["history"]
    assert [r["request"] for r in eseye_requests(stack, message["id"])] == ["mtsmsapi", "mtstatusapi", "mtstatusapi", "mtsmsapi"]
    assert accepted_sends(stack, message["id"]) == 1


@pytest.mark.parametrize("form", FORMS)
def test_a_documented_rejection_in_any_form_ends_rejected_with_its_code(stack, form):
    stack.eseye.configure(error_form=form)
    response = send(stack, body={"to": "447700900570", "text": "no credit"})
    assert response["statusCode"] == 422
    assert (body_of(response)["error"]["details"]["eseye_code"], message_of(response)["status"]) == (570, "rejected")


@pytest.mark.parametrize("status", ["mgmt", "transit"])
def test_a_probe_that_answers_any_message_status_means_eseye_has_it(stack, short_timeout, status):
    # Given a send whose answer never came, and a probe answering a status (documented or not)
    stack.eseye.inject("timeout", delay=1.5)
    message = message_of(send(stack, body={"to": QUIET, "text": "reboot"}))
    stack.eseye.inject(f"status_{status}")
    # When the dispatcher runs
    settle(stack)
    # Then Eseye is taken at its word: the message is sent, and never sent again
    final = body_of(get(stack, message["id"]))
    assert (final["status"], final["status_source"]) == ("sent", "eseye")
    assert len(eseye_requests(stack, message["id"], "mtsmsapi")) == 1


# --- 2. one message, one send at a time ------------------------------------------------------------


def test_the_same_retry_job_run_twice_at_once_sends_once(stack, atomic_items):
    from smsgw.logic import dispatch

    # Given a message whose first attempt never reached Eseye, and a slow Eseye
    stack.eseye.stop()
    message = body_of(send(stack, body={"to": QUIET, "text": "reboot"}))
    [job] = stack.queue_jobs()
    restart(stack.eseye)
    stack.eseye.inject("slow", count=2, delay=0.5)
    # When two dispatchers run the same job at the same moment (SQS delivers at least once)
    deps = stack.deps("DispatcherFunction")
    outcomes = []
    threads = [threading.Thread(target=lambda: outcomes.append(dispatch.dispatch(dispatch.parse_job(json.dumps(job)), deps))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then only the one holding the lease talked to Eseye, and Eseye saw one send
    assert sorted(outcomes) == ["not_claimed", "sent"]
    assert len(eseye_requests(stack, message["id"], "mtsmsapi")) == 1
    assert accepted_sends(stack, message["id"]) == 1


def test_attempts_are_counted_on_the_message_not_per_job_chain(stack):
    # Given Eseye answers nothing usable, and SQS delivers the first retry job three times
    stack.eseye.inject("http500", count=50)
    message = body_of(send(stack, body={"to": QUIET, "text": "reboot"}))
    [job] = stack.queue_jobs()
    from tests.helpers import sqs_event

    assert stack.invoke("DispatcherFunction", sqs_event([job, job, job])) == {"batchItemFailures": []}
    settle(stack)
    # Then Eseye saw at most SendMaxAttempts (3) requests for the message, and it ended failed by the gateway
    assert len(eseye_requests(stack, message["id"])) == 3
    final = body_of(get(stack, message["id"]))
    assert (final["status"], final["status_source"], final["attempts"]) == ("failed", "gateway", 3)


# --- 3. an outcome the gateway does not know -------------------------------------------------------


def refuse_writes_while_armed(monkeypatch, condition):
    """DynamoDB refuses every UpdateItem that `condition(values)` picks, beyond all the SDK's retries, until
    the returned switch is disarmed: one logical write of the gateway fails."""
    from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, DynamodbException
    from moto.dynamodb.models import DynamoDBBackend

    original = DynamoDBBackend.update_item
    switch = {"armed": True}

    def update_item(self, *args, **kwargs):
        values = kwargs.get("expression_attribute_values") or (args[4] if len(args) > 4 else {}) or {}
        if switch["armed"] and condition(values):
            raise DynamodbException(ERROR_TYPE_PREFIX + "ProvisionedThroughputExceededException", "throttled")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DynamoDBBackend, "update_item", update_item)
    return switch


def is_sent_write(values):
    return values.get(":status") == {"S": "sent"}


def test_a_sent_write_that_fails_once_never_sends_the_command_twice(stack, monkeypatch):
    # Given Eseye answers OK! and recording `sent` fails once
    switch = refuse_writes_while_armed(monkeypatch, is_sent_write)
    key = {"Idempotency-Key": "reboot-7"}
    first = send(stack, body={"to": QUIET, "text": "reboot"}, headers=key)
    switch["armed"] = False
    # Then the gateway does not know the outcome: the message stays pending (never failed)
    assert first["statusCode"] == 202
    assert body_of(first)["status"] == "pending"
    # When the client sends the same request again with the same key, and the retry runs
    again = send(stack, body={"to": QUIET, "text": "reboot"}, headers=key)
    assert again["statusCode"] == 202
    assert body_of(again)["id"] == body_of(first)["id"]
    settle(stack)
    # Then Eseye accepted exactly one request, and the message ends sent
    message_id = body_of(first)["id"]
    assert len(eseye_requests(stack, message_id, "mtsmsapi")) == 1
    assert body_of(get(stack, message_id))["status"] == "sent"


def retry_queue_unreachable(monkeypatch):
    from smsgw.adapters.queue import RetryQueue
    from smsgw.errors import ServiceUnavailable

    def unreachable(self, job, delay):
        raise ServiceUnavailable("the retry queue could not be reached")

    monkeypatch.setattr(RetryQueue, "schedule", unreachable)


def test_a_retried_request_resumes_its_message_when_nothing_could_be_scheduled(stack, monkeypatch):
    # Given recording `sent` fails once and the retry queue cannot be reached: the client gets 503
    with pytest.MonkeyPatch.context() as outage:
        refuse_writes_while_armed(outage, is_sent_write)
        retry_queue_unreachable(outage)
        key = {"Idempotency-Key": "reboot-8"}
        first = send(stack, body={"to": QUIET, "text": "reboot"}, headers=key)
        assert first["statusCode"] == 503
    [item] = [i for i in stack.clients["dynamodb"].scan(TableName=stack.table)["Items"] if i["PK"]["S"].startswith("MSG#")]
    assert item["status"]["S"] == "pending"
    # When the client retries with the same key
    again = send(stack, body={"to": QUIET, "text": "reboot"}, headers=key)
    # Then the same message is resumed: Eseye is asked first, has it, and is never sent it twice
    assert again["statusCode"] == 202
    resumed = body_of(again)
    assert (resumed["id"], resumed["status"]) == (item["id"]["S"], "sent")
    assert [r["request"] for r in eseye_requests(stack, resumed["id"])] == ["mtsmsapi", "mtstatusapi"]


def test_the_same_key_with_another_body_is_a_conflict_even_after_a_failure(stack, monkeypatch):
    switch = refuse_writes_while_armed(monkeypatch, is_sent_write)
    retry_queue_unreachable(monkeypatch)
    key = {"Idempotency-Key": "reboot-9"}
    assert send(stack, body={"to": QUIET, "text": "reboot"}, headers=key)["statusCode"] == 503
    switch["armed"] = False
    assert send(stack, body={"to": QUIET, "text": "something else"}, headers=key)["statusCode"] == 409


# --- 4. Eseye's word over the gateway's guesses ----------------------------------------------------


def exhausted(stack):
    """A message whose retries ran out while Eseye may have had it: failed, as the gateway infers."""
    stack.eseye.inject("http500", count=50)
    message = body_of(send(stack, body={"to": QUIET, "text": "reboot"}))
    settle(stack)
    stack.eseye.reset()
    final = body_of(get(stack, message["id"]))
    assert (final["status"], final["status_source"]) == ("failed", "gateway")
    return message["id"]


def test_a_receipt_after_the_gateway_gave_up_still_applies_and_is_published(stack):
    url = subscribe(stack)
    message_id = exhausted(stack)
    # When Eseye's delivery receipt arrives after all
    assert receipt(stack, message_id, "delivered")["statusCode"] == 200
    # Then the message is delivered, as Eseye reports it, and the event says so
    final = body_of(get(stack, message_id))
    assert (final["status"], final["status_source"]) == ("delivered", "eseye")
    stack.invoke("PublisherFunction", stream_batch(stack))
    statuses = [(e["data"]["status"], e["data"]["status_source"]) for e in received_events(stack, url) if e["data"]["id"] == message_id]
    assert statuses[-1] == ("delivered", "eseye")


def test_a_failed_receipt_confirms_an_inferred_failure_with_its_own_event(stack):
    url = subscribe(stack)
    message_id = exhausted(stack)
    stack.invoke("PublisherFunction", stream_batch(stack))
    assert receipt(stack, message_id, "failed")["statusCode"] == 200
    final = body_of(get(stack, message_id))
    assert (final["status"], final["status_source"]) == ("failed", "eseye")
    stack.invoke("PublisherFunction", stream_batch(stack))
    ids = [e["id"] for e in received_events(stack, url) if e["data"]["id"] == message_id]
    assert ids[-2:] == [f"{message_id}:failed", f"{message_id}:failed:eseye"]


def test_delivered_wins_over_failed_whichever_came_first_and_the_history_keeps_both(stack):
    message = body_of(send(stack, body={"to": QUIET, "text": "reboot"}))
    # Given a multi-IMSI SIM: one copy fails, the other is delivered
    assert receipt(stack, message["id"], "failed", reference="imsi-2")["statusCode"] == 200
    assert receipt(stack, message["id"], "delivered", reference="imsi-1")["statusCode"] == 200
    final = body_of(get(stack, message["id"]))
    assert final["status"] == "delivered"
    assert [h["status"] for h in final["history"] if h["event"] == "receipt"] == ["failed", "delivered"]
    # And a failure reported after the delivery changes nothing
    assert receipt(stack, message["id"], "failed", reference="imsi-3")["statusCode"] == 200
    assert body_of(get(stack, message["id"]))["status"] == "delivered"


def test_cancelling_a_pending_message_that_may_be_at_eseye_cancels_it_at_eseye(stack, short_timeout):
    # Given a send whose answer was lost after Eseye took it: pending, and maybe at Eseye
    stack.eseye.inject("drop_after_accept", delay=1.5)
    message = body_of(send(stack, body={"to": QUIET, "text": "reboot"}))
    assert message["status"] == "pending"
    # When the customer cancels it
    response = cancel(stack, message["id"])
    # Then the gateway asked Eseye to cancel it too, and Eseye's answer decides
    assert response["statusCode"] == 200
    assert (body_of(response)["status"], body_of(response)["status_source"]) == ("cancelled", "eseye")
    assert stack.eseye.messages[message["id"]].status == "cancelling"
    # And no retry sends it afterwards
    settle(stack)
    assert accepted_sends(stack, message["id"]) == 1


@pytest.mark.parametrize("answer", ["sent", "queued", "mgmt"])
def test_a_cancel_answer_that_does_not_confirm_leaves_the_message_and_says_so(stack, answer):
    message = body_of(send(stack, body={"to": QUIET, "text": "reboot"}))
    stack.eseye.inject(f"status_{answer}")
    response = cancel(stack, message["id"])
    assert response["statusCode"] == 409
    assert body_of(response)["error"]["details"]["eseye_status"] == answer
    assert answer in body_of(response)["error"]["message"]
    assert body_of(get(stack, message["id"]))["status"] == "sent"


def test_statuses_say_who_decided_them(stack):
    stack.eseye.stop()
    pending = body_of(send(stack, body={"to": QUIET, "text": "reboot"}))
    assert (pending["status"], pending["status_source"]) == ("pending", "gateway")
    cancelled = body_of(cancel(stack, pending["id"]))
    assert (cancelled["status"], cancelled["status_source"]) == ("cancelled", "gateway")
    restart(stack.eseye)
    sent = body_of(send(stack, body={"to": QUIET, "text": "reboot"}))
    assert (sent["status"], sent["status_source"]) == ("sent", "eseye")


def test_a_retry_from_another_session_of_the_same_role_finds_the_first_request(stack):
    from tests.conftest import load_event

    def send_as(session):
        event = load_event("send_idempotent")
        event["body"] = json.dumps({"to": QUIET, "text": "reboot"})
        event["requestContext"]["identity"]["userArn"] = f"arn:aws:sts::123456789012:assumed-role/fleet-sender/{session}"
        return stack.invoke("SendFunction", event)

    # Given a worker sends with an Idempotency-Key, and another worker of the same service retries it
    first, second = send_as("worker-a"), send_as("worker-b")
    # Then the retry is recognised: one message, one send
    assert body_of(first)["id"] == body_of(second)["id"]
    assert len(eseye_requests(stack, body_of(first)["id"], "mtsmsapi")) == 1
