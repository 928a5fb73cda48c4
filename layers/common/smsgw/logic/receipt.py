"""Delivery receipts from Eseye (eseye-sms-api.md §6): forward-only, deduplicated, never lost."""

from __future__ import annotations

from typing import Any

from smsgw import models
from smsgw.adapters.store import ConditionFailed
from smsgw.deps import Deps, default_deps
from smsgw.models import Message
from smsgw.observability import count, logger

RECEIPT_MEANING = {"delivered": models.DELIVERED, "failed": models.FAILED}


def receipt_key(receipt: dict[str, Any]) -> str:
    return f"{receipt['referenceid']}|{receipt['status']}"


def _entry(deps: Deps, status: str, cause: str, receipt: dict[str, Any]) -> dict[str, Any]:
    return models.history_entry(deps.now_iso(), "receipt", status, cause, receipt=receipt)


def process_receipt(receipt: dict[str, str], deps: Deps | None = None) -> str:
    """Apply one validated receipt. Returns applied | duplicate | ignored | orphaned.

    applied: the message moved forward. ignored: kept in the history, but the message was already
    final. orphaned: no such message yet; kept on a placeholder and applied when the message is stored.
    """
    deps = deps or default_deps()
    message_id = receipt["messageid"]
    key = receipt_key(receipt)
    target = RECEIPT_MEANING.get(receipt["status"].lower())
    cause = f"receipt {receipt['status']!r} (statuscode {receipt['statuscode']!r})"
    try:
        if target is None:  # a status word we do not know: keep it, move nothing
            _note(deps, message_id, receipt, key, cause)
            count("ReceiptUnknownStatus")
            return "ignored"
        deps.store.messages.transition(
            message_id,
            target,
            _entry(deps, target, cause, receipt),
            source=models.FROM_ESEYE,
            receipt_key=key,
            sets={"last_receipt": receipt},
        )
        count("Delivered" if target == models.DELIVERED else "DeliveryFailed")
        return "applied"
    except ConditionFailed as exc:
        current: Message | None = exc.item
    if not current or not current.status:
        ttl = int(deps.clock().timestamp()) + deps.settings.orphan_receipt_retention_days * 86400
        stored = deps.store.messages.keep_orphan_receipt(message_id, {**receipt, "received_at": deps.now_iso()}, key, ttl)
        logger.info("receipt for a message not stored yet", extra={"message_id": message_id})
        return "orphaned" if stored else "duplicate"
    if key in (current.receipt_keys or []):
        return "duplicate"
    try:
        _note(deps, message_id, receipt, key, f"{cause} ignored: message already {current.status}", current.status)
    except ConditionFailed:
        return "duplicate"
    return "ignored"


def _note(deps: Deps, message_id: str, receipt: dict[str, Any], key: str, cause: str, status: str | None = None) -> Message:
    """Keep a receipt in the history without moving the status."""
    if status is None:
        current = deps.store.messages.get(message_id)
        if not current or not current.status:
            raise ConditionFailed(current)
        status = current.status
    return deps.store.messages.append_note(message_id, _entry(deps, status, cause, receipt), receipt_key=key)


def apply_orphans(message: Message, deps: Deps) -> Message:
    """Apply receipts that arrived before the message was stored."""
    for receipt in message.orphan_receipts or []:
        target = RECEIPT_MEANING.get(str(receipt.get("status", "")).lower())
        cause = f"receipt {receipt.get('status')!r} received before the message was stored"
        if target and models.can_move(message.status, target, models.FROM_ESEYE, message.status_source):
            message = deps.store.messages.transition(
                message.id,
                target,
                _entry(deps, target, cause, receipt),
                source=models.FROM_ESEYE,
                release=True,
                drop_orphan_receipts=True,
            )
        else:
            message = deps.store.messages.append_note(
                message.id, _entry(deps, str(message.status), cause + " (not applied)", receipt), drop_orphan_receipts=True
            )
    return message
