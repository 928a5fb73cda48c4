"""An integrator's own client, generated from openapi/openapi.yaml by a mainstream generator
(openapi-python-client), sends, reads, lists and cancels against the running local stack."""

from __future__ import annotations

import importlib
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.conftest import ROOT
from tests.helpers import wait_until

GENERATOR = [sys.executable, "-m", "openapi_python_client"]
DOCUMENT = ROOT / "openapi" / "openapi.yaml"


def generate(output, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*GENERATOR, "generate", "--path", str(DOCUMENT), "--meta", "none", "--output-path", str(output), *options],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": f"{ROOT / '.venv' / 'bin'}:/usr/bin:/bin", "HOME": str(output.parent)},
    )


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """The client generated with literal_enums, imported as the package `smsgw_generated`."""
    root = tmp_path_factory.mktemp("generated")
    (root / "config.yaml").write_text("literal_enums: true\n")
    result = generate(root / "smsgw_generated", "--config", str(root / "config.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    sys.path.insert(0, str(root))
    try:
        yield lambda name: importlib.import_module(f"smsgw_generated.{name}")
    finally:
        sys.path.remove(str(root))


def test_the_generator_takes_the_document_with_its_default_configuration(tmp_path):
    # When a client is generated with no configuration at all
    result = generate(tmp_path / "default_client")
    # Then it succeeds with nothing skipped (enum values that collide as names, F6 and f6, made it fail)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Unable to" not in result.stdout + result.stderr, result.stdout + result.stderr
    assert (tmp_path / "default_client" / "api" / "messages" / "send_message.py").exists()


def test_a_generated_client_sends_reads_lists_and_cancels(local_stack, generated):
    client = generated("client").Client(base_url=local_stack.api, raise_on_unexpected_status=True, timeout=30)
    models = generated("models")
    send = generated("api.messages.send_message")
    get = generated("api.messages.get_message")
    listing = generated("api.messages.list_messages")
    cancel = generated("api.messages.cancel_message")
    sim = "447703501002"
    # When the integrator sends with their generated client
    sent = send.sync_detailed(client=client, body=models.SendRequest(to=sim, text="GENERATED CLIENT"))
    # Then the answer is the documented one, parsed into its model
    assert sent.status_code == 202
    message = sent.parsed
    assert isinstance(message, models.Message) and message.status in ("sent", "pending")
    # and reading it follows it to delivered
    delivered = wait_until(lambda: (m := get.sync(client=client, message_id=message.id)) and m.status == "delivered" and m, 60, interval=0.3)
    assert delivered.history[0].event == "accepted"
    # and the SIM's listing has it
    page = listing.sync(client=client, msisdn=sim)
    assert message.id in [m.id for m in page.items]
    # When a scheduled message is cancelled through the client
    later = datetime.now(UTC) + timedelta(minutes=10)
    scheduled = send.sync(client=client, body=models.SendRequest(to=sim, text="LATER", send_at=later))
    assert scheduled.status == "scheduled"
    cancelled = cancel.sync(client=client, message_id=scheduled.id)
    # Then it is cancelled, and an unknown message reads as the documented error
    assert cancelled.status == "cancelled"
    missing = get.sync_detailed(client=client, message_id="0" * 32)
    assert missing.status_code == 404 and missing.parsed.error.code == "not_found"
