"""Long MO messages: reassembly from parts, a device that reuses its concatenation references, parts
that never all arrive, and MOs that carry no message_id. Handlers in-process against moto; every PDU
is built by tests/pdus.py, independently of the gateway's decoder."""

import threading
from datetime import datetime, timedelta
from urllib.parse import urlencode

import pytest

from smsgw import models
from tests.conftest import load_event
from tests.helpers import body_of, mo, received_events, stream_batch, subscribe, validate_event
from tests.pdus import concat_header, long_message, submit

DEVICE = "447700900123"


def mos(stack, msisdn=DEVICE):
    """The MO messages of one SIM, oldest first, as the history API shows them."""
    event = load_event("history_by_msisdn")
    event["queryStringParameters"] = {"msisdn": msisdn, "direction": "mo", "limit": "50"}
    return body_of(stack.invoke("HistoryFunction", event))["items"][::-1]


def deliver(stack, pdus, ids, source=DEVICE):
    return [mo(stack, {"source": source, "message_id": message_id, "binary": pdu})["statusCode"] for pdu, message_id in zip(pdus, ids, strict=True)]


def later(monkeypatch, hours):
    """Move the gateway's clock forward, as the next sweep after that long would see it."""
    real = datetime

    class Later(real):
        @classmethod
        def now(cls, tz=None):
            return real.now(tz) + timedelta(hours=hours)

    monkeypatch.setattr(models, "datetime", Later)


def sweep(stack):
    return stack.invoke("ReconcilerFunction", load_event("reply_timeouts_schedule"))


def test_a_reused_8bit_reference_starts_a_new_message(stack):
    # Given a two-part message with reference 0x42 that arrived whole
    first = long_message("Battery low, 11.2 V, ", 0x42, per_part=11)
    assert deliver(stack, first, ["a1", "a2"]) == [200, 200]
    # When the device, 256 messages later, uses 0x42 again for another long message
    second = long_message("Door opened at 06:12 by key 7", 0x42, per_part=15)
    assert deliver(stack, second, ["b1", "b2"]) == [200, 200]
    # Then both messages are stored, each with its own text
    assert [m["text"] for m in mos(stack)] == ["Battery low, 11.2 V, ", "Door opened at 06:12 by key 7"]


def test_a_reused_16bit_reference_starts_a_new_message_in_ucs2_too(stack):
    first = long_message("温度 21.5C 正常", 0xBEEF, per_part=4, ucs2=True, wide=True)
    second = long_message("温度 35.0C 过热!", 0xBEEF, per_part=4, ucs2=True, wide=True)
    deliver(stack, first, ["w1", "w2", "w3"])
    deliver(stack, second, ["x1", "x2", "x3"])
    assert [(m["text"], m["encoding"]) for m in mos(stack)] == [("温度 21.5C 正常", "ucs2"), ("温度 35.0C 过热!", "ucs2")]


def test_a_retransmitted_part_of_a_completed_message_stays_a_duplicate(stack, monkeypatch):
    # Given a message that arrived whole
    parts = long_message("Firmware 2.4.1 installed OK", 0x07, per_part=14)
    deliver(stack, parts, ["f1", "f2"])
    # When Eseye delivers its first part again, with the same message_id
    assert deliver(stack, parts[:1], ["f1"]) == [200]
    # Then it is not the start of a new message: nothing is published for it, even after the window
    later(monkeypatch, 25)
    sweep(stack)
    [message] = mos(stack)
    assert (message["text"], message["incomplete"]) == ("Firmware 2.4.1 installed OK", False)


def test_a_reused_reference_with_the_same_text_is_a_new_message_when_its_ids_are_new(stack):
    # The same report twice is two reports: Eseye's message ids, not the content, tell them apart
    parts = long_message("Alarm: tamper switch", 0x09, per_part=10)
    deliver(stack, parts, ["t1", "t2"])
    deliver(stack, parts, ["t3", "t4"])
    assert [m["text"] for m in mos(stack)] == ["Alarm: tamper switch"] * 2


@pytest.mark.parametrize("sequence,total", [(0, 3), (4, 3), (2, 1)])
def test_a_part_number_outside_1_to_total_is_refused_and_quarantined(stack, sequence, total):
    pdu = submit("stray", header=concat_header(0x33, total, sequence))
    response = mo(stack, {"source": DEVICE, "message_id": "bad", "binary": pdu})
    assert response["statusCode"] == 400
    error = body_of(response)["error"]
    assert "part" in error["message"] and error["details"]["quarantine_id"]
    assert mos(stack) == []


def test_a_message_missing_a_part_is_published_incomplete_after_the_window(stack, monkeypatch):
    url = subscribe(stack)
    # Given parts 1 and 3 of a three-part message, and part 2 never comes
    text = "Pump 4 stopped: overcurrent on phase B"
    one, _two, three = long_message(text, 0x51, per_part=13)
    kept = text[:13] + text[26:]
    deliver(stack, [three, one], ["i3", "i1"])
    assert mos(stack) == []
    # When the window (24 h by default) has passed and the reconciler runs
    later(monkeypatch, 23)
    assert sweep(stack)["incomplete_published"] == 0  # not yet
    later(monkeypatch, 25)
    assert sweep(stack)["incomplete_published"] == 1
    assert sweep(stack)["incomplete_published"] == 0  # once
    # Then the parts it has are published, in order, marked incomplete
    [message] = mos(stack)
    assert (message["text"], message["incomplete"]) == (kept, True)
    assert [p["sequence"] for p in message["parts"]] == [1, 3]
    assert stack.invoke("PublisherFunction", stream_batch(stack)) == {"batchItemFailures": []}
    [event] = received_events(stack, url)
    assert (event["type"], event["data"]["incomplete"], event["data"]["text"]) == ("sms.mo.received", True, kept)
    validate_event(event)


def test_an_expired_buffer_is_published_and_its_reference_reused_without_waiting_for_the_sweep(stack, monkeypatch):
    # Given part 1 of a message whose part 2 was lost
    lost = long_message("Valve 3 closed manually", 0x60, per_part=12)
    deliver(stack, lost[:1], ["l1"])
    # When, a day later, the device reuses the reference before any sweep ran
    later(monkeypatch, 30)
    fresh = long_message("Valve 3 opened by schedule", 0x60, per_part=13)
    deliver(stack, fresh, ["n1", "n2"])
    # Then the old part is published as incomplete and the new message is whole
    assert [(m["text"], m.get("incomplete")) for m in mos(stack)] == [("Valve 3 clos", True), ("Valve 3 opened by schedule", False)]


def test_a_reference_reused_within_the_window_after_a_lost_part_keeps_both_messages(stack):
    # Given part 1 of a message whose part 2 was lost
    deliver(stack, long_message("Meter 118 kWh, 3 phases", 0x61, per_part=12)[:1], ["o1"])
    # When a new message reuses the reference and its part 1 collides with the old part 1
    deliver(stack, long_message("Meter 119 kWh, 3 phases", 0x61, per_part=12), ["p1", "p2"])
    # Then the old part is published as incomplete, and the new message whole: nothing is mixed or lost
    assert [(m["text"], m.get("incomplete")) for m in mos(stack)] == [("Meter 118 kW", True), ("Meter 119 kWh, 3 phases", False)]


@pytest.mark.usefixtures("atomic_items")
def test_parts_arriving_at_once_make_one_message_each_time_the_reference_is_used(stack):
    handler = stack.handler("MoWebhookFunction")
    texts = [f"Report {n}: all sensors nominal" for n in range(4)]
    for round_, text in enumerate(texts):
        parts = long_message(text, 0x70, per_part=10)
        start = threading.Barrier(len(parts))
        answers = []

        def post(pdu, message_id, start=start, answers=answers):
            event = load_event("mo_form_text")
            event["body"] = urlencode({"source": DEVICE, "message_id": message_id, "binary": pdu})
            start.wait()
            answers.append(handler(event)["statusCode"])

        threads = [threading.Thread(target=post, args=(pdu, f"c{round_}-{n}")) for n, pdu in enumerate(parts)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert answers == [200] * len(parts)
    assert [m["text"] for m in mos(stack)] == texts


def test_a_crash_between_storing_and_closing_is_finished_by_the_next_delivery(stack, monkeypatch):
    from smsgw.adapters.store import InboundRepository
    from smsgw.errors import StoreUnavailable

    # Given the gateway stored the message and then died before closing the buffer
    parts = long_message("Generator started, fuel 80%", 0x71, per_part=14)
    real_close = InboundRepository.close_buffer

    def dies(self, *args, **kwargs):
        raise StoreUnavailable("killed")

    monkeypatch.setattr(InboundRepository, "close_buffer", dies)
    deliver(stack, parts[:1], ["g1"])
    assert deliver(stack, parts[1:], ["g2"]) == [503]
    monkeypatch.setattr(InboundRepository, "close_buffer", real_close)
    # When Eseye redelivers the last part, and then the device reuses the reference
    assert deliver(stack, parts[1:], ["g2"]) == [200]
    deliver(stack, long_message("Generator stopped, fuel 74%", 0x71, per_part=14), ["h1", "h2"])
    # Then each message is there once
    assert [m["text"] for m in mos(stack)] == ["Generator started, fuel 80%", "Generator stopped, fuel 74%"]


def test_an_mo_without_message_id_is_never_deduplicated_by_its_content(stack):
    # Given a device that says the same thing twice, and Eseye forwarding no message_id
    for _ in range(2):
        assert mo(stack, {"source": DEVICE, "text": "DOOR OPEN"})["statusCode"] == 200
    # Then that is two messages
    assert [m["text"] for m in mos(stack)] == ["DOOR OPEN", "DOOR OPEN"]
    # While an MO delivered again with its message_id is still one
    for _ in range(2):
        mo(stack, {"source": DEVICE, "text": "DOOR CLOSED", "message_id": "dc1"})
    assert [m["text"] for m in mos(stack)] == ["DOOR OPEN", "DOOR OPEN", "DOOR CLOSED"]


def test_a_buffer_left_by_the_previous_version_still_completes_and_then_closes(stack):
    # Given part 1 of a message in a buffer as the gateway kept it before buffers closed (no state)
    first = long_message("Tank level 41%, valve shut", 0x05, per_part=13)
    stack.deps().store.table.put(
        {
            "PK": f"CONCAT#{DEVICE}#5#2",
            "SK": "META",
            "part_1": {
                "eseye_message_id": "v1",
                "from": DEVICE,
                "to": "447000000001",
                "binary": first[0],
                "encoding": "gsm7",
                "text": "Tank level 41",
                "data": None,
                "sequence": 1,
                "received_at": models.iso(models.now()),
            },
            "ttl": 4102444800,
        }
    )
    # When its part 2 arrives, and later the reference is reused
    deliver(stack, first[1:], ["v2"])
    deliver(stack, long_message("Tank level 40%, valve shut", 0x05, per_part=13), ["u1", "u2"])
    # Then both messages are whole
    assert [(m["text"], m["incomplete"]) for m in mos(stack)] == [("Tank level 41%, valve shut", False), ("Tank level 40%, valve shut", False)]


def test_an_incomplete_mo_published_after_its_window_answers_no_command_waiting_now(stack, monkeypatch):
    from tests.helpers import send

    # Given part 1 of a device's long message, its part 2 lost
    deliver(stack, long_message("Shutting down for service", 0x0A, per_part=13)[:1], ["s1"])
    # And, a day later, a command to that device waiting a week for a reply
    later(monkeypatch, 25)
    command = body_of(send(stack, body={"to": DEVICE, "text": "STATUS?", "expect_reply_within": 604800}))
    # When the sweep publishes yesterday's incomplete message
    assert sweep(stack)["incomplete_published"] == 1
    # Then it is not taken for the reply: the command still waits
    [message] = mos(stack)
    assert (message["incomplete"], message.get("in_reply_to")) == (True, None)
    assert stack.message_item(command["id"])["reply_state"] == "waiting"


def test_the_window_is_the_template_parameter(stack, monkeypatch):
    # Given ConcatWindowHours=2 at deploy time
    monkeypatch.setitem(stack.context.parameters, "ConcatWindowHours", "2")
    assert stack.environment("MoWebhookFunction")["CONCAT_WINDOW_HOURS"] == stack.environment("ReconcilerFunction")["CONCAT_WINDOW_HOURS"] == "2"
    deliver(stack, long_message("Cover removed, sensor 2", 0x0B, per_part=12)[:1], ["k1"])
    # Then three hours later what arrived is published
    later(monkeypatch, 3)
    assert sweep(stack)["incomplete_published"] == 1


def test_aws_calls_per_part(stack, monkeypatch):
    import boto3

    from tests.helpers import CallCounter  # the budgets' counting hook

    counter, original = CallCounter(), boto3.client

    def counting_client(*args, **kwargs):
        client = original(*args, **kwargs)
        client.meta.events.register("before-call", counter)
        return client

    monkeypatch.setattr(boto3, "client", counting_client)
    handler = stack.handler("MoWebhookFunction")
    event = load_event("mo_form_text")
    handler(event)  # warm: the secret cached, as for every request but the first in a cache period
    one, two = long_message("Heater on, 19.5C target", 0x0C, per_part=12)
    calls = []
    for pdu, message_id in ((one, "q1"), (two, "q2"), (two, "q2")):
        counter.reset()
        assert handler({**event, "body": urlencode({"source": DEVICE, "message_id": message_id, "binary": pdu})})["statusCode"] == 200
        calls.append(list(counter.operations))
    # A part that does not complete its message: one conditional write
    assert calls[0] == ["dynamodb.UpdateItem"]
    # The part that completes it: add the part, lists read, waiting-command query, create, close the buffer
    assert calls[1] == ["dynamodb.UpdateItem", "dynamodb.BatchGetItem", "dynamodb.Query", "dynamodb.UpdateItem", "dynamodb.UpdateItem"]
    # A copy of a part of a closed message: one refused conditional write
    assert calls[2] == ["dynamodb.UpdateItem"]
