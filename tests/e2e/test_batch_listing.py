"""GET /batches through smsgw_client against the local stack: the listing the console's Batches page reads."""

from __future__ import annotations

import pytest

from smsgw_client import ApiError, Client
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e


def test_the_client_lists_recent_batches_with_their_counts_and_pages_them(local_stack):
    # Given a batch cancelled before it went out, and one sending to a SIM that never gets a receipt
    client = Client(local_stack.api)
    cancelled = client.create_batch({"to": ["447703701001", "447703701002"], "text": "STOP"})
    client.cancel_batch(cancelled["id"])
    sending = client.create_batch({"to": ["447703700001"], "text": "PING"})  # ...0001: the simulator sends no receipt

    # When the batches are listed / Then both are there, newest first, each counted by status once the fan-out ran
    def listed() -> dict | None:
        items = {b["id"]: b for b in client.list_batches(limit=100)["items"]}
        if items.get(cancelled["id"], {}).get("counts") == {"cancelled": 2} and items.get(sending["id"], {}).get("counts") == {"sent": 1}:
            return items
        return None

    items = wait_until(listed, 60, interval=0.5)
    order = [i for i in items if i in (cancelled["id"], sending["id"])]
    assert order == [sending["id"], cancelled["id"]]
    assert (items[cancelled["id"]]["state"], items[sending["id"]]["state"]) == ("cancelled", "sending")
    # and iter_batches follows the cursor one batch at a time, filtered by state
    assert cancelled["id"] in [b["id"] for b in client.iter_batches(state="cancelled", limit=1)]
    assert sending["id"] not in [b["id"] for b in client.iter_batches(state="cancelled", limit=1)]
    # and a bad filter is the API's own 422, named
    with pytest.raises(ApiError) as refused:
        client.list_batches(state="running")
    assert (refused.value.status, refused.value.code) == (422, "validation_error")
    assert "state" in refused.value.details["fields"]
