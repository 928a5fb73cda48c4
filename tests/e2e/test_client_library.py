"""smsgw_client against the local stack, as an integrator uses it: send, read, page a SIM's messages, cancel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from smsgw_client import ApiError, Client
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e


def test_send_get_list_and_cancel_through_the_client_library(local_stack):
    # Given the library pointed at the local stack, and a SIM
    client = Client(local_stack.api)
    sim = "447703601001"
    # When a message is sent (with an idempotency key the library makes) and a scheduled one after it
    sent = client.send_message(sim, "LIBRARY CLIENT")
    later = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    scheduled = client.send_message(sim, "LATER", send_at=later)
    # Then the first is accepted and reaches delivered when read back
    assert sent["status"] in ("sent", "pending") and scheduled["status"] == "scheduled"
    delivered = wait_until(lambda: (m := client.get_message(sent["id"]))["status"] == "delivered" and m, 60, interval=0.3)
    assert delivered["history"][0]["event"] == "accepted"
    # and paging the SIM's messages one at a time finds both, newest first
    ids = [m["id"] for m in client.iter_messages(msisdn=sim, limit=1)]
    assert ids[:2] == [scheduled["id"], sent["id"]]
    # When the scheduled one is cancelled / Then it is, and cancelling again is the API's typed 409
    assert client.cancel_message(scheduled["id"])["status"] == "cancelled"
    with pytest.raises(ApiError) as again:
        client.cancel_message(scheduled["id"])
    assert again.value.status == 409
