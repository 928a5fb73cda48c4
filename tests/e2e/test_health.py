"""The Health page's API on the local stack: Eseye's error rate from the functions' own metrics (EMF into moto's
CloudWatch), and a dead-lettered retry redriven back to its queue, through smsgw_client."""

from __future__ import annotations

import json

import pytest

from smsgw_client import ApiError, Client
from tests.e2e.conftest import smsgw
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e


def test_sends_eseye_refuses_raise_the_error_rate_on_the_health_page(local_stack):
    # Given the client, and Eseye's recent figures as the health page shows them now
    client = Client(local_stack.api)
    before = client.health()["eseye"]
    assert before["window_minutes"] == 15 and before["alarm_threshold"] == 0.2
    # When four sends go to SIMs whose Eseye account has no credit (the simulator answers ERROR 570 to *0570)
    for n in range(4):
        with pytest.raises(ApiError) as refused:
            client.send_message(f"4477036{n:01d}00570", "NO CREDIT")
        assert refused.value.code == "eseye_rejected"

    # Then the health page counts them, from the metrics the send function printed, and the rate rises
    def counted() -> dict | None:
        eseye = client.health()["eseye"]
        return eseye if eseye["rejected"] >= before["rejected"] + 4 else None

    after = wait_until(counted, 30, interval=0.5, message="the rejections reach the health page")
    attempts = after["sent"] + after["rejected"] + after["retried"]
    assert after["error_rate"] == pytest.approx((after["rejected"] + after["retried"]) / attempts)
    assert before["error_rate"] is None or after["error_rate"] > before["error_rate"] or before["error_rate"] == 1.0


def test_a_dead_lettered_retry_is_redriven_and_changes_nothing_for_a_delivered_message(local_stack):
    # Given a delivered message, and a retry job for it stuck in the send-retry dead-letter queue
    client = Client(local_stack.api)
    message = client.send_message("447703611001", "HEALTH CHECK")
    wait_until(lambda: client.get_message(message["id"])["status"] == "delivered", 60, interval=0.3)
    sqs = local_stack.client("sqs")
    dead_letters = local_stack.outputs["SendRetryDeadLetterQueueUrl"]
    sqs.send_message(QueueUrl=dead_letters, MessageBody=json.dumps({"id": message["id"], "attempt": 2, "ambiguous": False}))
    # When the health page is read
    send_retries = {q["name"]: q for q in client.health()["dead_letter_queues"]}["send-retries"]
    # Then it shows the job, redrivable, with what to do about it
    assert send_retries["depth"] >= 1 and send_retries["redrive"] is True and "redrive" in send_retries["advice"]
    # and so does `smsgw health`, with the exit status a monitoring script reads as "needs attention"
    shown = smsgw(local_stack, "health")
    assert shown.returncode == 3, shown.stderr
    assert "redrive: smsgw redrive-sends, or the console's Health page" in shown.stdout
    # When it is redriven
    moved = client.redrive("send-retries", limit=10)
    # Then it moved back to the send-retry queue, the dead-letter queue is empty, and the dispatcher takes it
    assert moved["moved"] >= 1 and moved["remaining"] == 0
    wait_until(lambda: {q["name"]: q for q in client.health()["dead_letter_queues"]}["send-retries"]["depth"] == 0, 30, interval=0.5)

    # and the delivered message stays delivered: the job changed nothing
    def taken() -> bool:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        counts = sqs.get_queue_attributes(QueueUrl=local_stack.outputs["SendRetryQueueUrl"], AttributeNames=names)["Attributes"]
        return all(int(counts[name]) == 0 for name in names)

    wait_until(taken, 30, interval=0.5, message="the dispatcher takes the redriven job")
    assert client.get_message(message["id"])["status"] == "delivered"


def test_the_stream_queues_are_refused_with_the_apis_words(local_stack):
    client = Client(local_stack.api)
    with pytest.raises(ApiError) as refused:
        client.redrive("publisher")
    assert refused.value.status == 422 and refused.value.code == "not_redrivable"
    assert refused.value.details["redrivable"] == ["send-retries", "callbacks", "batch-jobs"]
