"""Pure pieces of the size guards: what counts as news, how text is cut, how an event is made to fit."""

import json

from smsgw import limits, models
from smsgw.adapters.store import ENTRY_LIMIT, bounded_entry
from smsgw.logic.publish import BODY_LIMIT, fit


def entry(cause="Eseye reports 'queued'", raw="<statusResponse/>", **detail):
    return models.history_entry("2026-11-25T12:00:00.000Z", "refresh", "sent", cause, eseye={"kind": "status", "raw": raw, **detail})


def test_the_same_answer_again_is_no_news_even_if_the_raw_body_differs():
    assert models.repeats(entry(raw="<html>request 1</html>"), entry(raw="<html>request 2</html>"))


def test_another_status_cause_or_answer_is_news():
    assert not models.repeats(entry(), None)
    assert not models.repeats(entry(cause="Eseye reports 'sent'"), entry())
    assert not models.repeats(entry(eseye_code=535), entry())
    assert not models.repeats({**entry(), "status": "delivered"}, entry())


def test_long_text_is_cut_on_a_character_boundary_and_marked():
    cut = limits.bounded("€" * 1000, 100)
    assert len(cut.encode()) <= 100 and cut.endswith(limits.TRUNCATED)
    assert limits.bounded("short", 100) == "short"


def test_a_history_entry_never_exceeds_its_limit():
    huge = entry(cause="x" * 100_000, raw="€" * 100_000, eseye_description="é" * 100_000)
    bounded = bounded_entry(huge)
    assert limits.json_size(bounded) <= ENTRY_LIMIT
    assert bounded["cause"].startswith("xxx") and bounded["event"] == "refresh"


def test_an_event_within_the_limit_is_left_whole():
    event = {"type": "sms.mt.status", "id": "a:sent", "time": "t", "msisdn": "1", "data": {"id": "a", "status": "sent", "history": [entry()]}}
    fitted = fit(event)
    assert fitted["data"] == event["data"] and json.loads(fitted["body"])["data"] == event["data"]


def test_an_event_with_one_enormous_field_is_cut_and_still_says_what_changed():
    data = {"id": "a" * 32, "direction": "mo", "from": "447700900123", "status": "received", "created_at": "t", "updated_at": "t"}
    event = {
        "type": "sms.mo.received",
        "id": "a:received",
        "time": "t",
        "msisdn": "1",
        "data": {**data, "text": "\u2603" * 200_000, "history": [entry()]},
    }
    fitted = fit(event)
    assert len(fitted["body"].encode()) <= BODY_LIMIT
    assert fitted["data"]["truncated"] is True and fitted["data"]["status"] == "received" and fitted["data"]["id"] == "a" * 32


def test_a_cut_event_keeps_its_routing_fields_whole():
    callback = "https://example.com/hooks/" + "c" * 1500  # longer than the cut of long fields, shorter than the 2048 allowed
    parts = [{"sequence": n, "binary": "AB" * 600} for n in range(255)]  # what only a hostile sender could make
    data = {"id": "b" * 32, "direction": "mt", "to": "447700900123", "status": "sent", "status_callback": callback, "parts": parts}
    event = {"type": "sms.mt.status", "id": "b:sent", "time": "t", "msisdn": "447700900123", "data": {**data, "history": [entry()]}}
    fitted = fit(event)
    assert len(fitted["body"].encode()) <= BODY_LIMIT and fitted["data"]["truncated"] is True
    assert fitted["data"]["status_callback"] == callback and fitted["data"]["status"] == "sent"
