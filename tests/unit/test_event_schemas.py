"""The events of a SIM's queue match the JSON Schemas in schemas/ that subscribers code against."""

from smsgw import models, simqueue
from smsgw.logic import publish
from tests.helpers import validate_event

MSISDN = "447700900123"


def sim_item(state: simqueue.SimState) -> dict:
    """A SIM's state as the table stream carries it (without the keys: the repository's business)."""
    return {"rev": state.rev, **state.to_item()}


def test_a_buffer_risk_event_matches_its_schema_with_and_without_an_mo_seen():
    # Given a SIM whose device spoke once, and one it never heard from
    for spoke in ("2026-11-25T09:00:00.000Z", None):
        before = simqueue.SimState(MSISDN)
        if spoke:
            before = before.device_spoke(spoke)
        before, _ = before.admit("f" * 32, models.parse_time("2026-11-25T10:00:00Z"), simqueue.SimSettings())
        # When deliveries since then cross the warning threshold
        after = before
        for n in range(3):
            after = after.delivered(f"{n:032x}", f"2026-11-25T10:00:0{n}.000Z", warn_at=3)
        event = publish.buffer_risk_event(sim_item(after), sim_item(before))
        # Then the event is the documented one
        validate_event(publish.public_event(event))
        assert event["type"] == "sms.sim.buffer_risk"
        assert event["data"]["delivered_since_last_mo"] == event["data"]["threshold"] == 3
        assert (event["data"]["in_flight"], event["data"]["queued"]) == (1, 0)
        assert event["data"].get("last_mo_at") == spoke


def test_status_events_of_queued_scheduled_and_superseded_messages_match_the_schema():
    base = {
        "id": "a" * 32,
        "direction": "mt",
        "to": MSISDN,
        "text": "CONFIG v2",
        "encoding": "gsm7",
        "length": 9,
        "created_at": "2026-11-25T10:00:00.000Z",
        "updated_at": "2026-11-25T10:00:00.000Z",
        "status_source": "gateway",
        "collapse_key": "config",
    }
    for status, extra in (
        ("scheduled", {"send_at": "2026-11-25T11:00:00.000Z"}),
        ("queued", {"supersedes": "b" * 32}),
        ("cancelled", {"superseded_by": "c" * 32}),
    ):
        # Given a message that moved to a waiting status, or was superseded
        new = {**base, **extra, "status": status, "history": [models.history_entry(base["created_at"], status, status, "test")]}
        # When its change is published
        event = publish.event_for(new, None)
        # Then the event is the documented one, with the new fields
        validate_event(publish.public_event(event))
        assert event["data"]["status"] == status and all(event["data"][k] == v for k, v in extra.items())
