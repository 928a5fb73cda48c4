"""GET /health and POST /health/redrive, in-process against moto: the operators' health page and its one repair."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from local_stack.metrics import put_metric_data_requests
from tests.conftest import REGION, load_event
from tests.helpers import body_of, send

QUEUES = {  # the API's name -> (dead-letter queue, the queue its messages came from)
    "send-retries": ("SendRetryDeadLetterQueue", "SendRetryQueue"),
    "publisher": ("PublisherDeadLetterQueue", None),
    "callbacks": ("CallbackDeadLetterQueue", "CallbackQueue"),
    "sim-queue": ("SimQueueDeadLetterQueue", None),
    "batch-jobs": ("BatchDeadLetterQueue", "BatchQueue"),
}


def health(stack) -> dict:
    response = stack.invoke("HealthFunction", load_event("health_get"))
    assert response["statusCode"] == 200, response
    return body_of(response)


def redrive(stack, body) -> dict:
    event = load_event("health_redrive")
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    return stack.invoke("HealthFunction", event)


def dead_letter(stack, logical_id: str, count: int) -> list[str]:
    bodies = [json.dumps({"id": f"{logical_id}-{n}", "attempt": 9}) for n in range(count)]
    for body in bodies:
        stack.clients["sqs"].send_message(QueueUrl=stack.physical(logical_id), MessageBody=body)
    return bodies


def bodies_on(stack, logical_id: str) -> list[str]:
    url, found = stack.physical(logical_id), []
    while batch := stack.clients["sqs"].receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        found += [m["Body"] for m in batch]
        stack.clients["sqs"].delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(batch)]
        )
    return found


def by_name(page: dict) -> dict[str, dict]:
    return {q["name"]: q for q in page["dead_letter_queues"]}


# --- dead-letter queues ----------------------------------------------------------------------------------


def test_each_dead_letter_queue_shows_its_depth_whether_it_can_be_redriven_and_what_to_do(stack, template):
    # Given three sends and one publisher batch dead-lettered
    dead_letter(stack, "SendRetryDeadLetterQueue", 3)
    dead_letter(stack, "PublisherDeadLetterQueue", 1)
    # When the health page is read
    queues = by_name(health(stack))
    # Then each of the five queues is there, in the template's order, with its depth
    assert list(queues) == list(QUEUES)
    assert {name: q["depth"] for name, q in queues.items()} == {"send-retries": 3, "publisher": 1, "callbacks": 0, "sim-queue": 0, "batch-jobs": 0}
    assert all(q["in_flight"] == 0 for q in queues.values())
    # and those whose messages can go back are redrivable; the stream's are not
    assert {name for name, q in queues.items() if q["redrive"]} == {"send-retries", "callbacks", "batch-jobs"}
    # and each carries the words of its alarm
    advice = template["Mappings"]["DeadLetterQueueAdvice"]
    assert queues["publisher"]["advice"] == advice["Publisher"]["Advice"]
    assert queues["send-retries"]["advice"] == advice["SendRetry"]["Advice"]


def test_a_message_someone_is_holding_counts_as_in_flight(stack):
    # Given a dead-lettered callback that a reader has received and not deleted
    dead_letter(stack, "CallbackDeadLetterQueue", 2)
    stack.clients["sqs"].receive_message(QueueUrl=stack.physical("CallbackDeadLetterQueue"), MaxNumberOfMessages=1, VisibilityTimeout=300)
    # When the health page is read / Then one waits and one is in flight
    callbacks = by_name(health(stack))["callbacks"]
    assert (callbacks["depth"], callbacks["in_flight"]) == (1, 1)


def test_redrive_moves_dead_lettered_sends_back_to_their_queue_and_counts_what_remains(stack):
    # Given five dead-lettered send-retry jobs
    bodies = dead_letter(stack, "SendRetryDeadLetterQueue", 5)
    # When three are redriven
    response = redrive(stack, {"queue": "send-retries", "limit": 3})
    # Then three moved and two remain
    assert response["statusCode"] == 200
    assert body_of(response) == {"queue": "send-retries", "moved": 3, "remaining": 2}
    # When the rest are redriven with the default limit / Then they move too, and the queue is empty
    assert body_of(redrive(stack, {"queue": "send-retries"})) == {"queue": "send-retries", "moved": 2, "remaining": 0}
    # and the send-retry queue holds each job once, as it was
    assert sorted(bodies_on(stack, "SendRetryQueue")) == sorted(bodies)
    assert by_name(health(stack))["send-retries"]["depth"] == 0


def test_movers_working_at_once_never_move_more_than_the_limit(stack):
    # Given 37 dead-lettered sends
    bodies = dead_letter(stack, "SendRetryDeadLetterQueue", 37)
    # When 25 are redriven (by movers ten at a time, at once)
    assert body_of(redrive(stack, {"queue": "send-retries", "limit": 25})) == {"queue": "send-retries", "moved": 25, "remaining": 12}
    # Then exactly 25 reached the send-retry queue, each once, and the other 12 wait
    moved = bodies_on(stack, "SendRetryQueue")
    assert len(moved) == len(set(moved)) == 25 and set(moved) <= set(bodies)


@pytest.mark.parametrize("name", ["callbacks", "batch-jobs"])
def test_callbacks_and_batch_jobs_go_back_to_their_own_queue(stack, name):
    dead_letter_queue, source = QUEUES[name]
    # Given two dead-lettered messages
    bodies = dead_letter(stack, dead_letter_queue, 2)
    # When they are redriven
    assert body_of(redrive(stack, {"queue": name, "limit": 10})) == {"queue": name, "moved": 2, "remaining": 0}
    # Then they are back on the queue they came from
    assert sorted(bodies_on(stack, source)) == sorted(bodies)


def test_redrive_keeps_the_message_attributes(stack):
    # Given a dead-lettered callback event with attributes (as SNS puts them on it)
    url = stack.physical("CallbackDeadLetterQueue")
    attributes = {"event_type": {"DataType": "String", "StringValue": "sms.mt.status"}}
    stack.clients["sqs"].send_message(QueueUrl=url, MessageBody="{}", MessageAttributes=attributes)
    # When it is redriven
    assert body_of(redrive(stack, {"queue": "callbacks"}))["moved"] == 1
    # Then the copy on the callback queue has them
    [message] = stack.clients["sqs"].receive_message(QueueUrl=stack.physical("CallbackQueue"), MessageAttributeNames=["All"])["Messages"]
    assert message["MessageAttributes"]["event_type"]["StringValue"] == "sms.mt.status"


@pytest.mark.parametrize("name", ["publisher", "sim-queue"])
def test_the_stream_dead_letter_queues_are_refused_naming_those_that_can_be_redriven(stack, name):
    # Given a dead-lettered stream batch
    dead_letter(stack, QUEUES[name][0], 1)
    # When a redrive of its queue is asked for
    response = redrive(stack, {"queue": name})
    # Then it is refused with a clear error naming the redrivable queues and what to do instead
    assert response["statusCode"] == 422
    error = body_of(response)["error"]
    assert error["code"] == "not_redrivable"
    assert error["details"]["redrivable"] == ["send-retries", "callbacks", "batch-jobs"]
    assert "send-retries" in error["message"] and error["details"]["advice"]
    # and the message stays where it is
    assert by_name(health(stack))[name]["depth"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"queue": "everything"}, "queue"),
        ({}, "queue"),
        ({"queue": "send-retries", "limit": 0}, "limit"),
        ({"queue": "send-retries", "limit": 1001}, "limit"),
        ({"queue": "send-retries", "limit": "5"}, "limit"),
        ({"queue": "send-retries", "limit": True}, "limit"),
        ({"queue": "send-retries", "limit": 2.5}, "limit"),
        ({"queue": "send-retries", "force": True}, "force"),
    ],
)
def test_an_unknown_queue_or_a_bad_limit_is_422_naming_the_field(stack, body, field):
    response = redrive(stack, body)
    assert response["statusCode"] == 422
    assert field in body_of(response)["error"]["details"]["fields"]


@pytest.mark.parametrize(("body", "status"), [("not json", 400), ("", 400), ("[1, 2]", 422), ('"send-retries"', 422)])
def test_a_body_that_is_not_a_json_object_is_refused_not_a_500(stack, body, status):
    response = redrive(stack, body)
    assert response["statusCode"] == status
    assert body_of(response)["error"]["code"] in ("bad_request", "validation_error")


def test_an_sqs_failure_is_a_503_that_says_what_was_moved(stack, monkeypatch):
    # Given dead-lettered sends and a send-retry queue that no longer exists
    dead_letter(stack, "SendRetryDeadLetterQueue", 2)
    stack.clients["sqs"].delete_queue(QueueUrl=stack.physical("SendRetryQueue"))
    # When they are redriven
    response = redrive(stack, {"queue": "send-retries"})
    # Then the answer is a 503 (never a 500), and the messages are still dead-lettered
    assert response["statusCode"] == 503
    assert body_of(response)["error"]["details"] == {"moved": 0}
    stack.advance_queue_clock(60)  # past the visibility of the attempt
    assert by_name(health(stack))["send-retries"]["depth"] == 2


# --- the quarantine ------------------------------------------------------------------------------------------


def test_the_quarantine_count_covers_the_retention_window(stack):
    # Given three unusable receipts, quarantined by the webhook
    for _ in range(3):
        assert stack.invoke("ReceiptWebhookFunction", load_event("receipt_missing_fields"))["statusCode"] == 400
    # and requests quarantined 3 and 10 days ago, and one 20 days ago (past the 14 days it is kept)
    inbound = stack.deps().store.inbound
    now = datetime.now(UTC)
    for days in (3, 10, 20):
        at = (now - timedelta(days=days)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        inbound.quarantine(at, f"old{days}", {"reason": "test", "ttl": 0})
    # When the health page is read
    quarantine = health(stack)["quarantine"]
    # Then it counts the five within the window, and says when the latest came
    assert quarantine["count"] == 5
    assert quarantine["days"] == 14 and quarantine["complete"] is True
    latest = datetime.fromisoformat(quarantine["latest_at"])
    assert now - timedelta(minutes=1) < latest <= datetime.now(UTC)


def test_an_empty_quarantine_counts_zero(stack):
    assert health(stack)["quarantine"] == {"count": 0, "days": 14, "latest_at": None, "complete": True}


def test_the_count_stops_at_its_bound_of_reads_and_says_so(stack, monkeypatch):
    from smsgw.logic import health as logic

    # Given requests quarantined on four different days, and a bound of three reads
    inbound = stack.deps().store.inbound
    now = datetime.now(UTC)
    for days in (0, 1, 2, 3):
        at = (now - timedelta(days=days)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        inbound.quarantine(at, f"q{days}", {"reason": "test", "ttl": 0})
    monkeypatch.setattr(logic, "QUARANTINE_MAX_QUERIES", 3)
    # When the health page is read
    quarantine = health(stack)["quarantine"]
    # Then it counted what it read (today's, with the latest's time, and yesterday's) and says it is not complete
    assert (quarantine["count"], quarantine["complete"]) == (2, False)
    assert quarantine["latest_at"] is not None


# --- Eseye's error rate --------------------------------------------------------------------------------------


def put_metrics(values: dict[str, float], when: datetime | None = None, dimensions: dict[str, str] | None = None) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    dims = [{"Name": k, "Value": v} for k, v in (dimensions or {"service": "eseye-sms-gateway"}).items()]
    cloudwatch.put_metric_data(
        Namespace="EseyeSmsGateway",
        MetricData=[
            {"MetricName": k, "Dimensions": dims, "Value": v, "Unit": "Count", "Timestamp": when or datetime.now(UTC)} for k, v in values.items()
        ],
    )


def test_the_error_rate_is_retries_and_rejections_over_all_attempts_in_the_last_15_minutes(stack):
    # Given, in the last minutes, 6 sends, 1 rejection and 1 retry
    put_metrics({"Sent": 4, "Rejected": 1})
    put_metrics({"Sent": 2, "SendRetried": 1}, datetime.now(UTC) - timedelta(minutes=10))
    # and older metrics, and metrics of another service, that do not count
    put_metrics({"Rejected": 50}, datetime.now(UTC) - timedelta(minutes=30))
    put_metrics({"Rejected": 50}, dimensions={"service": "another"})
    # When the health page is read
    eseye = health(stack)["eseye"]
    # Then the rate is (1 + 1) / (6 + 1 + 1), with the alarm's threshold beside it
    assert eseye == {"window_minutes": 15, "sent": 6, "rejected": 1, "retried": 1, "error_rate": 0.25, "alarm_threshold": 0.2}


def test_with_nothing_attempted_the_error_rate_is_null(stack):
    eseye = health(stack)["eseye"]
    assert (eseye["sent"], eseye["rejected"], eseye["retried"], eseye["error_rate"]) == (0, 0, 0, None)


def test_the_metrics_a_send_prints_reach_cloudwatch_as_the_local_stack_forwards_them(stack, capsys):
    # Given a send that Eseye accepts and one it refuses (ERROR 570), their EMF documents printed by Powertools
    capsys.readouterr()
    assert send(stack, body={"to": "447700900123", "text": "OK"})["statusCode"] == 202
    assert send(stack, body={"to": "447700900570", "text": "NO CREDIT"})["statusCode"] == 422
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{") and '"_aws"' in line]
    # When the local stack hands them to CloudWatch as PutMetricData
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    for document in documents:
        for request in put_metric_data_requests(document):
            cloudwatch.put_metric_data(**request)
    # Then the health page sees one send and one rejection: half of the attempts failed
    eseye = health(stack)["eseye"]
    assert (eseye["sent"], eseye["rejected"], eseye["error_rate"]) == (1, 1, 0.5)
