"""Cursors are opaque and authenticated: one spelling per cursor, so no edit of one is accepted."""

import pytest

from smsgw.cursor import CursorCodec
from smsgw.errors import InvalidCursor

CODEC = CursorCodec(lambda: "key-1", lambda: ["key-1"])
QUERY = {"msisdn": "447700900123", "limit": 50}


def flip_ignored_bits(cursor: str) -> str:
    """The same MAC spelled differently: base64's last character of a 32-byte MAC carries 2 bits that
    decoding ignores, so setting them changes the text but not the bytes."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    payload, mac = cursor.split(".")
    last = alphabet.index(mac[-1])
    return f"{payload}.{mac[:-1]}{alphabet[last ^ 0b01]}"


@pytest.mark.parametrize("page", range(32))
def test_a_cursor_spelled_another_way_is_not_one_the_api_issued(page):
    # Given a cursor the API issued
    cursor = CODEC.issue("history", QUERY, {"after": f"2026-11-25T12:00:{page:02d}.000Z"})
    assert cursor is not None
    assert CODEC.position("history", QUERY, cursor)["after"].endswith(f"{page:02d}.000Z")
    # When a character is edited in a way that leaves the decoded bytes as they were
    edited = flip_ignored_bits(cursor)
    assert edited != cursor
    # Then it is refused all the same: the API accepts only the exact text it issued
    with pytest.raises(InvalidCursor):
        CODEC.position("history", QUERY, edited)
