"""Eseye's webhooks: delivery receipts and MO messages (eseye-sms-api.md §6, §7).

Eseye signs nothing and documents neither method nor content type, so we accept the query string, a
form body and a JSON body, whichever arrives. A request we cannot use is refused with its reason and
kept whole in a quarantine record: nothing Eseye sent is lost.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from smsgw import encoding, models, validation
from smsgw.deps import Deps, default_deps
from smsgw.errors import BadRequest, Forbidden, PayloadTooLarge
from smsgw.inbound import MAX_WEBHOOK_BYTES, WebhookRequest
from smsgw.inbound import decode_text as _text
from smsgw.logic import lists, receipt, replies
from smsgw.observability import count, follow, logger

MAX_QUARANTINE_BODY = 4 * 1024  # characters of an unusable body kept: enough to see what went wrong
ESEYE_ID_PATTERN = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


def extract_fields(request: WebhookRequest) -> dict[str, str]:
    """Merge the query string, a form body and a JSON body. Later sources win; names are case-sensitive."""
    fields = dict(request.query)
    content_type = next((v for k, v in request.headers.items() if k.lower() == "content-type"), "").lower()
    body = request.body.strip()
    if body:
        if "json" in content_type or body[:1] == b"{":
            try:
                document = json.loads(_text(body))
            except ValueError:
                document = None
            if isinstance(document, dict):
                fields.update({str(k): "" if v is None else str(v) for k, v in document.items() if not isinstance(v, (dict, list))})
                return fields
        if "json" not in content_type:
            # Percent-decode to bytes first, then choose the character set, since Latin-1 and UTF-8 senders differ.
            for name, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True, encoding="latin-1"):
                fields[name] = _text(value.encode("latin-1"))
    return fields


def check_token(token: str, deps: Deps) -> None:
    """Constant-time comparison against every currently valid token (two during a rotation)."""
    valid = deps.secrets.get().webhook_tokens
    matched = False
    for candidate in valid:
        matched |= hmac.compare_digest(token.encode(), candidate.encode())
    if not matched:
        count("WebhookRefused")
        logger.warning("webhook refused: wrong token")  # never the token itself
        raise Forbidden("unknown webhook token")


def _capped(raw: dict[str, Any], body: bytes) -> dict[str, Any]:
    """The request as quarantined: the body cut to MAX_QUARANTINE_BODY (with its size and digest, so the
    whole can be recognised), and at most 50 headers and query fields of at most 256 characters each."""

    def small(values: dict[str, Any]) -> dict[str, str]:
        return {str(k)[:128]: str(v)[:256] for k, v in list(values.items())[:50]}

    return {
        **raw,
        "query": small(raw.get("query") or {}),
        "headers": small(raw.get("headers") or {}),
        "body": raw.get("body", "")[:MAX_QUARANTINE_BODY],
        "body_bytes": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "body_truncated": len(raw.get("body", "")) > MAX_QUARANTINE_BODY or len(body) > MAX_WEBHOOK_BYTES,
    }


def quarantine(request: WebhookRequest, reason: str, deps: Deps) -> str:
    """Keep an unusable request for inspection, capped in size and kept QuarantineRetentionDays, since
    anyone holding the token can make as many as the throttle lets through."""
    moment = deps.clock()
    at = models.iso(moment)
    entry_id = uuid.uuid4().hex
    deps.store.inbound.quarantine(
        at,
        entry_id,
        {
            "reason": reason[:256],
            "request": _capped(request.raw(), request.body),
            "received_at": at,
            "ttl": int(moment.timestamp()) + deps.settings.quarantine_retention_days * 86400,
        },
    )
    count("WebhookQuarantined")
    logger.warning("webhook request quarantined", extra={"reason": reason, "quarantine_id": entry_id, "kind": request.kind})
    return entry_id


def _refuse(request: WebhookRequest, reason: str, deps: Deps) -> BadRequest:
    entry_id = quarantine(request, reason, deps)
    return BadRequest(reason, {"quarantine_id": entry_id})


def _prepare(token: str, request: WebhookRequest, deps: Deps) -> dict[str, str]:
    check_token(token, deps)
    if len(request.body) > MAX_WEBHOOK_BYTES:
        quarantine(request, "body too large", deps)
        raise PayloadTooLarge(f"webhook bodies are limited to {MAX_WEBHOOK_BYTES} bytes")
    return extract_fields(request)


def receive_receipt(token: str, request: WebhookRequest, deps: Deps | None = None) -> str:
    """A delivery receipt. Returns what became of it (applied | duplicate | ignored | orphaned).
    Raises Forbidden (token), BadRequest (unusable, quarantined) or PayloadTooLarge."""
    deps = deps or default_deps()
    fields = _prepare(token, request, deps)
    missing = [name for name in ("messageid", "status") if not fields.get(name)]
    if missing:
        raise _refuse(request, f"receipt without {', '.join(missing)}", deps)
    if not ESEYE_ID_PATTERN.match(fields["messageid"]):
        raise _refuse(request, "receipt messageid is not an id this gateway issues", deps)
    if len(fields.get("status", "")) > 64 or len(fields.get("statuscode", "")) > 256 or len(fields.get("referenceid", "")) > 128:
        raise _refuse(request, "receipt field too long", deps)
    normalised = {
        "messageid": fields["messageid"].lower() if models.MESSAGE_ID_PATTERN.match(fields["messageid"].lower()) else fields["messageid"],
        "referenceid": fields.get("referenceid", ""),
        "statuscode": fields.get("statuscode", ""),
        "status": fields["status"].strip().lower(),
    }
    follow(normalised["messageid"])
    outcome = receipt.process_receipt(normalised, deps)
    logger.info("receipt", extra={"status": normalised["status"], "outcome": outcome})
    return outcome


# --- MO -------------------------------------------------------------------------------------------------
#
# A long MO arrives as parts (3GPP TS 23.040 §9.2.3.24.1/.8), each naming its sender's reference
# (8 or 16 bits), the number of parts and its own number. Parts gather in a buffer per sender,
# reference and total; the buffer closes when its message is stored, because the device reuses its
# references (256, or 65,536) and the next message with the same reference is a new one.
#
# Which arriving part is a copy, and which starts a new message, is told by Eseye's message_id of the
# part, never by its content:
#   - a part whose message_id the buffer holds, or held in the message it closed last, is a copy;
#   - any other part for a number the open buffer already holds means the reference was reused before
#     the last message was whole: what that buffer holds is published as incomplete, and a new message
#     starts with this part (so is a part without message_id: it cannot be told from a new one);
#   - a buffer older than the window (ConcatWindowHours) takes no more parts: the scheduled sweep, or
#     the next part with that reference, publishes what it holds as incomplete.
# Every step is a conditional write on the buffer, so parts arriving at once are stored once.

BUFFER_OPEN, BUFFER_CLOSING, BUFFER_CLOSED = "open", "closing", "closed"
LEGACY_BUFFER = "legacy"
_BUFFER_TRIES = 6


def _readable(text: str) -> bool:
    return bool(text) and "\ufffd" not in text and not validation.has_control_characters(text, allowed="\r\n\t")


def _derived_id(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def receive_mo(token: str, request: WebhookRequest, deps: Deps | None = None) -> str:
    """An MO message. Returns stored | duplicate | part_stored | blocked.
    Raises Forbidden (token), BadRequest (unusable, quarantined) or PayloadTooLarge."""
    deps = deps or default_deps()
    fields = _prepare(token, request, deps)
    text, binary = fields.get("text"), fields.get("binary")
    if not text and not binary:
        raise _refuse(request, "MO message without text or binary", deps)
    source = fields.get("source", "")
    if source and not re.fullmatch(r"\+?[0-9A-Za-z]{1,20}", source):
        raise _refuse(request, "MO source is not an MSISDN", deps)
    eseye_id = fields.get("message_id") or None
    if eseye_id and len(eseye_id) > 128:
        raise _refuse(request, "MO message_id too long", deps)

    decoded = None
    if binary and not (text and _readable(text)):
        try:
            decoded = encoding.decode_pdu(binary)
        except encoding.PduError as exc:
            if not text:
                raise _refuse(request, f"MO binary is not a PDU we can read: {exc}", deps) from exc
    content: dict[str, Any] = {"binary": binary.upper() if binary else None}
    if decoded is not None:
        content.update({"text": decoded.text, "encoding": decoded.encoding, "data": None if decoded.text is not None else decoded.data_hex})
        source = source or decoded.address
    else:
        content.update({"text": text, "encoding": "text"})
    message = {
        "eseye_message_id": eseye_id,
        "from": models.msisdn_digits(source) if source else None,
        "to": models.msisdn_digits(fields.get("destination", "")) or None,
        **content,
    }
    if decoded is not None and decoded.concat:
        _reference, total, sequence = decoded.concat
        if not 1 <= sequence <= total:
            raise _refuse(request, f"MO part number {sequence} is not within 1..{total}, the number of parts", deps)
        if total > 1:
            # Without Eseye's id a part is new each time it comes: content says nothing of identity.
            return _store_part(message, decoded.concat, eseye_id or uuid.uuid4().hex, deps)
    # Eseye's id makes a redelivery the same message; without one, the same text twice is two messages.
    return _store_mo(_derived_id("mo", eseye_id) if eseye_id else uuid.uuid4().hex, message, deps, parts=None)


def _store_mo(
    message_id: str,
    message: dict[str, Any],
    deps: Deps,
    parts: list[dict[str, Any]] | None,
    cause: str = "received from Eseye",
    link_reply: bool = True,
) -> str:
    from smsgw.adapters.store import ConditionFailed

    moment = deps.clock()
    at = models.iso(moment)
    sender = message.get("from")
    refusal = lists.refusal_reason(sender, deps) if sender else None
    status = models.BLOCKED if refusal else models.RECEIVED
    in_reply_to = replies.claim_command(sender, message_id, deps) if sender and not refusal and link_reply else None
    text = message.get("text")
    item = {
        "id": message_id,
        "direction": "mo",
        **message,
        "status": status,
        "length": len(text) if text is not None else len(message.get("data") or "") // 2,
        "created_at": at,
        "updated_at": at,
        "parts": parts,
        "in_reply_to": in_reply_to,
        "history": [models.history_entry(at, "received", status, refusal or cause)],
    }
    try:
        deps.store.messages.create(models.Message.from_item(item))
    except ConditionFailed:
        return "duplicate"
    count("MoBlocked" if refusal else "MoReceived")
    follow(message_id)
    logger.info("MO message stored", extra={"from": models.mask_msisdn(sender), "status": status})
    return "blocked" if refusal else "stored"


def _window(deps: Deps) -> timedelta:
    return timedelta(hours=deps.settings.concat_window_hours)


def _new_buffer(total: int, moment: datetime) -> dict[str, Any]:
    """The fields a buffer starts a message with (the repository lists open buffers by age for the sweep)."""
    return {"buffer_id": uuid.uuid4().hex, "total": total, "opened_at": models.iso(moment)}


def _held(buffer: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted((v for k, v in buffer.items() if k.startswith("part_") and isinstance(v, dict)), key=lambda p: p["sequence"])


def _is_whole(buffer: dict[str, Any]) -> bool:
    return len({p["sequence"] for p in _held(buffer)}) >= int(buffer.get("total", 0))


def _store_part(message: dict[str, Any], concat: tuple[int, int, int], part_id: str, deps: Deps) -> str:
    """Keep one part of a concatenated MO; once every part is here, store the whole message once and close the buffer.
    Raises StoreUnavailable if the buffer keeps changing under us (Eseye then delivers the part again)."""
    from smsgw.adapters.store import ConditionFailed
    from smsgw.errors import StoreUnavailable

    reference, total, sequence = concat
    buffer_key = deps.store.inbound.buffer_name(message.get("from"), reference, total)
    part = {**message, "sequence": sequence, "received_at": deps.now_iso()}
    for _ in range(_BUFFER_TRIES):
        moment = deps.clock()
        opened_after = models.iso(moment - _window(deps))
        fresh = _new_buffer(total, moment)
        ttl = int(moment.timestamp()) + deps.settings.concat_buffer_retention_days * 86400  # a token holder's leftovers go in days
        try:
            buffer = deps.store.inbound.add_part(buffer_key, sequence, part, ttl, part_id=part_id, opened_after=opened_after, new_buffer=fresh)
        except ConditionFailed as exc:
            found: dict[str, Any] | None = exc.item or deps.store.inbound.get_buffer(buffer_key)
            if found is None:
                continue  # gone meanwhile (TTL): start again
            buffer = found
            if part_id in buffer.get("closed_ids", ()):
                count("MoPartDuplicate")
                return "duplicate"
            state = buffer.get("state")
            if state is None:
                _adopt_legacy(buffer, deps)
                continue
            if state == BUFFER_CLOSED:
                try:
                    deps.store.inbound.reopen_buffer(buffer_key, buffer["buffer_id"], sequence, part, ttl, fresh)
                except ConditionFailed:
                    continue  # another part of the new message reopened it first: join that one
                return "part_stored"
            held = buffer.get(f"part_{sequence}")
            if state == BUFFER_OPEN and buffer.get("opened_at", "") >= opened_after and held and held.get("eseye_message_id") == part_id:
                count("MoPartDuplicate")
                # A copy of a part we hold. If it completed the message, an earlier delivery may have died before storing it.
                outcome = _finish_buffer(buffer, deps) if _is_whole(buffer) else None
                return outcome if outcome in ("stored", "blocked") else "duplicate"
            # Too old, left closing by a crash, or the reference reused before the last message was whole:
            # publish what the buffer holds, then take this part again.
            _finish_buffer(buffer, deps)
            continue
        if _is_whole(buffer):
            return _finish_buffer(buffer, deps) or "part_stored"
        return "part_stored"
    raise StoreUnavailable("the concatenation buffer kept changing")


def _concat_message_id(buffer_key: str, buffer_id: str) -> str:
    # A buffer from before buffers closed (LEGACY_BUFFER) stored its message under the key alone.
    return _derived_id("mo-concat", buffer_key) if buffer_id == LEGACY_BUFFER else _derived_id("mo-concat", buffer_key, buffer_id)


def _adopt_legacy(buffer: dict[str, Any], deps: Deps) -> None:
    """Give a buffer written before buffers closed the state they now keep, so it finishes like any other."""
    from smsgw.adapters.store import ConditionFailed

    parts = _held(buffer)
    opened = min((p["received_at"] for p in parts), default=deps.now_iso())
    with contextlib.suppress(ConditionFailed):  # adopted meanwhile
        deps.store.inbound.adopt_buffer(buffer["name"], {"buffer_id": LEGACY_BUFFER, "opened_at": opened, "part_count": len(parts)})


def _finish_buffer(buffer: dict[str, Any], deps: Deps) -> str | None:
    """Store what the buffer holds as one MO (marked incomplete unless every part is here), then close it.
    Safe to repeat: the MO's id comes from the buffer's, and every step is conditional. Returns the outcome
    of storing it, or None when the buffer changed meanwhile (the caller looks again)."""
    from smsgw.adapters.store import ConditionFailed

    buffer_key, buffer_id, total = buffer["name"], buffer["buffer_id"], int(buffer["total"])
    whole = _is_whole(buffer)
    if buffer.get("state") == BUFFER_OPEN and not whole:
        try:
            buffer = deps.store.inbound.freeze_buffer(buffer_key, buffer_id, int(buffer.get("part_count", 0)))
        except ConditionFailed:
            return None
    parts = _held(buffer)
    message_id = _concat_message_id(buffer_key, buffer_id)
    outcome = None
    if parts:
        texts = all(p.get("text") is not None for p in parts)
        ids = [p["eseye_message_id"] for p in parts if p.get("eseye_message_id")]
        message = {
            "eseye_message_id": ",".join(ids) or None,
            "from": parts[0].get("from"),
            "to": parts[0].get("to"),
            "encoding": parts[0].get("encoding"),
            "text": "".join(p["text"] for p in parts) if texts else None,
            "data": None if texts else "".join(p.get("data") or "" for p in parts),
            "incomplete": not whole,
        }
        received = [
            {"sequence": p["sequence"], "eseye_message_id": p.get("eseye_message_id"), "binary": p.get("binary"), "received_at": p["received_at"]}
            for p in parts
        ]
        cause = "received from Eseye"
        if not whole:
            numbers = ", ".join(str(p["sequence"]) for p in parts)
            cause = f"incomplete: parts {numbers} of {total} arrived; the rest did not come within the window or the reference was reused"
            count("MoIncomplete")
        # A message published after its window answers no command waiting now.
        fresh = buffer.get("opened_at", "") >= models.iso(deps.clock() - _window(deps))
        outcome = _store_mo(message_id, message, deps, parts=received, cause=cause, link_reply=fresh)
    closed_ids = [p["eseye_message_id"] for p in parts if p.get("eseye_message_id")]
    deps.store.inbound.close_buffer(buffer_key, buffer_id, [p["sequence"] for p in parts], closed_ids, message_id)
    return outcome


def publish_stale_buffers(deps: Deps | None = None, limit: int = 100) -> int:
    """Publish, as incomplete MOs, the buffers whose parts did not all arrive within the window (and finish any
    a crash left half closed). Returns how many MOs were stored."""
    deps = deps or default_deps()
    cutoff = models.iso(deps.clock() - _window(deps))
    published = 0
    for buffer in deps.store.inbound.buffers_opened_before(cutoff, limit):
        if buffer.get("state") not in (BUFFER_OPEN, BUFFER_CLOSING) or buffer.get("opened_at", "") >= cutoff:
            continue  # closed or reused meanwhile
        if _finish_buffer(buffer, deps) in ("stored", "blocked"):
            published += 1
    return published
