"""status_callback: each sms.mt.status event of a message, POSTed to the URL its send named, signed.

Signature: hex HMAC-SHA256, keyed with the callback signing secret, over "<timestamp>.<body>", sent as
`X-Smsgw-Signature: v1=<hex>` with the timestamp in `X-Smsgw-Timestamp`, so a receiver can refuse
replays (old timestamps) and forgeries.

Bounded: each delivery has one total deadline (CALLBACK_DEADLINE_SECONDS: resolve, connect, headers
and body together) and reads at most 64 KB of the answer (adapters/outbound.py). Destinations that
resolve to non-public addresses, or use a port other than 443 (CALLBACK_ALLOWED_PORTS), are refused
and never retried.

Retry schedule (RETRY_SCHEDULE below; the queue's maxReceiveCount is MAX_ATTEMPTS): after the n-th
failed attempt the event waits 10 s x 2^(n-1), at most 2 hours: 10 s, 20 s, 40 s, ... 85 min, then
every 2 hours. The 22nd attempt comes about 24.8 hours after the first; if it fails too, the event
goes to the dead-letter queue (CallbackDeadLetterQueue).

A receiver that keeps failing does not hold up the others: after BREAKER_THRESHOLD failures in a row
its events are put back with their backoff without a connection attempt, until BREAKER_COOL_OFF has
passed (per container, on its Deps; each container learns on its own).

This module decides (signature, schedule, breaker); the adapters do the I/O: adapters/outbound.py the
POST, and the callback queue (deps.callback_queue) the redelivery delay.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from smsgw import backoff

if TYPE_CHECKING:
    from smsgw.config import Settings
    from smsgw.deps import Deps

Post = Callable[[str, bytes, dict[str, str], float, frozenset[int], bool], int]

MAX_BACKOFF_SECONDS = 2 * 3600
MAX_ATTEMPTS = 22  # CallbackQueue's maxReceiveCount; tests/unit/test_template.py holds the two together
BREAKER_THRESHOLD = 3
BREAKER_COOL_OFF_SECONDS = 60.0


class CallbackFailed(Exception):
    pass


def signature(key: str, timestamp: str, body: bytes) -> str:
    return "v1=" + hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def backoff_seconds(receive_count: int) -> int:
    """How long the event waits after its `receive_count`-th attempt failed."""
    return int(backoff.exponential(receive_count, 10, MAX_BACKOFF_SECONDS))


def retry_span_seconds(max_attempts: int = MAX_ATTEMPTS) -> int:
    """Time from the first attempt to the last, with every attempt failing."""
    return sum(backoff_seconds(n) for n in range(1, max_attempts))


def _receiver(url: str) -> str:
    """host:port, what the breaker and the logs know a receiver by (never the path or query: they may hold a token)."""
    try:
        parts = urlsplit(url)
        return f"{parts.hostname or ''}:{parts.port or ''}"
    except ValueError:
        return ""


class Breaker:
    """Per receiver (host and port): consecutive failures, and until when its events skip the connection attempt."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.failures: dict[str, int] = {}
        self.open_until: dict[str, float] = {}

    def is_open(self, host: str) -> bool:
        return self.open_until.get(host, 0.0) > self.clock()

    def record(self, host: str, ok: bool) -> None:
        if ok:
            self.failures.pop(host, None)
            self.open_until.pop(host, None)
            return
        self.failures[host] = self.failures.get(host, 0) + 1
        if self.failures[host] >= BREAKER_THRESHOLD:
            self.open_until[host] = self.clock() + BREAKER_COOL_OFF_SECONDS
            self.failures[host] = 0  # after the cool-off, one attempt decides again


def deliver(event: dict[str, Any], signing_key: str, settings: Settings, post: Post, breaker: Breaker) -> int:
    """POST one event to its message's status_callback. Returns the HTTP status, or 0 when there is nothing
    to deliver or the destination is refused for good. Raises CallbackFailed (retry later)."""
    from smsgw.adapters import outbound
    from smsgw.observability import count, logger

    url = (event.get("data") or {}).get("status_callback")
    if not url:
        return 0  # nothing to deliver (the subscription filter should have kept it away)
    host = _receiver(url)
    if breaker.is_open(host):
        raise CallbackFailed("receiver failing; not tried")
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
        status = post(url, body, headers, settings.callback_deadline_seconds, settings.callback_allowed_ports, settings.allow_insecure_callbacks)
    except outbound.DestinationRefused as exc:
        count("CallbackRefused")
        # The host only: a URL may carry the customer's own token.
        logger.warning("status_callback refused", extra={"host": host, "reason": str(exc), "message_id": (event.get("data") or {}).get("id")})
        return 0
    except outbound.DeliveryFailed as exc:
        breaker.record(host, ok=False)
        raise CallbackFailed(str(exc)) from exc
    if not 200 <= status < 300:
        breaker.record(host, ok=False)
        raise CallbackFailed(f"HTTP {status}")
    breaker.record(host, ok=True)
    return status


def receiver_of(body: str) -> str:
    """The receiver (host and port) a queued event goes to, or "" when the body is not an event."""
    try:
        event = json.loads(body)
        return _receiver(str((event.get("data") or {}).get("status_callback") or ""))
    except (ValueError, AttributeError):
        return ""


class ReceiverTurns:
    """One batch's events go to different receivers side by side, and to one receiver one at a time in
    the order they came: a slow receiver costs the others nothing, and keeps its own events in order."""

    def __init__(self) -> None:
        import asyncio

        self._locks: dict[str, asyncio.Lock] = {}

    def of(self, receiver: str) -> Any:
        import asyncio

        return self._locks.setdefault(receiver, asyncio.Lock())


def deliver_record(body: str, receipt_handle: str, receive_count: int, deps: Deps | None = None, post: Post | None = None) -> int:
    """Deliver one queued event. On failure, delays its redelivery by the backoff and raises CallbackFailed."""
    from smsgw.deps import default_deps
    from smsgw.observability import count

    deps = deps or default_deps()
    event = json.loads(body)
    breaker = deps.once("callback_breaker", Breaker)
    try:
        status = deliver(event, deps.callback_secret.get_text(), deps.settings, post or deps.callback_http().post, breaker)
    except CallbackFailed:
        count("CallbackFailed")
        deps.callback_queue.delay(receipt_handle, backoff_seconds(receive_count))
        raise
    if status:
        count("CallbackDelivered")
    return status
