"""The operator console served two ways (issue 15): by `make run` beside the local stack (its URL in the
outputs as ConsoleUrl), and by `smsgw console [--api URL] [--port N]` as an operator starts it."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys

import pytest
import requests

from tests.e2e.conftest import ROOT, free_port
from tests.helpers import wait_until


def unused_sim() -> str:
    """A SIM no other test sends to (4477047...), whose messages the simulator delivers."""
    return f"4477047{random.randrange(1, 9):01d}{random.randrange(1000, 9999):04d}"


def console_lists(url: str, message_id: str) -> bool:
    page = requests.get(f"{url}/messages", timeout=30)
    return page.status_code == 200 and f'data-message-id="{message_id}"' in page.text


@pytest.fixture(scope="module")
def delivered(local_stack):
    sent = local_stack.send(to=unused_sim(), text="CONSOLE?")
    assert sent.status_code == 202, sent.text
    return local_stack.wait_for_status(sent.json()["id"], {"delivered"})


def test_make_run_serves_the_console_on_loopback_and_names_it_in_the_outputs(local_stack, delivered):
    # Given the stack as `make run` starts it
    url = local_stack.outputs["ConsoleUrl"]
    outputs = json.loads((local_stack.log_path.parent / "outputs.json").read_text())
    # Then its outputs and its banner name the console, on loopback
    assert outputs["ConsoleUrl"] == url and url.startswith("http://127.0.0.1:")
    assert f"Console      {url}" in local_stack.log_path.read_text()
    # And the console lists the fleet's messages from the stack's API
    assert console_lists(url, delivered["id"])
    assert requests.get(url, timeout=30, allow_redirects=False).headers["Location"].endswith("/messages")


@pytest.mark.parametrize("how", ["outputs", "--api"])
def test_smsgw_console_serves_the_console_against_the_local_stack(local_stack, delivered, how):
    # Given an operator starting `smsgw console` on a port of their choosing, against the local stack
    # (found in its outputs, or named with --api)
    port = free_port()
    where = ["--outputs", str(local_stack.log_path.parent / "outputs.json")] if how == "outputs" else []
    api = ["--api", local_stack.api] if how == "--api" else []
    process = subprocess.Popen(
        [sys.executable, "-m", "smsgw_cli.main", *where, "console", *api, "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={"PYTHONPATH": str(ROOT / "cli"), "PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def serving() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"smsgw console exited {process.returncode}: {process.stdout.read() if process.stdout else ''}")
            try:
                return requests.get(f"{url}/messages", timeout=5).status_code == 200
            except requests.ConnectionError:
                return False

        # When it is up
        wait_until(serving, timeout=60, interval=0.2, message=f"smsgw console answers on {url}")
        # Then its messages page lists the fleet's messages, from the local stack's API
        assert console_lists(url, delivered["id"])
    finally:
        # And Ctrl-C stops it
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    assert f"http://127.0.0.1:{port}" in output, output
    assert "Traceback" not in output, output
