"""Messages, their statuses and the moves between them.

The status machine is forward-only: a message moves from `pending` to `sent` to a final status. A
receipt may overtake our own `sent` write (Eseye delivers before we record its OK!), so `pending` may
move straight to `delivered` or `failed`.

Each status says who decided it (`status_source`): `eseye` when Eseye reported it (its OK!, an error
code, a status answer, a receipt), `gateway` when the gateway inferred it (retries ran out, the message
expired, a cancel Eseye did not confirm). Eseye's word overrules the gateway's guesses, so a later
receipt or status answer still moves a message out of an inferred `failed` or `cancelled`. `delivered`
overrules any `failed` or `cancelled`: a multi-IMSI SIM's other copies fail (eseye-sms-api.md §9), and
what an operator needs to know is that the device has the command.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
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

FROM_ESEYE = "eseye"
FROM_GATEWAY = "gateway"

# For each target status, the statuses a message may move to it from.
ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    SENT: (PENDING,),
    DELIVERED: (PENDING, SENT, FAILED, CANCELLED),
    FAILED: (PENDING, SENT),
    REJECTED: (PENDING,),
    CANCELLED: (PENDING, SENT),
    BLOCKED: (PENDING, SENT),
}
# ... and, when Eseye reports the target, from these statuses too if the gateway only inferred them.
ALLOWED_FROM_INFERRED: dict[str, tuple[str, ...]] = {
    SENT: (FAILED, CANCELLED),
    FAILED: (FAILED, CANCELLED),
    BLOCKED: (FAILED, CANCELLED),
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


def can_move(current: str | None, target: str, source: str | None = None, current_source: str | None = None) -> bool:
    """Whether a message in `current` (decided by `current_source`) may move to `target` as `source` reports it."""
    if current in ALLOWED_FROM.get(target, ()):
        return True
    return source == FROM_ESEYE and current_source == FROM_GATEWAY and current in ALLOWED_FROM_INFERRED.get(target, ())


def eseye_status_meaning(status: str | None) -> str | None:
    """What an Eseye status answer says of a message. Any status but `error` means Eseye has it (§4.2)."""
    if not status or status == "error":
        return None
    return ESEYE_STATUS_MEANING.get(status, SENT)


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


def repeats(entry: dict[str, Any], latest: dict[str, Any] | None) -> bool:
    """Whether `entry` says nothing `latest` did not: same event, status and cause, and the same answer
    from Eseye. Eseye's raw body is left out: an error page may differ by a request id and mean the same."""
    if not latest:
        return False

    def news(e: dict[str, Any]) -> tuple:
        detail = {k: ({n: v for n, v in d.items() if n != "raw"} if isinstance(d, dict) else d) for k, d in (e.get("detail") or {}).items()}
        return e.get("event"), e.get("status"), e.get("cause"), detail

    return news(entry) == news(latest)


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
    "status_source",
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
    "history_dropped",  # entries dropped from the middle of a long history (adapters/store.py)
)


def public_view(item: dict[str, Any]) -> dict[str, Any]:
    """The message as the API and the events show it: stored fields, minus keys and internals."""
    return {name: item[name] for name in PUBLIC_FIELDS if name in item and item[name] is not None}


@dataclass(frozen=True)
class ArchivedEvent:
    """A published event as the archive keeps it for POST /events/replay. `position` orders the archive:
    `<time>#<event id>`; `body` is the event's JSON exactly as SNS carried it."""

    position: str
    type: str
    msisdn: str
    body: str
    ttl: int = 0

    @property
    def hour(self) -> str:
        """`yyyy-mm-ddThh`: the hour the event belongs to."""
        return self.position[:13]

    @classmethod
    def from_item(cls, item: Mapping[str, Any], position: str) -> ArchivedEvent:
        return cls(position=position, type=str(item["type"]), msisdn=str(item["msisdn"]), body=str(item["event"]), ttl=int(item.get("ttl") or 0))

    def to_item(self) -> dict[str, Any]:
        return {"type": self.type, "msisdn": self.msisdn, "event": self.body, "ttl": self.ttl}
