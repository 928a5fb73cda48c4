"""Messages, their statuses and the moves between them.

The status machine is forward-only: a message moves from `pending` to `sent` to a final status, and
nothing moves a final message. A receipt may overtake our own `sent` write (Eseye delivers before we
record its OK!), so `pending` may move straight to `delivered` or `failed`.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from typing import Any

PENDING = "pending"
SENT = "sent"
DELIVERED = "delivered"
FAILED = "failed"
REJECTED = "rejected"
CANCELLED = "cancelled"
BLOCKED = "blocked"
RECEIVED = "received"  # MO

MT_STATUSES = (PENDING, SENT, DELIVERED, FAILED, REJECTED, CANCELLED, BLOCKED)
FINAL_STATUSES = frozenset({DELIVERED, FAILED, REJECTED, CANCELLED, BLOCKED})

# For each target status, the statuses a message may move to it from.
ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    SENT: (PENDING,),
    DELIVERED: (PENDING, SENT),
    FAILED: (PENDING, SENT),
    REJECTED: (PENDING,),
    CANCELLED: (PENDING, SENT),
    BLOCKED: (PENDING, SENT),
}

# What an Eseye status answer (mtstatusapi / mtcancelapi) tells us about the message (eseye-sms-api.md §4).
ESEYE_STATUS_MEANING = {
    "sent": SENT,
    "queued": SENT,
    "mgmt": SENT,
    "delivered": DELIVERED,
    "blocked": BLOCKED,
    "cancelling": CANCELLED,
    "cancelled": CANCELLED,
}

MSISDN_PATTERN = re.compile(r"^\+?[0-9]{8,15}$")
MESSAGE_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")


def can_move(current: str | None, target: str) -> bool:
    return current in ALLOWED_FROM.get(target, ())


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds, so that stored times sort as strings."""
    # isoformat zero-pads every field (strftime's %Y does not, below the year 1000).
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: Any) -> datetime:
    """An ISO 8601 time with a timezone (Z allowed), as clients send it. Raises ValueError otherwise."""
    if not isinstance(value, str) or len(value) > 40 or any(unicodedata.category(c) == "Cc" for c in value):
        raise ValueError("not an ISO 8601 time")
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("no timezone")
    return moment


def msisdn_digits(value: str) -> str:
    return value.lstrip("+")


def mask_msisdn(value: str | None) -> str:
    """All but the last four digits hidden, for logs."""
    if not value:
        return ""
    digits = msisdn_digits(str(value))
    return "*" * max(len(digits) - 4, 0) + digits[-4:]


def history_entry(at: str, event: str, status: str, cause: str, **detail: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"at": at, "event": event, "status": status, "cause": cause}
    detail = {k: v for k, v in detail.items() if v is not None}
    if detail:
        entry["detail"] = detail
    return entry


PUBLIC_FIELDS = (
    "id",
    "direction",
    "to",
    "from",
    "source",
    "destination",
    "text",
    "data",
    "data_coding",
    "encoding",
    "length",
    "status",
    "client_ref",
    "created_at",
    "updated_at",
    "expires_at",
    "eseye_code",
    "eseye_description",
    "attempts",
    "status_callback",
    "expect_reply_within",
    "reply_deadline",
    "reply_state",
    "reply_id",
    "in_reply_to",
    "parts",
    "incomplete",
    "history",
)


def public_view(item: dict[str, Any]) -> dict[str, Any]:
    """The message as the API and the events show it: stored fields, minus keys and internals."""
    return {name: item[name] for name in PUBLIC_FIELDS if name in item and item[name] is not None}
