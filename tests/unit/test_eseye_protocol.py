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
    text = ERROR_CODES[code]
    reply = parse_reply(200, form.format(code=code, text=text))
    # A documented error: delivery records it as Eseye's refusal (rejected), never as a retryable failure
    assert (reply.kind, reply.code) == ("error", code)
    assert reply.code in ERROR_CODES
    assert reply.description == text


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_every_documented_code_inside_xml(code):
    text = re.sub(r"<[^>]+>", "447700900123", ERROR_CODES[code])  # Eseye fills in the placeholders
    body = f"<statusResponse><status>error</status><description>ERROR {code} – {text}</description></statusResponse>"
    reply = parse_reply(200, body)
    assert (reply.kind, reply.code) == ("error", code)


def test_the_documented_malformed_xml_sample_is_still_read():
    body = "<statusResponse><status>error</description><description>ERROR 530 – API Requests authentication failed.</description></statusResponse>"
    reply = parse_reply(200, body)
    assert (reply.kind, reply.code, reply.description) == ("error", 530, "API Requests authentication failed.")


@pytest.mark.parametrize("status", ["blocked", "sent", "queued", "delivered", "mgmt", "cancelling", "Something-New"])
def test_status_responses_keep_their_status(status):
    reply = parse_reply(200, f'<?xml version="1.0"?>\n<statusResponse>\n<status>{status}</status>\n<description>d</description>\n</statusResponse>')
    assert (reply.kind, reply.status, reply.description) == ("status", status.lower(), "d")


@pytest.mark.parametrize("body", ["", "   ", "<html><body>502 Bad Gateway</body></html>", "Thank you", "<statusResponse></statusResponse>", "<a><b>"])
def test_anything_else_is_unexpected_and_keeps_the_raw_body(body):
    reply = parse_reply(200, body)
    assert reply.kind == "unexpected"
    assert reply.raw == body  # delivery treats an unexpected answer as "may have arrived": ask, then retry


def test_an_unknown_error_code_is_an_error_but_not_a_known_one():
    reply = parse_reply(200, "Error599: brand new")
    assert (reply.kind, reply.code) == ("error", 599)
    assert reply.code not in ERROR_CODES


# Every documented text with its placeholders filled as Eseye would, for the text-only XML form.
DOCUMENTED_TEXTS = [
    (502, "Index is not currently a supported method of this API."),
    (503, "PUT is not currently a supported method of this API."),
    (510, "API Requests from this IP Address (203.0.113.9) are not allowed."),
    (511, "message_id is required."),
    (519, "Unknown parameter: priority"),
    (520, "Mode '9' is not valid"),
    (521, "Mode not specified"),
    (525, "Max message length of 160 chars exceeded"),
    (526, "message_id must be supplied for delivery receipt"),
    (530, "API Requests authentication failed."),
    (533, "Invalid receipt_url value supplied"),
    (535, "Invalid message_id value supplied"),
    (536, "Invalid text value supplied"),
    (555, "Invalid MSISDN (447700900123) supplied"),
    (555, "Invalid Input Provided"),
    (570, "Destination MSISDN (447700900570) has no credit"),
    (580, "Please use only GSM 03.38 basic 7 bit characters, or specify 8 bit mode"),
]


@pytest.mark.parametrize(("code", "text"), DOCUMENTED_TEXTS)
@pytest.mark.parametrize("spelling", [str, str.upper, str.lower, lambda t: f"  \n{t}\t "])
def test_an_xml_error_without_its_number_is_known_by_its_documented_text(code, text, spelling):
    # Given Eseye's XML error form with only the documented text in <description> (eseye-sms-api.md §5)
    body = f"<statusResponse>\n<status>error</status>\n<description>{spelling(text)}</description>\n</statusResponse>"
    # When it is parsed
    reply = parse_reply(200, body)
    # Then the code is recovered from the text, whatever the case and surrounding whitespace
    assert (reply.kind, reply.code) == ("error", code)


def test_an_invalid_msisdn_text_names_one_of_its_two_documented_codes():
    reply = parse_reply(200, "<statusResponse><status>error</status><description>Invalid MSISDN (1234) supplied</description></statusResponse>")
    assert reply.code in (555, 630)


def test_an_xml_error_with_an_undocumented_text_has_no_code():
    reply = parse_reply(200, "<statusResponse><status>error</status><description>Message delivery failed</description></statusResponse>")
    assert (reply.kind, reply.code, reply.description) == ("error", None, "Message delivery failed")
