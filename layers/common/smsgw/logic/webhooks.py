"""Eseye's webhooks: delivery receipts and MO messages (eseye-sms-api.md §6, §7).

Eseye signs nothing and documents neither method nor content type, so we accept the query string, a
form body and a JSON body, whichever arrives. A request we cannot use is refused with its reason and
kept whole in a quarantine record: nothing Eseye sent is lost.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from smsgw import encoding, models
from smsgw.deps import Deps, default_deps
from smsgw.errors import BadRequest, Forbidden, PayloadTooLarge
from smsgw.logic import lists, receipt, replies
from smsgw.observability import count, follow, logger

MAX_WEBHOOK_BYTES = 64 * 1024
ESEYE_ID_PATTERN = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
SENSITIVE_HEADERS = frozenset({"authorization", "cookie", "x-api-key"})


@dataclass
class WebhookRequest:
    method: str
    kind: str  # receipt | mo
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    source_ip: str = ""
    fields: dict[str, str] = field(default_factory=dict)

    def raw(self) -> dict[str, Any]:
        """The request as received, minus the token and credentials, for the quarantine."""
        return {
            "method": self.method,
            "kind": self.kind,
            "query": self.query,
            "headers": {k: v for k, v in self.headers.items() if k.lower() not in SENSITIVE_HEADERS},
            "body": _text(self.body[:MAX_WEBHOOK_BYTES]),
            "source_ip": self.source_ip,
        }


def _text(raw: bytes) -> str:
    """Eseye's character set is undocumented: UTF-8 when it is valid, else Latin-1 (which never fails)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


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


def quarantine(request: WebhookRequest, reason: str, deps: Deps) -> str:
    moment = deps.clock()
    at = models.iso(moment)
    entry_id = uuid.uuid4().hex
    deps.store.put_item(
        {
            "PK": f"Q#{at[:10]}",
            "SK": f"{at}#{entry_id}",
            "reason": reason,
            "request": request.raw(),
            "received_at": at,
            "ttl": deps.store.expiry(moment.timestamp()),
        }
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


def _readable(text: str) -> bool:
    return bool(text) and "\ufffd" not in text and not any(unicodedata.category(c) == "Cc" and c not in "\r\n\t" for c in text)


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
    eseye_id = fields.get("message_id") or _derived_id(source, fields.get("destination", ""), text or "", binary or "")
    if len(eseye_id) > 128:
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
    if decoded is not None and decoded.concat and decoded.concat[1] > 1:
        return _store_part(message, decoded.concat, deps)
    return _store_mo(_derived_id("mo", eseye_id), message, deps, parts=None)


def _store_mo(message_id: str, message: dict[str, Any], deps: Deps, parts: list[dict[str, Any]] | None) -> str:
    from smsgw.adapters.store import ConditionFailed

    moment = deps.clock()
    at = models.iso(moment)
    sender = message.get("from")
    refusal = lists.refusal_reason(sender, deps) if sender else None
    status = models.BLOCKED if refusal else models.RECEIVED
    in_reply_to = replies.claim_command(sender, message_id, deps) if sender and not refusal else None
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
        "history": [models.history_entry(at, "received", status, refusal or "received from Eseye")],
        "GSI1PK": f"MSISDN#{sender}" if sender else "MSISDN#unknown",
        "GSI1SK": f"{at}#{message_id}",
        "ttl": deps.store.expiry(moment.timestamp()),
    }
    try:
        deps.store.create_message(item)
    except ConditionFailed:
        return "duplicate"
    count("MoBlocked" if refusal else "MoReceived")
    follow(message_id)
    logger.info("MO message stored", extra={"from": models.mask_msisdn(sender), "status": status})
    return "blocked" if refusal else "stored"


def _store_part(message: dict[str, Any], concat: tuple[int, int, int], deps: Deps) -> str:
    """Keep one part of a concatenated MO; once every part is here, store the whole message once."""
    reference, total, sequence = concat
    buffer_key = f"CONCAT#{message.get('from') or 'unknown'}#{reference}#{total}"
    at = deps.now_iso()
    part = {**message, "sequence": sequence, "received_at": at}
    item = deps.store.add_part(buffer_key, sequence, part, deps.store.expiry(deps.clock().timestamp()))
    parts = sorted((v for k, v in item.items() if k.startswith("part_")), key=lambda p: p["sequence"])
    if len({p["sequence"] for p in parts}) < total:
        return "part_stored"
    whole = {
        "eseye_message_id": ",".join(p["eseye_message_id"] for p in parts),
        "from": message.get("from"),
        "to": message.get("to"),
        "encoding": parts[0].get("encoding"),
        "text": "".join(p.get("text") or "" for p in parts) if all(p.get("text") is not None for p in parts) else None,
        "data": None if all(p.get("text") is not None for p in parts) else "".join(p.get("data") or "" for p in parts),
    }
    received = [
        {"sequence": p["sequence"], "eseye_message_id": p["eseye_message_id"], "binary": p.get("binary"), "received_at": p["received_at"]}
        for p in parts
    ]
    return _store_mo(_derived_id("mo-concat", buffer_key), whole, deps, parts=received)
