"""status_callback: each sms.mt.status event of a message, POSTed to the URL its send named, signed.

Signature: hex HMAC-SHA256, keyed with the callback signing secret, over "<timestamp>.<body>", sent as
`X-Smsgw-Signature: v1=<hex>` with the timestamp in `X-Smsgw-Timestamp`, so a receiver can refuse
replays (old timestamps) and forgeries. Failed deliveries return to the queue with growing delays,
then go to its dead-letter queue.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any


class CallbackFailed(Exception):
    pass


def signature(key: str, timestamp: str, body: bytes) -> str:
    return "v1=" + hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def backoff_seconds(receive_count: int) -> int:
    return min(900, 10 * 2 ** max(receive_count - 1, 0))


def deliver(event: dict[str, Any], signing_key: str, session: Any, allow_insecure: bool = False, timeout: tuple[float, float] = (3.05, 10)) -> int:
    """POST one event to its message's status_callback. Returns the HTTP status. Raises CallbackFailed."""
    import requests

    url = (event.get("data") or {}).get("status_callback")
    if not url:
        return 0  # nothing to deliver (the subscription filter should have kept it away)
    if not (url.startswith("https://") or (allow_insecure and url.startswith("http://"))):
        return 0  # refused at send time; never follow anything else
    body = json.dumps(event, separators=(",", ":"), default=str).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "eseye-sms-gateway/1",
        "X-Smsgw-Event-Id": event["id"],
        "X-Smsgw-Timestamp": timestamp,
        "X-Smsgw-Signature": signature(signing_key, timestamp, body),
    }
    try:
        response = session.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        raise CallbackFailed(f"{type(exc).__name__}") from exc
    if not 200 <= response.status_code < 300:
        raise CallbackFailed(f"HTTP {response.status_code}")
    return response.status_code


def deliver_record(body: str, receipt_handle: str, receive_count: int, deps: Any = None, session: Any = None) -> int:
    """Deliver one queued event. On failure, delays its redelivery by a growing backoff and raises."""
    from smsgw.adapters.queue import delay_redelivery
    from smsgw.deps import default_deps
    from smsgw.observability import count

    deps = deps or default_deps()
    event = json.loads(body)
    global _SESSION
    if session is None:
        if _SESSION is None:
            import requests

            _SESSION = requests.Session()
        session = _SESSION
    try:
        status = deliver(event, deps.callback_secret.get_text(), session, deps.settings.allow_insecure_callbacks)
    except CallbackFailed:
        count("CallbackFailed")
        delay_redelivery(deps.settings.callback_queue_url, receipt_handle, backoff_seconds(receive_count), deps.retry_queue.client)
        raise
    count("CallbackDelivered")
    return status


_SESSION: Any = None
