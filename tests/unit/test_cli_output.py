"""What the smsgw client prints for the events and states that are not about one message."""

from smsgw import models, simqueue
from smsgw.logic import publish
from smsgw_cli.main import show_event, show_sim

MSISDN = "447700900123"


def test_watch_prints_a_buffer_risk_event_by_its_sim():
    # Given a buffer_risk event as the publisher builds it
    state = simqueue.SimState(MSISDN)
    crossed = state
    for n in range(8):
        crossed = crossed.delivered(f"{n:032x}", f"2026-11-25T10:00:0{n}.000Z", warn_at=8)
    event = publish.public_event(publish.buffer_risk_event(crossed.to_item(), state.to_item()))
    # When the watcher prints it / Then it names the SIM and the count
    assert show_event(event, tty=False).endswith(f"sms.sim.buffer_risk {MSISDN}  8 delivered since the device last spoke (warn at 8)")


def test_a_sims_queue_is_shown_in_order_with_its_settings():
    # Given a SIM with its own hourly cap, one message in flight and two waiting
    defaults = simqueue.SimSettings()
    state = simqueue.SimState(MSISDN, overrides={"max_per_hour": 10})
    for message_id, key in (("a" * 32, None), ("b" * 32, "config"), ("c" * 32, None)):
        state, _ = state.admit(message_id, models.now(), defaults, collapse_key=key)
    # When it is shown
    lines = show_sim(state.view(defaults)).splitlines()
    # Then a person sees the counts against the limits, where each setting comes from, and the queue in order
    assert lines[1].split() == ["in", "flight", "1/1", "queued", "2/100", "10", "an", "hour"]
    assert "max_in_flight 1 (default)" in lines[2] and "max_per_hour 10 (own)" in lines[2]
    queued = lines[lines.index("  queued (next first):") + 1 :]
    assert [line.split()[:2] for line in queued] == [["1", "b" * 32], ["2", "c" * 32]]
    assert queued[0].endswith("collapse key config")
