"""The simulator's parts on their own: the protocol rules (pure), fault injection, and its timers."""

import pytest

from local_stack import eseye_rules as rules
from local_stack.eseye_faults import FaultQueue
from local_stack.eseye_simulator import EseyeSimulator
from smsgw.eseye_protocol import parse_reply

CREDENTIALS = rules.Credentials("user", "secret")
GOOD = {"username": "user", "password": "secret", "destination": "447700900123", "text": "Hello"}


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"password": "wrong"}, 530),
        ({"username": ""}, 511),
        ({"priority": "1"}, 519),
        ({"destination": ""}, 511),
        ({"destination": "+447700900123"}, 555),
        ({"receipt_url": "https://gw.example/r"}, 526),
        ({"receipt_url": "not a url", "message_id": "a1"}, 533),
        ({"message_id": "not-hex!"}, 535),
        ({"mode": "9"}, 520),
        ({"mode": ""}, 521),
        ({"text": ""}, 536),
        ({"text": "€uro"}, 580),
        ({"text": "x" * 161}, 525),
        ({"text": "é" * 141, "mode": "8"}, 525),
        ({"destination": "447700900570"}, 570),
    ],
)
def test_each_documented_refusal_of_a_send(change, code):
    with pytest.raises(rules.EseyeError) as refused:
        rules.check_send({**GOOD, **change}, "127.0.0.1", CREDENTIALS)
    assert refused.value.code == code


@pytest.mark.parametrize(("coding", "octets", "code"), [("8", 141, 525), ("4", 141, 525), ("F6", 141, 525), ("0", 161, 525), ("7", 1, 555)])
def test_short_message_limits_by_data_coding(coding, octets, code):
    form = {k: v for k, v in GOOD.items() if k != "text"} | {"short_message": "00" * octets, "data_coding": coding}
    with pytest.raises(rules.EseyeError) as refused:
        rules.check_send(form, "127.0.0.1", CREDENTIALS)
    assert refused.value.code == code


def test_the_ip_allowlist_comes_first():
    with pytest.raises(rules.EseyeError) as refused:
        rules.check_send({**GOOD, "password": "wrong"}, "203.0.113.9", rules.Credentials("user", "secret", ("198.51.100.1",)))
    assert refused.value.code == 510


def test_text_wins_over_short_message_and_an_accepted_send_names_its_parts():
    accepted = rules.check_send(
        {**GOOD, "short_message": "zz", "message_id": "ab12", "receipt_url": "https://gw.example/r"}, "127.0.0.1", CREDENTIALS
    )
    assert accepted == rules.AcceptedSend("ab12", "447700900123", "https://gw.example/r")


@pytest.mark.parametrize("form", rules.ERROR_FORMS)
@pytest.mark.parametrize("code", sorted(rules.MESSAGES))
def test_every_error_in_every_form_reads_back_as_its_code(form, code):
    # Given the simulator's answer for an error, in one of the documented forms
    error = rules.EseyeError(code, *(["447700900123"] if "{}" in rules.MESSAGES[code] else []))
    # Then the gateway's parser recovers the code from it
    reply = parse_reply(200, rules.render_error(error, form))
    assert (reply.kind, reply.code) == ("error", code) or (code == 555 and reply.code in (555, 630))


def test_status_and_cancel_answers():
    assert rules.status_answer("queued", cancel=True)[0] == "cancelling"
    assert rules.status_answer("delivered", cancel=True) == (None, rules.status_xml("delivered", "Message delivered"))
    assert "<status>error</status>" in rules.status_answer("failed", cancel=False)[1]
    with pytest.raises(rules.EseyeError) as unknown:
        rules.status_answer(None, cancel=False)
    assert unknown.value.code == 535


def test_receipts_append_to_a_receipt_url_that_has_a_query():
    url, fields = rules.receipt_request_url("https://gw.example/r?t=tok", "ab12", "ref", "delivered")
    assert url == "https://gw.example/r?t=tok&messageid=ab12&referenceid=ref&statuscode=delivered&status=delivered"
    assert fields["status"] == "delivered"


def test_an_unknown_fault_mode_is_refused_not_ignored():
    faults = FaultQueue()
    with pytest.raises(ValueError, match="unknown fault mode"):
        faults.inject("tiemout")
    faults.inject("status_queued", count=2)
    assert len(faults) == 2


def test_stopping_cancels_every_timer_so_nothing_settles_or_calls_back_afterwards():
    # Given a simulator with receipts and settling still to come
    simulator = EseyeSimulator(port=0, receipt_delay=30, log=lambda *_: None).start()
    simulator.send(
        {**GOOD, "username": simulator.username, "password": simulator.password, "message_id": "a1", "receipt_url": "http://127.0.0.1:9/r"},
        "127.0.0.1",
    )
    simulator.send({**GOOD, "username": simulator.username, "password": simulator.password, "message_id": "a2"}, "127.0.0.1")
    timers = list(simulator._timers)
    assert simulator.pending_timers == 2
    # When it stops
    simulator.stop()
    # Then every timer is cancelled and its thread ends without acting
    for timer in timers:
        timer.join(timeout=5)
        assert not timer.is_alive()
    assert simulator.pending_timers == 0
    assert simulator.receipts_sent == []
    assert {m.status for m in simulator.messages.values()} == {"queued"}
