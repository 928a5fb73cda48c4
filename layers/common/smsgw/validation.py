"""The field rules of every request the API validates, and the one wording of each. Pure: no I/O, no DNS.

openapi/openapi.yaml documents the same rules; tests/unit/test_validation.py holds the two together
(patterns, enums, lengths and ranges).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import unicodedata
from typing import Any
from urllib.parse import urlsplit

from smsgw.errors import ValidationFailed

MSISDN_PATTERN = re.compile(r"^\+?[0-9]{8,15}$")
MSISDN_RULE = "must be an MSISDN in international format: 8 to 15 digits, optional leading +"
HEX_PATTERN = re.compile(r"^([0-9A-Fa-f]{2})+$")
CLIENT_REF_MAX = 64
COLLAPSE_KEY_MAX = 64
CALLBACK_URL_MAX = 2048
REPLY_WINDOW_MAX_SECONDS = 7 * 86400
IDEMPOTENCY_KEY_MAX = 255
NOTE_MAX = 256
HISTORY_LIMIT_MAX = 100
REPLAY_LIMIT_MAX = 1000
DIRECTIONS = ("mt", "mo")
REPLAY_FIELDS = frozenset({"since", "until", "type", "msisdn", "limit", "cursor"})
TIME_RULE = "must be an ISO 8601 time with a timezone, e.g. 2026-12-01T10:00:00Z"

# Cloud metadata and platform endpoints. Most are link-local or private already; listed so that intent is explicit.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "168.63.129.16", "192.0.0.192")
)
_NUMERIC_HOST = re.compile(r"^[0-9a-fA-Fx.]+$")


def has_control_characters(value: str, allowed: str = "") -> bool:
    """Whether `value` holds a control character (Unicode category Cc) other than those in `allowed`."""
    return any(unicodedata.category(c) == "Cc" and c not in allowed for c in value)


def is_msisdn(value: Any) -> bool:
    return isinstance(value, str) and MSISDN_PATTERN.match(value) is not None


def require_msisdn(name: str, value: Any, details: Any = None) -> str:
    """`value` if it is an MSISDN. Raises ValidationFailed naming `name` (details default to {name: value})."""
    if not is_msisdn(value):
        raise ValidationFailed(f"{name} {MSISDN_RULE}", {name: value} if details is None else details)
    return str(value)


def whole_number(value: Any, low: int, high: int) -> bool:
    """A JSON integer (not a boolean) from `low` to `high`."""
    return not isinstance(value, bool) and isinstance(value, int) and low <= value <= high


def range_rule(low: int, high: int) -> str:
    return f"must be a whole number from {low} to {high}"


def printable(value: Any, low: int, high: int) -> bool:
    """A string of `low` to `high` characters, none of them a control character."""
    return isinstance(value, str) and low <= len(value) <= high and not has_control_characters(value)


def public_address(address: str) -> bool:
    """Only public unicast addresses: no loopback, private, link-local, multicast, reserved or metadata."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast and ip not in METADATA_ADDRESSES


def _literal_address(host: str) -> str | None:
    """The IP address a host names literally (also the short and numeric IPv4 forms such as 2130706433
    or 127.1 that the C library accepts), or None for a name. Never asks DNS."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if _NUMERIC_HOST.match(host):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            return None
    return None


def callback_problem(value: Any, allow_insecure: bool = False) -> str | None:
    """What is wrong with a status_callback URL, or None. A literal non-public address is refused here;
    names are resolved (and checked again) only when a callback is delivered."""
    schemes = ("https://", "http://") if allow_insecure else ("https://",)
    if not isinstance(value, str) or not value.startswith(schemes) or len(value) > CALLBACK_URL_MAX or has_control_characters(value) or " " in value:
        return f"must be an https:// URL of at most {CALLBACK_URL_MAX} characters"
    if allow_insecure:  # the local stack calls receivers on loopback
        return None
    try:
        host = urlsplit(value).hostname or ""
    except ValueError:
        return f"must be an https:// URL of at most {CALLBACK_URL_MAX} characters"
    address = _literal_address(host)
    if address is not None and not public_address(address):
        return "must not name a private, loopback, link-local, multicast or metadata address"
    return None


def invalid(problems: dict[str, str]) -> ValidationFailed:
    """One error naming every bad field: {"fields": {name: problem}}."""
    return ValidationFailed("the request is not valid: " + "; ".join(f"{k}: {v}" for k, v in problems.items()), {"fields": problems})
