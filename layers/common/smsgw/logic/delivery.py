"""One attempt to hand a stored MT message to Eseye, shared by the send API and the retry dispatcher."""

from __future__ import annotations

import random
from typing import Any

from smsgw import models
from smsgw.adapters.eseye import EseyeUnavailable
from smsgw.adapters.store import ConditionFailed
from smsgw.deps import Deps
from smsgw.eseye_protocol import EseyeReply
from smsgw.observability import count, logger


def receipt_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/webhooks/{token}/receipt"


def eseye_fields(message: dict[str, Any], deps: Deps) -> dict[str, str]:
    """The mtsmsapi form fields for a stored message (credentials are added by the client)."""
    fields = {"destination": message["to"], "message_id": message["id"], **message["eseye_payload"]}
    tokens = deps.secrets.get().webhook_tokens
    if message.get("receipt_base") and tokens:
        fields["receipt_url"] = receipt_url(message["receipt_base"], tokens[0])
    if message.get("source"):
        fields["source"] = message["source"]
    if message.get("eseye_expiry"):
        fields["expiry"] = message["eseye_expiry"]
    return fields


def record(deps: Deps, message: dict[str, Any], target: str | None, event: str, cause: str, **extra: Any) -> dict[str, Any]:
    """Move `message` to `target` (or only note the event when target is None) and return the stored item.

    If the move is no longer allowed (a receipt or a cancel got there first), the event is still noted
    in the history, and the status stays where it is.
    """
    sets = extra.pop("sets", None)
    detail = {k: v for k, v in extra.items() if v is not None}
    at = deps.now_iso()
    status = target or message["status"]
    try:
        return deps.store.update_message(
            message["id"],
            models.history_entry(at, event, status, cause, **detail),
            status=target,
            allowed_from=models.ALLOWED_FROM[target] if target else None,
            sets=sets,
        )
    except ConditionFailed as exc:
        current = exc.item or message
        if not current.get("status"):
            raise
        note = f"{cause} (status stays {current['status']})"
        return deps.store.update_message(message["id"], models.history_entry(at, event, current["status"], note, **detail))


def backoff_seconds(attempt: int, base: int) -> int:
    delay = min(900, base * 2 ** max(attempt - 1, 0))
    return int(delay + random.uniform(0, delay * 0.1))


def give_up_or_retry(deps: Deps, message: dict[str, Any], attempt: int, exc: EseyeUnavailable) -> dict[str, Any]:
    """Eseye gave no usable answer: schedule the next attempt, or fail the message once attempts run out."""
    limit = deps.settings.send_max_attempts
    logger.warning("Eseye unavailable", extra={"attempt": attempt, "reason": exc.reason, "ambiguous": exc.ambiguous})
    if attempt >= limit:
        count("SendFailed")
        return record(
            deps,
            message,
            models.FAILED,
            "retries_exhausted",
            f"Eseye unavailable after {attempt} attempts: {exc.reason}",
            eseye=exc.as_detail(),
            sets={"attempts": attempt},
        )
    delay = backoff_seconds(attempt, deps.settings.retry_base_delay_seconds)
    updated = record(
        deps,
        message,
        None,
        "retry_scheduled",
        f"Eseye unavailable ({exc.reason}); attempt {attempt + 1} of {limit} in {delay} s",
        eseye=exc.as_detail(),
        sets={"attempts": attempt},
    )
    deps.retry_queue.schedule({"id": message["id"], "attempt": attempt + 1, "ambiguous": exc.ambiguous}, delay)
    count("SendRetried")
    return updated


def apply_send_reply(deps: Deps, message: dict[str, Any], attempt: int, reply: EseyeReply) -> dict[str, Any]:
    logger.info("Eseye answered", extra={"attempt": attempt, "eseye_kind": reply.kind, "eseye_code": reply.code})
    if reply.kind == "ok":
        count("Sent")
        return record(deps, message, models.SENT, "eseye_send", "Eseye accepted the message", eseye=reply.as_detail(), sets={"attempts": attempt})
    if reply.kind == "error":
        count("Rejected")
        return record(
            deps,
            message,
            models.REJECTED,
            "eseye_send",
            f"Eseye error {reply.code}: {reply.description or ''}".strip(),
            eseye=reply.as_detail(),
            sets={"attempts": attempt, "eseye_code": reply.code, "eseye_description": reply.description},
        )
    # An answer we cannot read: Eseye may have taken the message, so the retry must ask first.
    unreadable = EseyeUnavailable("unexpected answer", ambiguous=True, http_status=reply.http_status, raw=reply.raw)
    return give_up_or_retry(deps, message, attempt, unreadable)


def attempt_send(deps: Deps, message: dict[str, Any], attempt: int) -> dict[str, Any]:
    """Send once. Returns the stored item after the outcome is recorded. Raises ServiceUnavailable if a
    retry was needed but could not be scheduled."""
    fields = eseye_fields(message, deps)
    try:
        reply = deps.eseye.send(fields)
    except EseyeUnavailable as exc:
        return give_up_or_retry(deps, message, attempt, exc)
    return apply_send_reply(deps, message, attempt, reply)
