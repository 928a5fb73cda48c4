"""The smsgw command-line client against the running local stack."""

import json
import signal
import subprocess
import sys

from tests.e2e.conftest import ROOT


def smsgw(local_stack, *args: str) -> subprocess.CompletedProcess:
    outputs = local_stack.log_path.parent / "outputs.json"
    return subprocess.run(
        [sys.executable, "-m", "smsgw_cli.main", "--outputs", str(outputs), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT / "cli"), "PATH": "/usr/bin:/bin"},
    )


def test_send_get_history_and_cancel(local_stack):
    sent = smsgw(local_stack, "--json", "send", "447700900001", "CLI command", "--client-ref", "cli-1")
    message = json.loads(sent.stdout)
    assert (sent.returncode, message["status"]) == (0, "sent")
    shown = smsgw(local_stack, "get", message["id"])
    assert shown.returncode == 0 and "CLI command" in shown.stdout and "Eseye accepted the message" in shown.stdout
    history = smsgw(local_stack, "history", "447700900001")
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
        message = local_stack.send(to="447700900123", text="watch me").json()
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
