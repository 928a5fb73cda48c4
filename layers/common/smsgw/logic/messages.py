"""GET /messages/{id} (with ?refresh) and DELETE /messages/{id} (cancel)."""

from __future__ import annotations

from typing import Any

from smsgw import models
from smsgw.adapters.eseye import EseyeUnavailable
from smsgw.adapters.store import ConditionFailed
from smsgw.deps import Deps, default_deps
from smsgw.errors import Conflict, NotFound, ServiceUnavailable, UpstreamError
from smsgw.eseye_protocol import EseyeReply
from smsgw.logic.delivery import record
from smsgw.observability import follow


def load(message_id: str, deps: Deps) -> dict[str, Any]:
    """The stored message. Raises NotFound for a malformed or unknown id (and for receipt-only placeholders)."""
    if not models.MESSAGE_ID_PATTERN.match(message_id or ""):
        raise NotFound(f"no message with id {message_id!r}: ids are 32 lowercase hex characters")
    follow(message_id)
    item = deps.store.get_message(message_id)
    if not item or not item.get("status"):
        raise NotFound(f"no message with id {message_id}")
    return item


def apply_eseye_status(deps: Deps, message: dict[str, Any], reply: EseyeReply, event: str) -> dict[str, Any]:
    """Record what Eseye says about a message, moving it forward where that is allowed."""
    if reply.kind == "status":
        target = models.ESEYE_STATUS_MEANING.get(reply.status or "")
        cause = f"Eseye reports {reply.status!r}" + (f": {reply.description}" if reply.description else "")
        if target and models.can_move(message["status"], target):
            return record(deps, message, target, event, cause, eseye=reply.as_detail())
        return record(deps, message, None, event, cause, eseye=reply.as_detail())
    if reply.kind == "error":
        return record(deps, message, None, event, f"Eseye error {reply.code}: {reply.description or ''}".strip(), eseye=reply.as_detail())
    return record(deps, message, None, event, "Eseye gave an answer we could not read", eseye=reply.as_detail())


def get_message(message_id: str, refresh: bool = False, deps: Deps | None = None) -> dict[str, Any]:
    """The message, optionally after asking Eseye's status request. A refresh that cannot reach Eseye
    still returns the stored message, with `refresh` saying what went wrong."""
    deps = deps or default_deps()
    message = load(message_id, deps)
    if not refresh:
        return models.public_view(message)
    if message.get("direction") != "mt":
        raise Conflict("refresh applies to MT messages only; Eseye's status request does not know MO messages")
    try:
        reply = deps.eseye.status(message_id)
    except EseyeUnavailable as exc:
        message = record(deps, message, None, "refresh", f"Eseye status request failed: {exc.reason}", eseye=exc.as_detail())
        return {**models.public_view(message), "refresh": {"ok": False, "reason": exc.reason}}
    message = apply_eseye_status(deps, message, reply, "refresh")
    outcome = {"ok": reply.kind == "status", "eseye_status": reply.status, "eseye_code": reply.code}
    return {**models.public_view(message), "refresh": {k: v for k, v in outcome.items() if v is not None}}


def cancel_message(message_id: str, deps: Deps | None = None) -> dict[str, Any]:
    """Cancel a message that is not delivered yet. `pending`: locally. `sent`: through Eseye's cancel.
    Raises NotFound, Conflict (already final, or Eseye says delivered/blocked), UpstreamError (Eseye
    error answer) or ServiceUnavailable (Eseye unreachable; nothing changed)."""
    deps = deps or default_deps()
    message = load(message_id, deps)
    if message.get("direction") != "mt":
        raise Conflict("only MT messages can be cancelled")
    if message["status"] == models.PENDING:
        try:
            return models.public_view(
                deps.store.update_message(
                    message_id,
                    models.history_entry(deps.now_iso(), "cancel", models.CANCELLED, "cancelled before Eseye accepted it"),
                    status=models.CANCELLED,
                    allowed_from=(models.PENDING,),
                )
            )
        except ConditionFailed as exc:
            message = exc.item or load(message_id, deps)  # the dispatcher or a receipt moved it meanwhile
    if message["status"] in models.FINAL_STATUSES:
        raise Conflict(f"message is already {message['status']} and cannot be cancelled", {"status": message["status"]})

    try:
        reply = deps.eseye.cancel(message_id)
    except EseyeUnavailable as exc:
        record(deps, message, None, "cancel", f"Eseye cancel request failed: {exc.reason}", eseye=exc.as_detail())
        raise ServiceUnavailable(
            "Eseye could not be reached to cancel the message; it is unchanged, try again", {"status": message["status"]}
        ) from exc
    if reply.kind == "status" and reply.status in ("cancelling", "cancelled", "queued", "sent", "mgmt"):
        # Eseye took the cancel while the message was still undelivered.
        message = record(
            deps, message, models.CANCELLED, "cancel", f"cancelled through Eseye (Eseye status {reply.status!r})", eseye=reply.as_detail()
        )
        if message["status"] != models.CANCELLED:
            raise Conflict(f"message became {message['status']} before the cancel took effect", {"status": message["status"]})
        return models.public_view(message)
    message = apply_eseye_status(deps, message, reply, "cancel")
    if reply.kind == "status" and reply.status in ("delivered", "blocked"):
        raise Conflict(f"Eseye reports the message {reply.status}; it cannot be cancelled", {"status": message["status"]})
    raise UpstreamError(
        "Eseye did not cancel the message",
        {"eseye_code": reply.code, "eseye_status": reply.status, "eseye_description": reply.description, "status": message["status"]},
    )
