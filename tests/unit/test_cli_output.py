"""What the smsgw client prints for the events and states that are not about one message."""

from smsgw import models, simqueue
from smsgw.logic import publish
from smsgw_cli.main import show_event, show_health, show_sim

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


def test_a_sim_whose_traffic_is_refused_says_why():
    # Given GET /sims/{msisdn} for a SIM the blocklist holds
    view = simqueue.SimState(MSISDN).view(simqueue.SimSettings())
    standing = {"on_blocklist": True, "on_allowlist": False, "allowlist_in_force": False, "traffic_allowed": False}
    refused = {**view, "lists": {**standing, "refusal_reason": f"{MSISDN} is on the blocklist"}}
    # When it is shown / Then its traffic line says refused and why; an open SIM says allowed
    assert f"  traffic   refused: {MSISDN} is on the blocklist" in show_sim(refused).splitlines()
    open_ = {**view, "lists": {**standing, "on_blocklist": False, "traffic_allowed": True, "refusal_reason": None}}
    assert "  traffic   allowed (on neither list; no allowlist in force)" in show_sim(open_).splitlines()


def test_health_is_one_line_a_concern_and_says_what_needs_doing():
    # Given GET /health with a dead-lettered send and Eseye refusing a quarter of the sends
    health = {
        "dead_letter_queues": [
            {"name": "send-retries", "depth": 2, "in_flight": 0, "redrive": True, "advice": "sends whose retries crashed: redrive"},
            {"name": "publisher", "depth": 0, "in_flight": 0, "redrive": False, "advice": "replay"},
        ],
        "quarantine": {"count": 1, "days": 14, "latest_at": "2026-11-26T06:00:00.000Z"},
        "eseye": {"window_minutes": 15, "sent": 30, "rejected": 10, "retried": 0, "error_rate": 0.25, "alarm_threshold": 0.2},
        "checked_at": "2026-11-26T07:00:00.000Z",
    }
    # When it is shown
    text, concerns = show_health(health)
    lines = text.splitlines()
    # Then each queue, the quarantine and Eseye's rate are a line, and what is wrong is counted as a concern
    assert "  send-retries    2 waiting   redrive: smsgw redrive-sends, or the console's Health page" in lines
    assert "  publisher       0" in lines
    assert "quarantine  1 webhook request in the last 14 days (latest 2026-11-26T06:00:00.000Z)" in lines
    assert "eseye       25.0 % errors over 15 min (30 sent, 10 rejected, 0 retried; the alarm fires over 20 %)" in lines
    assert concerns == 3
    # And a quiet gateway has none
    quiet = {
        **health,
        "dead_letter_queues": [{**q, "depth": 0} for q in health["dead_letter_queues"]],
        "quarantine": {"count": 0, "days": 14, "latest_at": None},
    }
    quiet["eseye"] = {**health["eseye"], "sent": 0, "rejected": 0, "error_rate": None}
    text, concerns = show_health(quiet)
    assert concerns == 0 and "eseye       no sends in the last 15 min" in text.splitlines()
