"""Messages, their statuses and the moves between them.

The status machine is forward-only: a message moves from `scheduled` (a send_at in the future) to
`queued` (waiting for its SIM's in-flight slot, simqueue.py) to `pending` to `sent` to a final status,
entering at whichever of the first three applies. A
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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

SCHEDULED = "scheduled"
QUEUED = "queued"
PENDING = "pending"
SENT = "sent"
DELIVERED = "delivered"
FAILED = "failed"
REJECTED = "rejected"
CANCELLED = "cancelled"
BLOCKED = "blocked"
RECEIVED = "received"  # MO

MT_STATUSES = (SCHEDULED, QUEUED, PENDING, SENT, DELIVERED, FAILED, REJECTED, CANCELLED, BLOCKED)
# Statuses before Eseye may have the message: the gateway alone decides what becomes of it.
WAITING_STATUSES = frozenset({SCHEDULED, QUEUED})
FINAL_STATUSES = frozenset({DELIVERED, FAILED, REJECTED, CANCELLED, BLOCKED})

# A batch (POST /batches): accepted -> fanning_out (messages being created) -> sending -> completed
# (every message final); cancelled from any of the first three.
BATCH_ACCEPTED = "accepted"
BATCH_FANNING_OUT = "fanning_out"
BATCH_SENDING = "sending"
BATCH_COMPLETED = "completed"
BATCH_CANCELLED = "cancelled"
BATCH_STATES = (BATCH_ACCEPTED, BATCH_FANNING_OUT, BATCH_SENDING, BATCH_COMPLETED, BATCH_CANCELLED)
BATCH_ACTIVE_STATES = (BATCH_ACCEPTED, BATCH_FANNING_OUT, BATCH_SENDING)

FROM_ESEYE = "eseye"
FROM_GATEWAY = "gateway"

# The history entry of one status-callback attempt (logic/callbacks.py): its `status` is the status the
# callback reported, its detail.callback where it went and how it ended. A long history drops these first.
CALLBACK_EVENT = "callback"

# For each target status, the statuses a message may move to it from.
ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    QUEUED: (SCHEDULED,),
    PENDING: (SCHEDULED, QUEUED),
    SENT: (PENDING,),
    DELIVERED: (PENDING, SENT, FAILED, CANCELLED),
    # A waiting message fails when it expires, or when its SIM's queue is full at its send_at.
    FAILED: (SCHEDULED, QUEUED, PENDING, SENT),
    REJECTED: (PENDING,),
    CANCELLED: (SCHEDULED, QUEUED, PENDING, SENT),
    # A waiting message whose MSISDN was blocklisted meanwhile ends `blocked` (by the gateway).
    BLOCKED: (SCHEDULED, QUEUED, PENDING, SENT),
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
    from smsgw.validation import has_control_characters

    if not isinstance(value, str) or len(value) > 40 or has_control_characters(value):
        raise ValueError("not an ISO 8601 time")
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("no timezone")
    try:
        moment.astimezone(UTC)  # every time is stored in UTC: one whose UTC falls outside the calendar is no time
    except OverflowError as exc:
        raise ValueError("outside the calendar in UTC") from exc
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

    def news(e: dict[str, Any]) -> tuple[Any, ...]:
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
    "send_at",
    "collapse_key",
    "batch_id",
    "command",
    "variables",
    "supersedes",
    "superseded_by",
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


def public_view(item: Mapping[str, Any]) -> dict[str, Any]:
    """The message as the API and the events show it: stored fields, minus keys and internals."""
    return {name: item[name] for name in PUBLIC_FIELDS if name in item and item[name] is not None}


@dataclass(frozen=True)
class ListEntry:
    """An MSISDN on the allowlist or the blocklist."""

    list: str  # allow | block
    msisdn: str  # digits
    added_at: str
    added_by: str
    note: str | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> ListEntry:
        note = item.get("note")
        return cls(str(item["list"]), str(item["msisdn"]), str(item["added_at"]), str(item["added_by"]), None if note is None else str(note))

    def to_item(self) -> dict[str, Any]:
        """The stored attributes; also what the API shows of an entry (None left out)."""
        item = {"list": self.list, "msisdn": self.msisdn, "added_at": self.added_at, "added_by": self.added_by, "note": self.note}
        return {k: v for k, v in item.items() if v is not None}


@dataclass(frozen=True)
class Group:
    """A named set of SIMs (up to 100,000: logic/groups.py) to send to at once. `generation` names the stored
    member set the last replace wrote; `size` is always the number of members in it."""

    name: str
    size: int
    generation: str
    created_at: str
    created_by: str
    updated_at: str
    updated_by: str

    def to_view(self) -> dict[str, Any]:
        """What the API shows of a group (its members are paged apart)."""
        return {
            "name": self.name,
            "size": self.size,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "updated_at": self.updated_at,
            "updated_by": self.updated_by,
        }


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


@dataclass(frozen=True)
class Message(Mapping[str, Any]):
    """A stored message (MT or MO, by `direction`), typed, and immutable: a change is a new record the
    repository returns. `from_item`/`to_item` convert to and from the stored attributes (the table's keys
    are the repository's business and never appear here); `public_view` is what the API and the events show.

    It also reads as a read-only mapping of its stored attributes (`message["status"]`, `.get`), so
    code can move to the typed fields one module at a time. A field that is None is not stored.
    A receipt-only placeholder (receipts that came before their message) has no `status`.
    """

    id: str
    direction: str | None = None  # mt | mo
    to: str | None = None
    from_: str | None = None  # stored as `from`
    source: str | None = None
    destination: str | None = None
    text: str | None = None
    data: str | None = None
    data_coding: str | None = None
    encoding: str | None = None
    length: int | None = None
    status: str | None = None
    status_source: str | None = None  # eseye | gateway
    client_ref: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    expires_at: str | None = None
    eseye_code: int | None = None
    eseye_description: str | None = None
    attempts: int | None = None
    status_callback: str | None = None
    send_at: str | None = None
    collapse_key: str | None = None
    batch_id: str | None = None  # the batch (POST /batches) this message was sent for
    command: str | None = None  # the saved command its text was rendered from
    variables: dict[str, str] | None = None  # the values the command was rendered with
    supersedes: str | None = None  # the queued message this one replaced (same collapse_key)
    superseded_by: str | None = None
    expect_reply_within: int | None = None
    reply_deadline: str | None = None
    reply_state: str | None = None  # waiting | replied | timed_out
    reply_id: str | None = None
    in_reply_to: str | None = None
    parts: list[dict[str, Any]] | None = None
    incomplete: bool | None = None
    history: list[dict[str, Any]] | None = None
    history_dropped: int | None = None
    # Internal: never shown by the API or the events.
    eseye_message_id: str | None = None
    eseye_expiry: str | None = None
    eseye_payload: dict[str, str] | None = None
    receipt_base: str | None = None
    request_hash: str | None = None
    lease_owner: str | None = None
    lease_until: str | None = None
    may_be_at_eseye: bool | None = None
    batch_chunk: int | None = None  # the chunk of its batch whose progress it counts in
    sent_at: str | None = None  # when Eseye accepted it: its in-flight slot times out from here
    last_receipt: dict[str, Any] | None = None
    receipt_keys: list[str] | None = None
    orphan_receipts: list[dict[str, Any]] | None = None
    ttl: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # attributes this version does not know

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Message:
        known = {f.name for f in fields(cls)} - {"extra"}
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for name, value in item.items():
            attribute = _FIELD_OF.get(name, name)
            if attribute in known and name not in _FIELD_OF.values():
                values[attribute] = value
            else:
                extra[name] = value
        return cls(**values, extra=extra)

    def to_item(self) -> dict[str, Any]:
        """The stored attributes (None left out), in field order."""
        item = {_ATTRIBUTE_OF.get(f.name, f.name): getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        item.update(self.extra)
        return {name: value for name, value in item.items() if value is not None}

    def public_view(self) -> dict[str, Any]:
        """The message as the API and the events show it."""
        return public_view(self.to_item())

    # --- a read-only mapping of the stored attributes ------------------------------------------
    def __getitem__(self, name: str) -> Any:
        attribute = _FIELD_OF.get(name, name)
        renamed_or_unknown = name in _ATTRIBUTE_OF or attribute not in _FIELD_NAMES
        value = self.extra.get(name) if renamed_or_unknown else getattr(self, attribute)
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_item())

    def __len__(self) -> int:
        return len(self.to_item())


_ATTRIBUTE_OF = {"from_": "from"}  # field -> stored attribute, where a Python name cannot be the attribute's
_FIELD_OF = {attribute: name for name, attribute in _ATTRIBUTE_OF.items()}
_FIELD_NAMES = frozenset(f.name for f in fields(Message)) - {"extra"}
