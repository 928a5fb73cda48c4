"""The typed records: a stored item survives the round trip whole, and the API's view is unchanged."""

from __future__ import annotations

import dataclasses

import pytest

from smsgw import models

MT_ITEM = {
    "id": "ab" * 16,
    "direction": "mt",
    "to": "447700900001",
    "text": "RELAY ON",
    "encoding": "gsm7",
    "length": 8,
    "status": "sent",
    "status_source": "eseye",
    "created_at": "2026-11-25T12:00:00.000Z",
    "updated_at": "2026-11-25T12:00:01.000Z",
    "attempts": 1,
    "history": [{"at": "2026-11-25T12:00:00.000Z", "event": "accepted", "status": "pending", "cause": "accepted by the API"}],
    "eseye_payload": {"short_message": "RELAY ON"},
    "lease_owner": "owner",
    "may_be_at_eseye": False,
    "receipt_keys": ["r1|delivered"],
    "field_from_a_later_version": {"kept": True},
}
MO_ITEM = {"id": "cd" * 16, "direction": "mo", "from": "447700900002", "to": "447000000001", "text": "OK", "status": "received"}


@pytest.mark.parametrize("item", [MT_ITEM, MO_ITEM], ids=["mt", "mo"])
def test_a_stored_message_survives_the_round_trip_whole(item):
    # Given a stored message (MT, or MO with its `from`)
    message = models.Message.from_item(item)
    # Then it comes back as it was stored, attributes this version does not know included
    assert message.to_item() == item
    # And the API and the events see exactly what they saw before records were typed
    assert message.public_view() == models.public_view(item)


def test_a_message_reads_as_its_stored_attributes_and_cannot_be_changed_in_place():
    # Given a message
    message = models.Message.from_item(MO_ITEM)
    # Then typed fields and stored attribute names agree, and an attribute not stored is absent
    assert message.from_ == message["from"] == "447700900002" and message.status == message.get("status") == "received"
    assert "history" not in message and message.get("history") is None and dict(message) == MO_ITEM
    with pytest.raises(KeyError):
        message["from_"]
    # And a change is a new record, never an edit of this one
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.status = "blocked"  # type: ignore[misc]
    assert dataclasses.replace(message, status="blocked").status == "blocked" and message.status == "received"


def test_list_entries_and_archived_events_round_trip():
    entry = models.ListEntry("block", "447700900001", "2026-11-25T12:00:00.000Z", "ops", None)
    assert models.ListEntry.from_item(entry.to_item()) == entry and "note" not in entry.to_item()
    event = models.ArchivedEvent("2026-11-25T12:00:00.000Z#x:delivered", "sms.mt.status", "447700900001", '{"id":"x:delivered"}', 5)
    assert models.ArchivedEvent.from_item(event.to_item(), event.position) == event and event.hour == "2026-11-25T12"
