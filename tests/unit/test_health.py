"""The health page says what the template says: the dead-letter queues, their advice, and the Eseye error
rate as EseyeErrorRateAlarm computes it. And the local stack's EMF bridge (local_stack/metrics.py)."""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from local_stack.metrics import EmfCapture, emf_document, put_metric_data_requests
from local_stack.template import load_template
from smsgw.config import Settings
from smsgw.logic import health

TEMPLATE = load_template()
ALARM = TEMPLATE["Resources"]["EseyeErrorRateAlarm"]["Properties"]


def test_the_five_dead_letter_queues_are_the_templates_with_its_advice_word_for_word():
    # Given the template's dead-letter queues and their advice
    declared = sorted(k.removesuffix("DeadLetterQueue") for k in TEMPLATE["Resources"] if k.endswith("DeadLetterQueue"))
    advice = {k: v["Advice"] for k, v in TEMPLATE["Mappings"]["DeadLetterQueueAdvice"].items()}
    # Then the health page lists exactly those, each with the same words
    queues = health.dead_letter_queues(Settings("table", "secret"))
    assert sorted(q.template_name for q in queues) == declared
    assert advice == health.ADVICE


def test_each_dead_letter_queue_url_comes_from_the_templates_queue():
    # Given the HealthFunction's environment as the template writes it
    variables = TEMPLATE["Resources"]["HealthFunction"]["Properties"]["Environment"]["Variables"]
    urls = {name: value["Ref"] for name, value in variables.items() if name.endswith("_URL")}
    settings = Settings.from_env(urls)
    # Then each queue's URL is its own dead-letter queue, and a redrive goes back to the queue that dead-letters into it
    for queue in health.dead_letter_queues(settings):
        assert queue.url == f"{queue.template_name}DeadLetterQueue"
        if queue.source_url is not None:
            source = TEMPLATE["Resources"][queue.source_url]["Properties"]
            assert source["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": [queue.url, "Arn"]}


def test_the_rate_reads_the_alarms_metrics_the_way_the_alarm_does():
    stats = {q["Id"]: q["MetricStat"] for q in ALARM["Metrics"] if "MetricStat" in q}
    assert {s["Metric"]["MetricName"] for s in stats.values()} == {health.RETRIED, health.REJECTED, health.SENT}
    for stat in stats.values():
        assert stat["Metric"]["Namespace"] == health.NAMESPACE and stat["Stat"] == "Sum"
        assert {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]} == health.DIMENSIONS
    # over the alarm's whole evaluation, with its threshold (a percentage in the alarm, a fraction here)
    assert health.WINDOW.total_seconds() == ALARM["EvaluationPeriods"] * stats["sent"]["Period"]
    assert ALARM["Threshold"] / 100 == health.ALARM_THRESHOLD
    [expression] = [q["Expression"] for q in ALARM["Metrics"] if "Expression" in q]
    assert expression == "100 * (errors + rejected) / MAX([1, errors + rejected + sent])"
    assert stats["errors"]["Metric"]["MetricName"] == health.RETRIED and stats["rejected"]["Metric"]["MetricName"] == health.REJECTED


@pytest.mark.parametrize(("retried", "rejected", "sent", "rate"), [(0, 0, 0, None), (0, 0, 5, 0.0), (1, 1, 6, 0.25), (0, 3, 0, 1.0)])
def test_the_rate_is_the_alarms_expression_as_a_fraction(retried, rejected, sent, rate):
    assert health.error_rate(retried, rejected, sent) == rate
    if rate is not None:  # the alarm's own arithmetic, in percent
        assert rate * 100 == pytest.approx(100 * (retried + rejected) / max(1, retried + rejected + sent))


# --- the local stack's EMF bridge ------------------------------------------------------------------------


def test_an_emf_document_becomes_putmetricdata_with_its_namespace_dimensions_values_and_time():
    document = {
        "_aws": {
            "Timestamp": 1795670810957,
            "CloudWatchMetrics": [
                {
                    "Namespace": "EseyeSmsGateway",
                    "Dimensions": [["service"]],
                    "Metrics": [{"Name": "Sent", "Unit": "Count"}, {"Name": "EseyeLatency", "Unit": "Milliseconds", "StorageResolution": 1}],
                }
            ],
        },
        "service": "eseye-sms-gateway",
        "Sent": [1.0, 1.0],
        "EseyeLatency": 12.5,
    }
    [request] = put_metric_data_requests(document)
    assert request["Namespace"] == "EseyeSmsGateway"
    sent, latency = request["MetricData"]
    assert (sent["MetricName"], sent["Values"], sent["Unit"]) == ("Sent", [1.0, 1.0], "Count")
    assert sent["Dimensions"] == [{"Name": "service", "Value": "eseye-sms-gateway"}]
    assert (latency["Values"], latency["Unit"], latency["StorageResolution"]) == ([12.5], "Milliseconds", 1)
    assert int(sent["Timestamp"].timestamp() * 1000) == 1795670810957


def test_the_workers_stdout_keeps_emf_lines_and_passes_every_other_line_on():
    # Given a worker's stdout, written in pieces as print writes (text, then the newline)
    passed = io.StringIO()
    capture = EmfCapture(passed)
    emf = json.dumps({"_aws": {"Timestamp": 1, "CloudWatchMetrics": []}, "x": 1})
    for piece in ['{"level": "INFO", "message": "hello"}', "\n", emf[:10], emf[10:], "\n", "not json {\n"]:
        capture.write(piece)
    # Then the log lines go on as they were, and the EMF document is kept for CloudWatch, once
    assert passed.getvalue() == '{"level": "INFO", "message": "hello"}\nnot json {\n'
    assert capture.take() == [json.loads(emf)] and capture.take() == []


def test_only_emf_documents_are_taken_for_metrics():
    assert emf_document('{"_aws": "not directives"}') is None
    assert emf_document('{"message": "mentions \\"_aws\\""}') is None
    assert emf_document("{broken _aws") is None


def test_the_forwarder_puts_every_document_submitted_before_it_stops_into_cloudwatch():
    import boto3
    from moto import mock_aws

    from local_stack.metrics import MetricForwarder

    def document(sent: list[float]) -> dict:
        directive = {"Namespace": "EseyeSmsGateway", "Dimensions": [["service"]], "Metrics": [{"Name": "Sent", "Unit": "Count"}]}
        return {"_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [directive]}, "service": "eseye-sms-gateway", "Sent": sent}

    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name="eu-west-1")
        # Given the stack's forwarder, and two invocations' documents, one of them not EMF CloudWatch would take
        forwarder = MetricForwarder(cloudwatch, log=lambda _: None).start()
        forwarder.submit([document([1.0, 1.0]), {"_aws": {"CloudWatchMetrics": [{"Metrics": []}]}}])
        forwarder.submit([document([1.0])])
        # When the stack stops
        forwarder.stop()
        # Then every value is in CloudWatch, under the function's namespace and dimension
        now = datetime.now(UTC)
        statistics = cloudwatch.get_metric_statistics(
            Namespace="EseyeSmsGateway",
            MetricName="Sent",
            Dimensions=[{"Name": "service", "Value": "eseye-sms-gateway"}],
            StartTime=now - timedelta(minutes=5),
            EndTime=now + timedelta(minutes=1),
            Period=60,
            Statistics=["Sum"],
        )
        assert sum(point["Sum"] for point in statistics["Datapoints"]) == 3.0
