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

Every attempt is recorded on the message's history (`event: callback`; one atomic append, no read, and
never touching its status or `updated_at`): delivered, refused (the receiver's non-2xx status), failed
(no answer: connection, deadline, or not tried while the breaker is open), blocked (our URL policy; never
retried) and gave_up (the last attempt failed: the queue dead-letters the event). A record that cannot be
written is logged and counted (CallbackNotRecorded), never retried: a delivered callback stays delivered.

This module decides (signature, schedule, breaker); the adapters do the I/O: adapters/outbound.py the
POST, the callback queue (deps.callback_queue) the redelivery delay, the store the history.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from smsgw import backoff, models

if TYPE_CHECKING:
    from smsgw.config import Settings
    from smsgw.deps import Deps

Post = Callable[[str, bytes, dict[str, str], float, frozenset[int], bool], int]

MAX_BACKOFF_SECONDS = 2 * 3600
MAX_ATTEMPTS = 22  # CallbackQueue's maxReceiveCount; tests/unit/test_template.py holds the two together
BREAKER_THRESHOLD = 3
BREAKER_COOL_OFF_SECONDS = 60.0


# How an attempt ended (the history's detail.callback.outcome).
DELIVERED = "delivered"  # a 2xx answer
REFUSED = "refused"  # the receiver answered, not 2xx: retried
FAILED = "failed"  # no answer (connection, deadline) or not tried (breaker open): retried
BLOCKED = "blocked"  # our URL policy refuses the destination: never retried
GAVE_UP = "gave_up"  # the last attempt (MAX_ATTEMPTS) refused or failed: the queue dead-letters the event


class CallbackFailed(Exception):
    pass


@dataclass(frozen=True)
class Attempt:
    """How one delivery attempt ended."""

    outcome: str
    http_status: int | None = None
    reason: str | None = None
    duration_ms: int = 0


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


def public_url(url: str) -> str:
    """The URL as the history shows it: without credentials, query or fragment (a customer's token may be there)."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return ""
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname or ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def deliver(event: dict[str, Any], signing_key: str, settings: Settings, post: Post, breaker: Breaker) -> Attempt | None:
    """POST one event to its message's status_callback. Returns how the attempt ended (delivered, refused,
    failed, blocked), or None when there is nothing to deliver."""
    from smsgw.adapters import outbound
    from smsgw.observability import count, logger

    url = (event.get("data") or {}).get("status_callback")
    if not url:
        return None  # nothing to deliver (the subscription filter should have kept it away)
    host = _receiver(url)
    if breaker.is_open(host):
        return Attempt(FAILED, reason=f"not tried: the receiver failed {BREAKER_THRESHOLD} times in a row (retried after a pause)")
    body = json.dumps(event, separators=(",", ":"), default=str).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "eseye-sms-gateway/1",
        "X-Smsgw-Event-Id": event["id"],
        "X-Smsgw-Timestamp": timestamp,
        "X-Smsgw-Signature": signature(signing_key, timestamp, body),
    }
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        status = post(url, body, headers, settings.callback_deadline_seconds, settings.callback_allowed_ports, settings.allow_insecure_callbacks)
    except outbound.DestinationRefused as exc:
        count("CallbackRefused")
        # The host only: a URL may carry the customer's own token.
        logger.warning("status_callback refused", extra={"host": host, "reason": str(exc), "message_id": (event.get("data") or {}).get("id")})
        return Attempt(BLOCKED, reason=f"destination not allowed: {exc}", duration_ms=took())
    except outbound.DeliveryFailed as exc:
        breaker.record(host, ok=False)
        return Attempt(FAILED, reason=str(exc) or type(exc).__name__, duration_ms=took())
    if not 200 <= status < 300:
        breaker.record(host, ok=False)
        return Attempt(REFUSED, http_status=status, duration_ms=took())
    breaker.record(host, ok=True)
    return Attempt(DELIVERED, http_status=status, duration_ms=took())


def _cause(tried: Attempt, reported: str, attempt: int, retry_in: int) -> str:
    """The entry's cause, whole in itself (a client that shows only status and cause still says it all)."""
    said = f"HTTP {tried.http_status}" if tried.http_status is not None else tried.reason or "no answer"
    prefix = f"status callback for {reported!r}:"
    if tried.outcome == DELIVERED:
        return f"{prefix} delivered ({said})"
    if tried.outcome == BLOCKED:
        return f"{prefix} not sent, {said} (never retried)"
    if tried.outcome == GAVE_UP:
        return f"{prefix} gave up after {attempt} attempts ({said}); the event goes to the callback dead-letter queue"
    what = "refused by the receiver" if tried.outcome == REFUSED else "failed"
    return f"{prefix} {what} ({said}); retried in {retry_in} s"


def record(deps: Deps, event: dict[str, Any], tried: Attempt, attempt: int, retry_in: int = 0) -> None:
    """Add the attempt to its message's history. Never raises: the POST has happened (or not) whatever the
    record says, and a retry for the record's sake would call the receiver twice."""
    from smsgw.adapters.store import ConditionFailed
    from smsgw.observability import count, logger

    data = event.get("data") or {}
    message_id, reported = str(data.get("id") or ""), str(data.get("status") or "")
    if not message_id:
        return
    detail = {
        "url": public_url(str(data.get("status_callback") or "")),
        "attempt": attempt,
        "outcome": tried.outcome,
        "http_status": tried.http_status,
        "reason": tried.reason,
        "duration_ms": tried.duration_ms,
        "event_id": event.get("id"),
    }
    callback = {k: v for k, v in detail.items() if v is not None}
    # An sms.mt.reply_timeout event goes to the callback too: its cause names it rather than the status.
    about = reported if event.get("type", "sms.mt.status") == "sms.mt.status" else str(event.get("type"))
    entry = models.history_entry(deps.now_iso(), models.CALLBACK_EVENT, reported, _cause(tried, about, attempt, retry_in), callback=callback)
    try:
        deps.store.messages.note_callback(message_id, entry)
    except ConditionFailed:
        count("CallbackNotRecorded")
        logger.info("status callback not recorded: no such message", extra={"message_id": message_id, "outcome": tried.outcome})
    except Exception:  # whatever went wrong, the delivery's own outcome stands (see the docstring)
        count("CallbackNotRecorded")
        logger.exception("status callback not recorded", extra={"message_id": message_id, "outcome": tried.outcome})


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
    """Deliver one queued event (its `receive_count`-th attempt) and record the attempt on its message.
    Returns the receiver's HTTP status, or 0 when there was nothing to deliver or the destination is refused
    for good. On failure, delays its redelivery by the backoff and raises CallbackFailed."""
    from smsgw.deps import default_deps
    from smsgw.observability import count

    deps = deps or default_deps()
    event = json.loads(body)
    breaker = deps.once("callback_breaker", Breaker)
    tried = deliver(event, deps.callback_secret.get_text(), deps.settings, post or deps.callback_http().post, breaker)
    if tried is None:
        return 0
    if tried.outcome in (DELIVERED, BLOCKED):
        record(deps, event, tried, receive_count)
        if tried.outcome == DELIVERED:
            count("CallbackDelivered")
        return tried.http_status or 0
    count("CallbackFailed")
    retry_in = backoff_seconds(receive_count)
    # The queue's maxReceiveCount is MAX_ATTEMPTS: after this one it dead-letters the event.
    record(deps, event, replace(tried, outcome=GAVE_UP) if receive_count >= MAX_ATTEMPTS else tried, receive_count, retry_in)
    deps.callback_queue.delay(receipt_handle, retry_in)
    raise CallbackFailed(f"HTTP {tried.http_status}" if tried.http_status is not None else tried.reason or "failed")
