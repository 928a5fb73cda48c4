"""The Eseye SMS API's answers, parsed (eseye-sms-api.md §3.4, §4, §5). Pure functions, no I/O.

Be liberal in what we accept: `OK!`, `Error<N>: text`, `ERROR N – text`, `*ERROR 630 ...` and the XML
`statusResponse` (whose error form may carry the code in `description`). Anything else is `unexpected`
and keeps its raw body.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from typing import Any

# code -> documented text. None of them is worth retrying unchanged: each means the request or the account is wrong.
ERROR_CODES: dict[int, str] = {
    502: "Index is not currently a supported method of this API.",
    503: "PUT is not currently a supported method of this API.",
    510: "API Requests from this IP Address (<IPAddress>) are not allowed.",
    511: "<Parameter> is required.",
    519: "Unknown parameter: <Parameter>",
    520: "Mode '<value>' is not valid",
    521: "Mode not specified",
    525: "Max message length of X chars exceeded",
    526: "message_id must be supplied for delivery receipt",
    530: "API Requests authentication failed.",
    533: "Invalid receipt_url value supplied",
    535: "Invalid message_id value supplied",
    536: "Invalid text value supplied",
    555: "Invalid MSISDN (<MSISDN>) supplied",
    570: "Destination MSISDN (<MSISDN>) has no credit",
    580: "Please use only GSM 03.38 basic 7 bit characters, or specify 8 bit mode",
    630: "Invalid MSISDN (<MSISDN>) supplied",
}
# 555 has a second documented text (§5: "code 555 is used twice").
EXTRA_TEXTS: tuple[tuple[int, str], ...] = ((555, "Invalid Input Provided"),)
# An error body that is only the documented text, without its number (the XML form allows both).
_WILDCARD = re.compile(r"<[A-Za-z]+>|\bX\b")


def _text_pattern(text: str) -> re.Pattern[str]:
    pieces = _WILDCARD.split(text.rstrip("."))
    return re.compile(r"\s*" + r".*?".join(re.escape(piece) for piece in pieces) + r"\.?\s*", re.IGNORECASE | re.DOTALL)


_TEXT_CODES: tuple[tuple[re.Pattern[str], int], ...] = tuple((_text_pattern(text), code) for code, text in [*ERROR_CODES.items(), *EXTRA_TEXTS])


def code_for_text(text: str) -> int | None:
    """The documented code whose text this is (placeholders match anything), or None."""
    for pattern, code in _TEXT_CODES:
        if pattern.fullmatch(text):
            return code
    return None


_ERROR_PATTERN = re.compile(r"^\s*\*?\s*error\s*(\d{3})\s*[–—:-]?\s*(.*)$", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class EseyeReply:
    kind: str  # ok | status | error | unexpected
    raw: str
    http_status: int = 200
    status: str | None = None  # statusResponse/status, lowercased
    description: str | None = None
    code: int | None = None

    def as_detail(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"kind": self.kind, "http_status": self.http_status, "raw": self.raw[:2000]}
        if self.code is not None:
            detail["eseye_code"] = self.code
        if self.status:
            detail["eseye_status"] = self.status
        if self.description:
            detail["eseye_description"] = self.description
        return detail


def _error_from_text(text: str, raw: str, http_status: int) -> EseyeReply | None:
    match = _ERROR_PATTERN.match(text)
    if not match:
        return None
    return EseyeReply("error", raw, http_status, "error", match.group(2).strip() or None, int(match.group(1)))


def _parse_xml(body: str, http_status: int) -> EseyeReply:
    try:
        # Eseye's answer, not a user's; expat >= 2.4.1 refuses entity expansion bombs, and no external entities load.
        root = ElementTree.fromstring(body[:65536])  # noqa: S314
    except ElementTree.ParseError:
        # The documented error sample is malformed (<status>error</description>): read it by pattern.
        status = re.search(r"<status>\s*([^<]*?)\s*<", body)
        description = re.search(r"<description>\s*([^<]*?)\s*</description>", body)
        if not status:
            return EseyeReply("unexpected", body, http_status)
        root = None
        status_text, description_text = status.group(1), description.group(1) if description else None
    if root is not None:
        status_text = (root.findtext("status") or "").strip()
        description_text = (root.findtext("description") or "").strip() or None
        if root.tag != "statusResponse" or not status_text:
            return EseyeReply("unexpected", body, http_status)
    status_value = status_text.lower()
    if status_value == "error":
        parsed = _error_from_text(description_text or "", body, http_status)
        if parsed:
            return parsed
        return EseyeReply("error", body, http_status, "error", description_text, code_for_text(description_text or ""))
    return EseyeReply("status", body, http_status, status_value, description_text)


def parse_reply(http_status: int, body: str) -> EseyeReply:
    """Classify an Eseye HTTP answer. Never raises."""
    text = (body or "").strip()
    if text.startswith("<"):
        if text.startswith("<?xml") or "<statusResponse" in text:
            return _parse_xml(text, http_status)
        return EseyeReply("unexpected", body, http_status)  # an HTML page, most likely
    if re.match(r"^ok\b", text, re.IGNORECASE) and http_status < 400:
        return EseyeReply("ok", body, http_status)
    parsed = _error_from_text(text, body, http_status)
    if parsed:
        return parsed
    code = code_for_text(text) if text else None
    if code is not None:  # a documented error text with its number left out
        return EseyeReply("error", body, http_status, "error", text, code)
    return EseyeReply("unexpected", body, http_status)
