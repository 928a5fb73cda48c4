"""The Eseye SMS API's rules, as ../shared/eseye-sms-api.md documents them: pure functions, no I/O, no state.

The simulator's server applies them; tests can check them on their own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

GSM7_BASIC = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
BASIC_SET = frozenset(GSM7_BASIC) - {"\x1b"}
MT_PARAMETERS = frozenset(
    {
        "username",
        "password",
        "destination",
        "text",
        "short_message",
        "message_id",
        "receipt_url",
        "source",
        "mode",
        "expiry",
        "data_coding",
        "pid",
        "esm",
        "Replace",
    }
)
STATUS_PARAMETERS = frozenset({"username", "password", "message_id"})
DATA_CODING_LIMITS = {"0": 160, "4": 140, "8": 140, "F6": 140}
MESSAGES = {
    502: "Index is not currently a supported method of this API.",
    503: "PUT is not currently a supported method of this API.",
    510: "API Requests from this IP Address ({}) are not allowed.",
    511: "{} is required.",
    519: "Unknown parameter: {}",
    520: "Mode '{}' is not valid",
    521: "Mode not specified",
    525: "Max message length of {} chars exceeded",
    526: "message_id must be supplied for delivery receipt",
    530: "API Requests authentication failed.",
    533: "Invalid receipt_url value supplied",
    535: "Invalid message_id value supplied",
    536: "Invalid text value supplied",
    555: "Invalid MSISDN ({}) supplied",
    570: "Destination MSISDN ({}) has no credit",
    580: "Please use only GSM 03.38 basic 7 bit characters, or specify 8 bit mode",
}
# The forms an error answer takes (§5): Error<N>: text, or XML with or without the number.
ERROR_FORMS = ("text", "xml", "xml_bare")
STATUS_DESCRIPTIONS = {
    "queued": "Message queued awaiting routing",
    "delivered": "Message delivered",
    "cancelling": "Message cancelled",
}


class EseyeError(Exception):
    def __init__(self, code: int, *args: Any):
        self.code = code
        self.text = MESSAGES[code].format(*args) if args else MESSAGES[code].replace(" ({})", "").replace("{}", "")
        super().__init__(f"{code} {self.text}")


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    ip_allowlist: tuple[str, ...] | None = None


@dataclass(frozen=True)
class AcceptedSend:
    """What an accepted mtsmsapi request asks of Eseye."""

    message_id: str | None
    destination: str
    receipt_url: str | None


def status_xml(status: str, description: str) -> str:
    return f"<statusResponse>\n<status>{status}</status>\n<description>{description}</description>\n</statusResponse>"


def render_error(error: EseyeError, form: str) -> str:
    """An error answer in one of the documented forms (§5), the same for every request type."""
    if form == "text":
        return f"Error{error.code}: {error.text}"
    if form == "xml":
        return status_xml("error", f"ERROR {error.code} – {error.text}")
    return status_xml("error", error.text)


def authenticate(form: dict[str, str], client_ip: str, credentials: Credentials) -> None:
    """§2.3: the IP allowlist (510), then the credentials (511, 530)."""
    if credentials.ip_allowlist is not None and client_ip not in credentials.ip_allowlist:
        raise EseyeError(510, client_ip)
    for name in ("username", "password"):
        if not form.get(name):
            raise EseyeError(511, name)
    if form["username"] != credentials.username or form["password"] != credentials.password:
        raise EseyeError(530)


def check_send(form: dict[str, str], client_ip: str, credentials: Credentials) -> AcceptedSend:
    """Every documented check of an mtsmsapi request (§3), in order. Raises EseyeError."""
    authenticate(form, client_ip, credentials)
    for name in form:
        if name not in MT_PARAMETERS:
            raise EseyeError(519, name)
    destination = form.get("destination", "")
    if not destination:
        raise EseyeError(511, "destination")
    if not re.fullmatch(r"[0-9]{8,15}", destination):
        raise EseyeError(555, destination)
    source = form.get("source", "")
    if source and not re.fullmatch(r"[0-9]{1,15}", source):
        raise EseyeError(555, source)
    text, short_message = form.get("text"), form.get("short_message")
    if text is None and short_message is None:
        raise EseyeError(511, "text")
    message_id = form.get("message_id")
    receipt_url = form.get("receipt_url")
    if receipt_url is not None:
        parts = urlsplit(receipt_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise EseyeError(533)
        if not message_id:
            raise EseyeError(526)
    if message_id is not None and not re.fullmatch(r"[0-9A-Za-z]{1,64}", message_id):
        raise EseyeError(535)
    if "expiry" in form and not re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", form["expiry"]):
        raise EseyeError(555)
    if text is not None:  # `text` wins over short_message (§3.1)
        _check_text(form, text)
    else:
        _check_short_message(form, short_message or "")
    if destination.endswith("0570"):
        raise EseyeError(570, destination)
    return AcceptedSend(message_id, destination, receipt_url)


def _check_text(form: dict[str, str], text: str) -> None:
    mode = form.get("mode", "7")
    if "mode" in form and mode == "":
        raise EseyeError(521)
    if mode not in ("7", "8"):
        raise EseyeError(520, mode)
    if not text:
        raise EseyeError(536)
    if mode == "7":
        if any(c not in BASIC_SET for c in text):
            raise EseyeError(580)
        if len(text) > 160:
            raise EseyeError(525, 160)
    elif len(text.encode("latin-1", errors="replace")) > 140:
        raise EseyeError(525, 140)


def _check_short_message(form: dict[str, str], short_message: str) -> None:
    coding = form.get("data_coding", "0").upper() or "0"
    if coding not in DATA_CODING_LIMITS:
        raise EseyeError(555)
    if not short_message or len(short_message) % 2 or not re.fullmatch(r"[0-9A-Fa-f]+", short_message):
        raise EseyeError(536)
    if len(short_message) // 2 > DATA_CODING_LIMITS[coding]:
        raise EseyeError(525, 70 if coding == "8" else DATA_CODING_LIMITS[coding])


def check_status_request(form: dict[str, str], client_ip: str, credentials: Credentials) -> str:
    """An mtstatusapi or mtcancelapi request (§4). Returns the message_id it asks about. Raises EseyeError."""
    authenticate(form, client_ip, credentials)
    for name in form:
        if name not in STATUS_PARAMETERS:
            raise EseyeError(519, name)
    message_id = form.get("message_id")
    if not message_id:
        raise EseyeError(511, "message_id")
    return message_id


def status_answer(status: str | None, cancel: bool) -> tuple[str | None, str]:
    """What a status or cancel request answers for a message in `status` (None: Eseye does not know it).
    Returns the message's new status (a cancel of a queued message) and the answer. Raises EseyeError(535)."""
    if status is None:
        raise EseyeError(535)
    if cancel and status == "queued":
        return "cancelling", status_xml("cancelling", "Message cancelled")
    if status == "failed":  # a message status, not a request error: it carries no documented code
        return None, status_xml("error", "Message delivery failed")
    return None, status_xml(status, STATUS_DESCRIPTIONS[status])


def gets_receipt(destination: str) -> bool:
    """Destinations ending in 0001 never get one: a message that stays `queued`."""
    return not destination.endswith("0001")


def final_status(destination: str) -> str:
    """Destinations ending in 0000 fail; every other destination is delivered."""
    return "failed" if destination.endswith("0000") else "delivered"


def receipt_request_url(receipt_url: str, message_id: str, reference_id: str, status: str) -> tuple[str, dict[str, str]]:
    """The receipt as Eseye sends it (§6.2): the fields appended to the receipt URL's query."""
    fields = {"messageid": message_id, "referenceid": reference_id, "statuscode": status, "status": status}
    separator = "&" if urlsplit(receipt_url).query else "?"
    return f"{receipt_url}{separator}{urlencode(fields)}", fields
