"""The smsgw command-line client against the running local stack."""

import json
import signal
import subprocess
import sys

from tests.e2e.conftest import ROOT, smsgw


def test_send_get_history_and_cancel(local_stack):
    sent = smsgw(local_stack, "--json", "send", "447700950001", "CLI command", "--client-ref", "cli-1")
    message = json.loads(sent.stdout)
    assert (sent.returncode, message["status"]) == (0, "sent")
    shown = smsgw(local_stack, "get", message["id"])
    assert shown.returncode == 0 and "CLI command" in shown.stdout and "Eseye accepted the message" in shown.stdout
    history = smsgw(local_stack, "history", "447700950001")
    assert message["id"] in history.stdout
    cancelled = smsgw(local_stack, "cancel", message["id"])
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout
    refused = smsgw(local_stack, "cancel", message["id"])
    assert refused.returncode == 1 and "error 409" in refused.stderr


def test_dry_run_explains_the_encoding(local_stack):
    result = smsgw(local_stack, "send", "447700900123", "naïve ✓", "--dry-run")
    assert result.stdout.strip() == "ucs2  7/70  fits: True  unicode: ï ✓"


def test_watch_prints_events_as_they_happen(local_stack):
    outputs = local_stack.log_path.parent / "outputs.json"
    watcher = subprocess.Popen(
        [sys.executable, "-m", "smsgw_cli.main", "--outputs", str(outputs), "--json", "watch", "--seconds", "120"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(ROOT / "cli"), "PATH": "/usr/bin:/bin"},
    )
    try:
        # Given the watcher has subscribed (it says so once it has)
        assert "watching" in watcher.stderr.readline()
        # When a message is sent
        message = local_stack.send(to="447700960123", text="watch me").json()
        # Then its events are printed as they happen
        seen = set()
        while f"{message['id']}:sent" not in seen:
            line = watcher.stdout.readline()
            assert line, "the watcher stopped before printing the event"
            seen.add(json.loads(line)["id"])
    finally:
        watcher.send_signal(signal.SIGINT)  # Ctrl-C: it unsubscribes and deletes its queue
        watcher.wait(30)


def test_make_invoke_runs_a_handler_with_a_sample_event_against_the_stack(local_stack):
    import os

    env = {**os.environ, "LOCAL_STATE_DIR": str(local_stack.log_path.parent)}
    result = subprocess.run(
        [sys.executable, "-m", "local_stack.invoke", "SendFunction", "events/send_gsm7.json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    response = json.loads(result.stdout[result.stdout.index("{\n") :])
    assert response["statusCode"] == 202
    message = json.loads(response["body"])
    assert local_stack.get(message["id"])["status"] in ("sent", "delivered")  # stored in the running stack


def test_a_sims_queue_shown_changed_and_refused_from_the_cli(local_stack):
    from datetime import UTC, datetime, timedelta

    sim = "447711110001"  # the simulator never sends a receipt to ...0001: the first message keeps the one slot
    # Given a SIM whose one in-flight slot is held
    first = json.loads(smsgw(local_stack, "--json", "send", sim, "first").stdout)
    assert first["status"] == "sent"
    # When two configuration pushes with the same collapse key follow
    v1 = smsgw(local_stack, "send", sim, "CONFIG v1", "--collapse-key", "config")
    assert v1.returncode == 0 and "queued" in v1.stdout and "collapse key config" in v1.stdout
    v1_id = v1.stdout.split()[0]
    v2 = json.loads(smsgw(local_stack, "--json", "send", sim, "CONFIG v2", "--collapse-key", "config").stdout)
    # Then the second waits in the place of the first, and the SIM's queue shows it
    assert (v2["status"], v2["supersedes"]) == ("queued", v1_id)
    shown = smsgw(local_stack, "sim", sim)
    assert shown.returncode == 0
    assert "in flight 1/1" in shown.stdout and "queued 1/100" in shown.stdout
    assert f"1  {v2['id']}" in shown.stdout and "collapse key config" in shown.stdout and v1_id not in shown.stdout
    assert first["id"] in shown.stdout

    # When the SIM gets settings of its own
    changed = smsgw(local_stack, "sim", sim, "--set", "max_queued=1", "--set", "max_per_hour=10")
    assert changed.returncode == 0 and "max_queued 1 (own)" in changed.stdout and "max_per_hour 10 (own)" in changed.stdout
    # Then a send beyond its queue depth is refused, naming the SIM and the depth
    refused = smsgw(local_stack, "send", sim, "one too many")
    assert refused.returncode == 1 and "error 429" in refused.stderr
    assert json.loads(refused.stderr.splitlines()[1]) == {"msisdn": sim, "depth": 1, "max_queued": 1}
    # And out-of-range or malformed settings are refused before anything changes
    out_of_range = smsgw(local_stack, "--json", "sim", sim, "--set", "max_in_flight=11")
    assert out_of_range.returncode == 1 and json.loads(out_of_range.stdout)["error"]["code"] == "validation_error"
    assert smsgw(local_stack, "sim", sim, "--set", "max_in_flight").returncode == 2  # argparse: no value

    # When the SIM goes back to the defaults
    reset = smsgw(local_stack, "sim", sim, "--reset")
    assert reset.returncode == 0 and "max_queued 100 (default)" in reset.stdout and "no hourly cap" in reset.stdout
    # Then a second reset finds nothing to undo
    again = smsgw(local_stack, "sim", sim, "--reset")
    assert again.returncode == 1 and "error 404" in again.stderr

    # When a send is scheduled, then cancelled before its time
    at = (datetime.now(UTC) + timedelta(minutes=30)).isoformat(timespec="seconds")
    later = smsgw(local_stack, "send", sim, "at half past", "--at", at)
    assert later.returncode == 0 and "scheduled" in later.stdout and "send at" in later.stdout
    cancelled = smsgw(local_stack, "cancel", later.stdout.split()[0])
    # Then it ends cancelled without Eseye
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout and "Eseye never saw it" in cancelled.stdout


def test_watch_prints_a_sims_buffer_risk_once_its_deliveries_reach_the_threshold(local_stack):
    sim = "447711120123"
    outputs = local_stack.log_path.parent / "outputs.json"
    watcher = subprocess.Popen(
        [sys.executable, "-m", "smsgw_cli.main", "--outputs", str(outputs), "watch", "--seconds", "120"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(ROOT / "cli"), "PATH": "/usr/bin:/bin"},
    )
    try:
        assert "watching" in watcher.stderr.readline()
        # Given a SIM whose device never answers, with room for eight in flight
        assert smsgw(local_stack, "sim", sim, "--set", "max_in_flight=8").returncode == 0
        # When eight messages reach it (the local stack warns at the default SimBufferWarnAt, 8)
        for n in range(8):
            assert local_stack.send(to=sim, text=f"command {n}").status_code == 202
        # Then the watcher prints the SIM's buffer risk
        while True:
            line = watcher.stdout.readline()
            assert line, "the watcher stopped before printing the buffer risk"
            if "sms.sim.buffer_risk" in line:
                break
        assert line.rstrip().endswith(f"{sim}  8 delivered since the device last spoke (warn at 8)")
        shown = smsgw(local_stack, "sim", sim)
        assert "~8 of the 10 SMS the SIM holds" in shown.stdout
    finally:
        watcher.send_signal(signal.SIGINT)
        watcher.wait(30)
