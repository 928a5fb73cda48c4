"""What a use case decided, in domain terms. The handler layer (http.py) alone turns an outcome into HTTP.

An outcome carries the message's public view (a plain dict), not the stored record, so it survives a
round trip through the idempotency store unchanged and does not depend on how messages are stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Accepted:
    """The message is stored and on its way (sent, or queued for a retry)."""

    view: dict[str, Any]


@dataclass(frozen=True)
class Rejected:
    """Eseye refused the message with an error code; the message is stored as `rejected`."""

    view: dict[str, Any]
    eseye_code: int | None
    eseye_description: str | None


@dataclass(frozen=True)
class DryRun:
    """What a send would do (destination, encoding, length, Eseye fields), with nothing stored or sent."""

    analysis: dict[str, Any]


SendOutcome = Accepted | Rejected | DryRun


def to_record(outcome: SendOutcome) -> dict[str, Any]:
    """The outcome as JSON-ready data, for the idempotency store."""
    if isinstance(outcome, Accepted):
        return {"outcome": "accepted", "view": outcome.view}
    if isinstance(outcome, Rejected):
        return {"outcome": "rejected", "view": outcome.view, "eseye_code": outcome.eseye_code, "eseye_description": outcome.eseye_description}
    return {"outcome": "dry_run", "analysis": outcome.analysis}


def from_record(record: dict[str, Any]) -> SendOutcome:
    """The outcome `to_record` saved. Also reads the records written before outcomes were typed
    ({"status_code", "body"}), which live as long as an Idempotency-Key's window (a day) after a deploy."""
    kind = record.get("outcome")
    if kind == "accepted":
        return Accepted(record["view"])
    if kind == "rejected":
        return Rejected(record["view"], record.get("eseye_code"), record.get("eseye_description"))
    if kind == "dry_run":
        return DryRun(record["analysis"])
    body = record["body"]
    if record.get("status_code") == 422:
        details = body["error"]["details"]
        return Rejected(details["message"], details.get("eseye_code"), details.get("eseye_description"))
    return Accepted(body)
