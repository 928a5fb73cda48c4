"""Page cursors: opaque to clients, authenticated, and bound to the query that issued them.

A cursor is `<payload>.<mac>`: the position (base64url JSON) and an HMAC-SHA256 over the kind of
listing, the query's filters and the payload, keyed with the cursor signing secret. Anything the API
did not issue for this very query (forged, edited, truncated, from another query, or from a key two
rotations old) is refused with 400 `invalid_cursor` before it reaches DynamoDB.

Rotation: the current key signs; the current and the previous versions verify, so a cursor handed out
just before a rotation still works for one more rotation period.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable
from typing import Any

from smsgw.errors import InvalidCursor

MAX_CURSOR_LENGTH = 2048


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    """The bytes of text `_b64` wrote, and only of such text: base64 decoding ignores a final character's
    spare bits, so another spelling of the same bytes is refused rather than taken as the cursor we issued."""
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(raw) != text:
        raise ValueError("not the canonical spelling")
    return raw


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def _mac(key: str, kind: str, query: dict[str, Any], payload: str) -> bytes:
    message = kind.encode() + b"\n" + _canonical(query) + b"\n" + payload.encode()
    return hmac.new(key.encode(), message, hashlib.sha256).digest()


class CursorCodec:
    """Issues and checks cursors. `signing_key` gives the current key; `verifying_keys` every key still accepted."""

    def __init__(self, signing_key: Callable[[], str], verifying_keys: Callable[[], Iterable[str]]):
        self._signing_key = signing_key
        self._verifying_keys = verifying_keys

    def issue(self, kind: str, query: dict[str, Any], position: dict[str, Any] | None) -> str | None:
        """The cursor for `position` in the listing `kind` filtered by `query`; None when there is no next page."""
        if position is None:
            return None
        payload = _b64(_canonical(position))
        return f"{payload}.{_b64(_mac(self._signing_key(), kind, query, payload))}"

    def position(self, kind: str, query: dict[str, Any], cursor: Any) -> dict[str, Any]:
        """The position a cursor holds. Raises InvalidCursor unless this API issued it for this query."""
        if not isinstance(cursor, str) or not 0 < len(cursor) <= MAX_CURSOR_LENGTH or cursor.count(".") != 1:
            raise InvalidCursor()
        payload, mac = cursor.split(".")
        try:
            presented = _unb64(mac)
        except (binascii.Error, ValueError) as exc:
            raise InvalidCursor() from exc
        # Keys are tried newest first; the previous one is read only when the current one does not match.
        if not any(hmac.compare_digest(presented, _mac(key, kind, query, payload)) for key in self._verifying_keys()):
            raise InvalidCursor()
        try:
            position = json.loads(_unb64(payload))
        except (binascii.Error, ValueError) as exc:  # only reachable with a leaked key; still not a 500
            raise InvalidCursor() from exc
        if not isinstance(position, dict):
            raise InvalidCursor()
        return position
