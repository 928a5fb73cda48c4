"""GET /messages/{id} (with ?refresh) and DELETE /messages/{id} (cancel)."""

from __future__ import annotations

from typing import Any

from smsgw import models
from smsgw.adapters.eseye import EseyeUnavailable
from smsgw.adapters.store import ConditionFailed
from smsgw.deps import Deps, default_deps
from smsgw.errors import Conflict, NotFound, ServiceUnavailable, UpstreamError
from smsgw.eseye_protocol import EseyeReply
from smsgw.logic import delivery, sims
from smsgw.logic.delivery import apply_eseye_status, note, record
from smsgw.models import Message
from smsgw.observability import follow

# Cancel answers that confirm a cancel. The reference lists no `cancelled` status; the Messaging API
# Activity page shows `cancelling` (eseye-sms-api.md §4.1). `sent`, `queued` and `mgmt` say the message
# is still on its way: Eseye did not cancel it.
CANCEL_CONFIRMED = frozenset({"cancelling", "cancelled"})


def load(message_id: str, deps: Deps) -> Message:
    """The stored message. Raises NotFound for a malformed or unknown id (and for receipt-only placeholders)."""
    if not models.MESSAGE_ID_PATTERN.match(message_id or ""):
        raise NotFound(f"no message with id {message_id!r}: ids are 32 lowercase hex characters")
    follow(message_id)
    item = deps.store.messages.get(message_id)
    if not item or not item.status:
        raise NotFound(f"no message with id {message_id}")
    return item


def get_message(message_id: str, refresh: bool = False, deps: Deps | None = None) -> dict[str, Any]:
    """The message, optionally after asking Eseye's status request. A refresh that cannot reach Eseye
    still returns the stored message, with `refresh` saying what went wrong."""
    deps = deps or default_deps()
    message = load(message_id, deps)
    if not refresh:
        return models.public_view(message)
    if message.direction != "mt":
        raise Conflict("refresh applies to MT messages only; Eseye's status request does not know MO messages")
    try:
        reply = deps.eseye.status(message_id)
    except EseyeUnavailable as exc:
        message = note(deps, message, "refresh", f"Eseye status request failed: {exc.reason}", eseye=exc.as_detail())
        return {**models.public_view(message), "refresh": {"ok": False, "reason": exc.reason}}
    message = apply_eseye_status(deps, message, reply, "refresh")
    outcome = {"ok": reply.kind == "status", "eseye_status": reply.status, "eseye_code": reply.code}
    return {**models.public_view(message), "refresh": {k: v for k, v in outcome.items() if v is not None}}


def cancel_message(message_id: str, deps: Deps | None = None) -> dict[str, Any]:
    """Cancel a message that is not delivered yet.

    `scheduled` or `queued`, and `pending` never at Eseye: locally. `pending` after an attempt that may have reached Eseye, or
    `sent`: through Eseye's cancel, under the attempt lease so that no retry sends meanwhile. Raises
    NotFound; Conflict when the message is final, a send attempt is under way, or Eseye's answer does not
    confirm the cancel (naming Eseye's status); UpstreamError (an Eseye error answer about a sent message)
    or ServiceUnavailable (Eseye unreachable about a sent message; nothing changed).
    """
    deps = deps or default_deps()
    message = load(message_id, deps)
    if message.direction != "mt":
        raise Conflict("only MT messages can be cancelled")
    if message.status in models.WAITING_STATUSES:  # Eseye never saw it: the gateway's cancel alone
        cancelled = sims.cancel_waiting(deps, message)
        if cancelled is not None:
            return models.public_view(cancelled)
        message = load(message_id, deps)  # it left the queue meanwhile
    if message.status == models.PENDING and not message.may_be_at_eseye:
        try:  # never at Eseye and no attempt under way: one conditional write
            return models.public_view(
                deps.store.messages.cancel_untouched(
                    message_id,
                    models.history_entry(deps.now_iso(), "cancel", models.CANCELLED, "cancelled before Eseye accepted it"),
                    deps.now_iso(),
                )
            )
        except ConditionFailed as exc:
            message = exc.item or load(message_id, deps)  # an attempt, a receipt or a cancel got there first
    if message.status == models.PENDING:
        claimed = delivery.claim(deps, message_id, delivery.new_lease_owner(), for_attempt=False)
        if claimed.after is not None:
            return models.public_view(_cancel_pending(claimed.after, deps))
        message = load(message_id, deps)
        if message.status == models.PENDING:
            raise Conflict(
                "a send attempt for this message is under way; try the cancel again in a few seconds",
                {"status": message.status, "lease_until": message.lease_until},
            )
    if message.status in models.FINAL_STATUSES:
        raise Conflict(f"message is already {message.status} and cannot be cancelled", {"status": message.status})

    try:
        reply = deps.eseye.cancel(message_id)
    except EseyeUnavailable as exc:
        note(deps, message, "cancel", f"Eseye cancel request failed: {exc.reason}", eseye=exc.as_detail())
        raise ServiceUnavailable("Eseye could not be reached to cancel the message; it is unchanged, try again", {"status": message.status}) from exc
    if reply.kind == "status" and reply.status in CANCEL_CONFIRMED:
        return models.public_view(_cancelled_by_eseye(message, reply, deps))
    message = apply_eseye_status(deps, message, reply, "cancel")
    if reply.kind == "status":
        raise _not_cancelled(reply, message)
    raise UpstreamError(
        "Eseye did not cancel the message",
        {"eseye_code": reply.code, "eseye_status": reply.status, "eseye_description": reply.description, "status": message.status},
    )


def _cancelled_by_eseye(message: Message, reply: EseyeReply, deps: Deps, release: bool = False) -> Message:
    cause = f"cancelled through Eseye (Eseye status {reply.status!r})"
    message = record(deps, message, models.CANCELLED, "cancel", cause, source=models.FROM_ESEYE, release=release, eseye=reply.as_detail())
    if message.status != models.CANCELLED:
        raise Conflict(f"message became {message.status} before the cancel took effect", {"status": message.status})
    return message


def _not_cancelled(reply: EseyeReply, message: Message) -> Conflict:
    return Conflict(
        f"Eseye did not cancel the message: Eseye reports it {reply.status}",
        {"eseye_status": reply.status, "eseye_description": reply.description, "status": message.status},
    )


def _cancel_pending(message: Message, deps: Deps) -> Message:
    """Cancel a pending message whose lease we hold. If an earlier attempt may have reached Eseye, Eseye
    is asked to cancel too; when its answer settles nothing the cancel is the gateway's inference."""
    if not message.may_be_at_eseye:
        return record(deps, message, models.CANCELLED, "cancel", "cancelled before Eseye accepted it", release=True)
    try:
        reply = deps.eseye.cancel(message.id)
    except EseyeUnavailable as exc:
        cause = f"cancelled by the gateway; an earlier attempt may have reached Eseye, whose cancel request failed ({exc.reason})"
        return record(deps, message, models.CANCELLED, "cancel", cause, release=True, eseye=exc.as_detail())
    if reply.kind == "status" and reply.status in CANCEL_CONFIRMED:
        return _cancelled_by_eseye(message, reply, deps, release=True)
    if reply.kind == "status":  # Eseye has it and did not cancel it: the message is with Eseye
        message = apply_eseye_status(deps, message, reply, "cancel", release=True)
        raise _not_cancelled(reply, message)
    if reply.kind == "error" and reply.code in delivery.UNKNOWN_MESSAGE_CODES:
        cause = f"cancelled before Eseye accepted it (Eseye does not know it: error {reply.code})"
        return record(deps, message, models.CANCELLED, "cancel", cause, release=True, sets={"may_be_at_eseye": False}, eseye=reply.as_detail())
    cause = "cancelled by the gateway; an earlier attempt may have reached Eseye, whose cancel answer settles nothing"
    return record(deps, message, models.CANCELLED, "cancel", cause, release=True, eseye=reply.as_detail())
