"""What `smsgw subscribe` asks SNS for: the filter and delivery policies, and the arguments it refuses."""

import json

import pytest

from smsgw_cli.main import main
from smsgw_cli.subscriptions import DELIVERY_POLICY, SNS_MAX_RETRY_SECONDS, filter_policy, retry_span


def test_the_filter_selects_the_asked_event_types_and_sims_on_the_events_attributes():
    # Given two event types and two SIMs, one written with a +
    # When the filter policy is built
    policy = filter_policy(["sms.mo.received", "sms.mt.status"], ["447700900001", "447700900002"])
    # Then it matches the attributes the gateway puts on every event
    assert policy == {"event_type": ["sms.mo.received", "sms.mt.status"], "msisdn": ["447700900001", "447700900002"]}


def test_without_msisdns_the_filter_is_on_event_types_only():
    assert filter_policy(["sms.batch.completed"], []) == {"event_type": ["sms.batch.completed"]}


def test_a_filter_beyond_snss_150_combinations_is_refused():
    with pytest.raises(ValueError, match="150"):
        filter_policy(["sms.mo.received", "sms.mt.status"], [f"4477009{n:05d}" for n in range(76)])


def test_the_delivery_policy_retries_for_most_of_the_hour_sns_allows_and_no_longer():
    # Given SNS's hard limit of 3,600 seconds of retries for HTTP/S
    retry = DELIVERY_POLICY["healthyRetryPolicy"]
    # Then the policy's worst case stays within it, yet spans most of it
    assert 0.75 * SNS_MAX_RETRY_SECONDS <= retry_span(DELIVERY_POLICY) <= SNS_MAX_RETRY_SECONDS
    # And it keeps within SNS's documented ranges
    assert 0 <= retry["numRetries"] <= 100
    assert 1 <= retry["minDelayTarget"] <= retry["maxDelayTarget"] <= 3600
    assert retry["numNoDelayRetries"] + retry["numMinDelayRetries"] + retry["numMaxDelayRetries"] <= retry["numRetries"]
    assert retry["backoffFunction"] in ("linear", "arithmetic", "geometric", "exponential")


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["https://example.com/hook", "--events", "sms.mo.recieved"], "unknown event type sms.mo.recieved"),
        (["https://example.com/hook", "--events", ","], "unknown event type"),
        (["https://example.com/hook", "--events", "sms.mo.received", "--msisdn", "call-me"], "is not an MSISDN"),
        (["http://example.com/hook", "--events", "sms.mo.received"], "must be an https:// URL"),
        (["ftp://example.com/hook", "--events", "sms.mo.received"], "must be an https:// URL"),
        (["https://example.com/hook", "--events", "sms.mo.received", "--dead-letter-queue-arn", "undelivered"], "must be an SQS queue's ARN"),
    ],
)
def test_subscribe_refuses_bad_arguments_with_a_clear_message(args, complaint, capsys):
    # When subscribe is given a misspelt event type, a bad MSISDN or a plain-http URL off this machine
    with pytest.raises(SystemExit) as exit_:
        main(["subscribe", *args])
    # Then it stops before calling AWS and says what is wrong
    assert exit_.value.code == 2
    assert complaint in capsys.readouterr().err


def test_plain_http_is_accepted_on_loopback_for_the_local_stack(capsys, tmp_path):
    # Given no events topic anywhere, so that nothing reaches AWS
    outputs = tmp_path / "outputs.json"
    outputs.write_text("{}")
    # When a loopback http URL is subscribed
    code = main(["--outputs", str(outputs), "subscribe", "http://127.0.0.1:8080/hook", "--events", "sms.mo.received", "--msisdn", "+447700900001"])
    # Then the URL passes validation and only the missing topic is reported
    assert code == 2
    assert "no events topic" in capsys.readouterr().err


def test_a_dead_letter_queue_becomes_the_subscriptions_redrive_policy(tmp_path, monkeypatch, capsys):
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        import boto3

        # Given the events topic and a queue for what SNS gives up on
        sns, sqs = boto3.client("sns", region_name="eu-west-1"), boto3.client("sqs", region_name="eu-west-1")
        topic = sns.create_topic(Name="events")["TopicArn"]
        queue = sqs.create_queue(QueueName="undelivered")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        outputs = tmp_path / "outputs.json"
        outputs.write_text(json.dumps({"EventsTopicArn": topic, "Region": "eu-west-1"}))
        # When a receiver is subscribed with it
        args = ["--outputs", str(outputs), "--json", "subscribe", "https://example.com/hook", "--events", "sms.mo.received"]
        assert main([*args, "--dead-letter-queue-arn", queue_arn]) == 0
        created = json.loads(capsys.readouterr().out)
        # Then SNS holds it as the subscription's redrive policy, beside the filter and the delivery policy
        attributes = sns.get_subscription_attributes(SubscriptionArn=created["subscription_arn"])["Attributes"]
        assert json.loads(attributes["RedrivePolicy"]) == {"deadLetterTargetArn": queue_arn}
        assert json.loads(attributes["FilterPolicy"]) == {"event_type": ["sms.mo.received"]}
        assert json.loads(attributes["DeliveryPolicy"])["healthyRetryPolicy"]["numRetries"] > 0
