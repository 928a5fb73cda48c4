"""Every documented Eseye answer form and error code (eseye-sms-api.md §3.4, §4, §5)."""

import re

import pytest

from smsgw.eseye_protocol import ERROR_CODES, parse_reply


@pytest.mark.parametrize("body", ["OK!", "OK", " OK!\n", "ok!"])
def test_ok_forms_mean_accepted(body):
    assert parse_reply(200, body).kind == "ok"


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
@pytest.mark.parametrize(
    "form", ["Error{code}: {text}", "ERROR {code} – {text}", "ERROR {code} - {text}", "error{code}:{text}", "*ERROR {code} {text}"]
)
def test_every_documented_code_in_every_text_form(code, form):
    text = ERROR_CODES[code][0]
    reply = parse_reply(200, form.format(code=code, text=text))
    assert (reply.kind, reply.code, reply.known_code, reply.retryable) == ("error", code, True, False)
    assert reply.description == text


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_every_documented_code_inside_xml(code):
    text = re.sub(r"<[^>]+>", "447700900123", ERROR_CODES[code][0])  # Eseye fills in the placeholders
    body = f"<statusResponse><status>error</status><description>ERROR {code} – {text}</description></statusResponse>"
    reply = parse_reply(200, body)
    assert (reply.kind, reply.code) == ("error", code)


def test_the_documented_malformed_xml_sample_is_still_read():
    body = "<statusResponse><status>error</description><description>ERROR 530 – API Requests authentication failed.</description></statusResponse>"
    reply = parse_reply(200, body)
    assert (reply.kind, reply.code, reply.configuration_problem) == ("error", 530, True)


@pytest.mark.parametrize("status", ["blocked", "sent", "queued", "delivered", "mgmt", "cancelling", "Something-New"])
def test_status_responses_keep_their_status(status):
    reply = parse_reply(200, f'<?xml version="1.0"?>\n<statusResponse>\n<status>{status}</status>\n<description>d</description>\n</statusResponse>')
    assert (reply.kind, reply.status, reply.description) == ("status", status.lower(), "d")


@pytest.mark.parametrize("body", ["", "   ", "<html><body>502 Bad Gateway</body></html>", "Thank you", "<statusResponse></statusResponse>", "<a><b>"])
def test_anything_else_is_unexpected_and_keeps_the_raw_body(body):
    reply = parse_reply(200, body)
    assert reply.kind == "unexpected"
    assert reply.raw == body
    assert reply.retryable


def test_an_unknown_error_code_is_an_error_but_not_a_known_one():
    reply = parse_reply(200, "Error599: brand new")
    assert (reply.kind, reply.code, reply.known_code) == ("error", 599, False)
