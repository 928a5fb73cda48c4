"""No personal data in logs, and secrets that rotate without a deploy."""

import json
import logging
import re

import pytest

from tests.conftest import load_event
from tests.helpers import body_of, cancel, get, mo, receipt, send, stream_batch


@pytest.fixture
def gateway_logs():
    """The JSON lines the functions write, rendered at emit time by the Logger's own formatter."""
    from smsgw.observability import logger

    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record):
            lines.append(logger.registered_formatter.format(record))

    handler = Capture(level=logging.INFO)
    logger._logger.addHandler(handler)
    yield lines
    logger._logger.removeHandler(handler)


MSISDNS = ["447700900123", "447700900570", "447700900001", "447700900666"]
SECRET_TEXT = "CONFIDENTIAL-PAYLOAD-42"


def test_handlers_log_no_msisdn_and_no_message_text(stack, gateway_logs):
    # Given every kind of request a handler sees, including failures
    sent = body_of(send(stack, body={"to": "447700900123", "text": SECRET_TEXT}))
    send(stack, body={"to": "447700900570", "text": SECRET_TEXT})  # rejected by Eseye
    send(stack, body={"to": "447700900123", "text": SECRET_TEXT + "Ω" * 80})  # too long
    get(stack, sent["id"], refresh=True)
    receipt(stack, sent["id"])
    cancel(stack, sent["id"])
    mo(stack, {"source": "447700900001", "message_id": "m1", "text": SECRET_TEXT})
    stack.invoke("ReceiptWebhookFunction", load_event("receipt_missing_fields"))
    stack.invoke("ReceiptWebhookFunction", load_event("receipt_bad_token"))
    stack.invoke("ListsFunction", load_event("list_put_block"))
    stack.invoke("HistoryFunction", load_event("history_by_msisdn"))
    stack.invoke("PublisherFunction", stream_batch(stack))
    stack.eseye.stop()
    send(stack, body={"to": "447700900123", "text": SECRET_TEXT})  # Eseye down: retry path logs
    # Then the logs mask every MSISDN to its last four digits and never carry the text
    logs = "\n".join(gateway_logs)
    assert logs.count('"level"') > 5, "the handlers should have logged something"
    for msisdn in MSISDNS:
        assert msisdn not in logs, f"{msisdn} appears unmasked in the logs"
    assert SECRET_TEXT not in logs
    assert "tok-primary" not in logs and "dev-password" not in logs  # nor tokens or credentials
    masked = re.findall(r'"(?:to|from)":"(\*+\d{4})"', logs)
    assert masked and all(m.endswith(("0123", "0570", "0001")) for m in masked)


@pytest.fixture
def secret_cache_clock(monkeypatch):
    """The clock Powertools' parameter cache reads, moved forward by the test instead of waited out."""
    from datetime import datetime, timedelta

    from aws_lambda_powertools.utilities.parameters import base

    skew = timedelta()

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + skew

    def advance(seconds: float) -> None:
        nonlocal skew
        skew += timedelta(seconds=seconds)

    monkeypatch.setattr(base, "datetime", Clock)
    return advance


def test_a_rotated_secret_is_used_without_a_deploy(stack, monkeypatch, secret_cache_clock):
    monkeypatch.setitem(stack.context.parameters, "SecretMaxAgeSeconds", "300")
    handler = stack.handler("SendFunction")  # one warm container across the rotation
    event = load_event("send_gsm7")
    assert json.loads(handler(event)["body"])["status"] == "sent"
    # When the operator rotates the Eseye password (Eseye and the secret together)
    secret_id = stack.physical("GatewaySecret")
    value = json.loads(stack.clients["secretsmanager"].get_secret_value(SecretId=secret_id)["SecretString"])
    stack.clients["secretsmanager"].put_secret_value(SecretId=secret_id, SecretString=json.dumps({**value, "password": "rotated-password"}))
    stack.eseye.password = "rotated-password"
    # Then, once the cache age has passed, the same container sends with the new password
    secret_cache_clock(301)
    assert json.loads(handler(event)["body"])["status"] == "sent"
    # and within the cache age it would still have used the old one (the cache is real)
    value = json.loads(stack.clients["secretsmanager"].get_secret_value(SecretId=secret_id)["SecretString"])
    stack.clients["secretsmanager"].put_secret_value(SecretId=secret_id, SecretString=json.dumps({**value, "password": "next-password"}))
    stack.eseye.password = "next-password"
    refused = handler(event)
    assert refused["statusCode"] == 422 and json.loads(refused["body"])["error"]["details"]["eseye_code"] == 530


def test_one_message_can_be_followed_through_the_logs(stack, gateway_logs):
    # Given a message sent, delivered and published
    message = body_of(send(stack, body={"to": "447700900001", "text": "follow me"}))
    receipt(stack, message["id"])
    stack.invoke("PublisherFunction", stream_batch(stack))
    # Then each stage logged a line carrying the message id
    lines = [json.loads(line) for line in gateway_logs]
    about = [line for line in lines if line.get("message_id") == message["id"]]
    assert {line["message"] for line in about} >= {"message accepted", "Eseye answered", "receipt", "event published"}
    stages = {line["function_name"] for line in about}
    assert stages == {"SendFunction", "ReceiptWebhookFunction", "PublisherFunction"}
