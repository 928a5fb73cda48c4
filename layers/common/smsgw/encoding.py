"""GSM 03.38 / UCS-2 analysis for outbound text, and 3GPP TS 23.040 PDU decoding for inbound messages.

Outbound: Eseye does not concatenate, so a message either fits one SMS in the chosen encoding or is
refused. Text in the `text` form field is form-encoded as Latin-1 (eseye-sms-api.md §8.3), so GSM
characters with no Latin-1 form (Greek capitals) cannot travel as 7-bit `text`; they force UCS-2.

Inbound: MO `binary` carries an SMS-SUBMIT (or SMS-DELIVER) TPDU, with or without the leading SMSC
information octets; both are accepted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# The GSM 03.38 default alphabet, indexed by septet value. Index 0x1B is the escape to the extension table.
GSM7_BASIC = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
GSM7_EXTENSION = {0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~", 0x3E: "]", 0x40: "|", 0x65: "€"}
_ESCAPE = 0x1B

# Characters Eseye accepts as 7-bit `text`: the basic alphabet (ERROR 580 names "basic"), minus the escape,
# minus what has no single Latin-1 byte on the wire.
_SENDABLE_GSM7_TEXT = frozenset(c for c in GSM7_BASIC if c != "\x1b" and ord(c) < 256)

GSM7_LIMIT = 160
EIGHT_BIT_LIMIT = 140
UCS2_LIMIT = 70

ENCODINGS = ("auto", "gsm7", "ucs2", "8bit")
DATA_CODINGS = {"0": 140, "4": 140, "8": 140, "F6": 140}  # octet limits per DCS (eseye-sms-api.md §3.1, §8.1)


class EncodingError(ValueError):
    """Text or data that cannot be sent as one SMS. `details` says why, for the API's 422 body."""

    def __init__(self, message: str, details: dict[str, Any]):
        super().__init__(message)
        self.details = details


@dataclass(frozen=True)
class TextAnalysis:
    """How a text will travel to Eseye, and how much of the single-SMS budget it uses."""

    encoding: str  # gsm7 | ucs2 | 8bit
    length: int  # characters (gsm7), octets (8bit) or UTF-16 code units (ucs2)
    limit: int
    unicode_characters: list[str] = field(default_factory=list)  # the characters that forced UCS-2

    @property
    def fits(self) -> bool:
        return self.length <= self.limit

    def as_dict(self) -> dict[str, Any]:
        return {
            "encoding": self.encoding,
            "length": self.length,
            "limit": self.limit,
            "unicode_characters": self.unicode_characters,
            "fits": self.fits,
        }


def _unique(chars: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(chars))


def non_gsm7_characters(text: str) -> list[str]:
    """Characters of `text` that cannot go as Eseye 7-bit `text`, in order of first appearance."""
    return _unique(c for c in text if c not in _SENDABLE_GSM7_TEXT)


def utf16_units(text: str) -> int:
    """UCS-2 length as a handset counts it: characters outside the BMP take two code units."""
    return len(text.encode("utf-16-be")) // 2


def analyse_text(text: str, encoding: str = "auto") -> TextAnalysis:
    """Choose the encoding for `text` and measure it. Raises EncodingError if the encoding cannot carry it."""
    if encoding not in ENCODINGS:
        raise EncodingError(f"encoding must be one of {', '.join(ENCODINGS)}", {"encoding": encoding})
    offending = non_gsm7_characters(text)
    if encoding == "auto":
        encoding = "ucs2" if offending else "gsm7"
    if encoding == "gsm7":
        if offending:
            raise EncodingError(
                "text has characters outside the GSM 03.38 basic alphabet; use encoding ucs2 or auto",
                {"encoding": "gsm7", "unsupported_characters": offending},
            )
        return TextAnalysis("gsm7", len(text), GSM7_LIMIT)
    if encoding == "8bit":
        not_latin1 = _unique(c for c in text if ord(c) > 0xFF)
        if not_latin1:
            raise EncodingError(
                "8bit text must be ISO-8859-1; use encoding ucs2 for other characters",
                {"encoding": "8bit", "unsupported_characters": not_latin1},
            )
        return TextAnalysis("8bit", len(text), EIGHT_BIT_LIMIT)
    return TextAnalysis("ucs2", utf16_units(text), UCS2_LIMIT, offending)


def ucs2_hex(text: str) -> str:
    """The `short_message` value for UCS-2 text: UTF-16BE, uppercase hex (eseye-sms-api.md §8.2)."""
    return text.encode("utf-16-be").hex().upper()


def normalise_hex(data: str) -> str:
    """Validate hex octets and return them uppercase. Raises EncodingError on anything else."""
    cleaned = data.strip()
    if not cleaned or len(cleaned) % 2 or any(c not in "0123456789abcdefABCDEF" for c in cleaned):
        raise EncodingError("data must be a non-empty, even-length string of hex digits", {"field": "data"})
    return cleaned.upper()


def analyse_data(data: str, data_coding: str) -> tuple[str, TextAnalysis]:
    """Check raw octets against the limit of their data coding. Returns (hex, analysis)."""
    coding = str(data_coding).upper()
    if coding not in DATA_CODINGS:
        raise EncodingError("data_coding must be one of 0, 4, 8, F6", {"data_coding": data_coding})
    hex_octets = normalise_hex(data)
    octets = len(hex_octets) // 2
    if coding == "8" and octets % 2:
        raise EncodingError("UCS-2 data (data_coding 8) must have an even number of octets", {"octets": octets})
    name = {"0": "gsm7", "4": "8bit", "8": "ucs2", "F6": "8bit"}[coding]
    return hex_octets, TextAnalysis(name, octets, DATA_CODINGS[coding])


# --- inbound PDU decoding -------------------------------------------------------------------------


class PduError(ValueError):
    """The hex is not a TPDU this decoder can read."""


@dataclass(frozen=True)
class DecodedPdu:
    kind: str  # submit | deliver
    address: str  # TP-DA of a SUBMIT, TP-OA of a DELIVER
    dcs: int
    encoding: str  # gsm7 | 8bit | ucs2
    text: str | None  # None for binary (8-bit) payloads
    data_hex: str  # user data without the header
    concat: tuple[int, int, int] | None  # (reference, total, sequence)
    smsc_present: bool


def unpack_septets(octets: bytes, count: int, skip_bits: int = 0) -> list[int]:
    """Unpack `count` 7-bit values from packed octets, starting `skip_bits` into them."""
    values = []
    for index in range(count):
        bit = skip_bits + index * 7
        byte, shift = divmod(bit, 8)
        if byte >= len(octets):
            raise PduError("user data shorter than its length says")
        value = octets[byte] >> shift
        if shift > 1:
            value |= (octets[byte + 1] if byte + 1 < len(octets) else 0) << (8 - shift)
        values.append(value & 0x7F)
    return values


def decode_gsm7_septets(septets: list[int]) -> str:
    out = []
    escaped = False
    for septet in septets:
        if escaped:
            # An unknown extension code shows as its basic character (23.038 §6.2.1.1).
            out.append(GSM7_EXTENSION.get(septet, GSM7_BASIC[septet]))
            escaped = False
        elif septet == _ESCAPE:
            escaped = True
        else:
            out.append(GSM7_BASIC[septet])
    return "".join(out)


def _alphabet(dcs: int) -> str:
    group = dcs >> 4
    if group <= 0x7:  # general data coding (0x00-0x3F) and automatic deletion (0x40-0x7F)
        if dcs & 0x20:  # compressed: not decodable here, keep as octets
            return "8bit"
        return {0: "gsm7", 1: "8bit", 2: "ucs2", 3: "8bit"}[(dcs >> 2) & 0x03]
    if group in (0xC, 0xD):
        return "gsm7"
    if group == 0xE:
        return "ucs2"
    if group == 0xF:
        return "8bit" if dcs & 0x04 else "gsm7"
    return "8bit"  # reserved groups: keep the octets


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise PduError("PDU ends early")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def octet(self) -> int:
        return self.take(1)[0]

    def rest(self) -> bytes:
        return self.take(len(self.data) - self.pos)


def _address(reader: _Reader) -> str:
    digits = reader.octet()
    type_of_address = reader.octet()
    raw = reader.take((digits + 1) // 2)
    if (type_of_address >> 4) & 0x07 == 0x05:  # alphanumeric, GSM 7-bit packed
        return decode_gsm7_septets(unpack_septets(raw, digits * 4 // 7))
    nibbles = "".join(f"{b & 0x0F:X}{b >> 4:X}" for b in raw)[:digits]
    return nibbles.replace("F", "")


def _concat_from_header(header: bytes) -> tuple[int, int, int] | None:
    pos = 0
    while pos + 2 <= len(header):
        iei, length = header[pos], header[pos + 1]
        value = header[pos + 2 : pos + 2 + length]
        if len(value) < length:
            raise PduError("user data header element overruns the header")
        if iei == 0x00 and length == 3:
            return value[0], value[1], value[2]
        if iei == 0x08 and length == 4:
            return (value[0] << 8) | value[1], value[2], value[3]
        pos += 2 + length
    return None


def _parse_tpdu(data: bytes, smsc_present: bool) -> DecodedPdu:
    reader = _Reader(data)
    first = reader.octet()
    mti = first & 0x03
    has_header = bool(first & 0x40)
    if mti == 0x01:
        kind = "submit"
        reader.octet()  # TP-MR
        address = _address(reader)
        reader.octet()  # TP-PID
        dcs = reader.octet()
        validity_format = (first >> 3) & 0x03
        reader.take({0: 0, 2: 1, 1: 7, 3: 7}[validity_format])
    elif mti == 0x00:
        kind = "deliver"
        address = _address(reader)
        reader.octet()  # TP-PID
        dcs = reader.octet()
        reader.take(7)  # TP-SCTS
    else:
        raise PduError(f"unsupported TP-MTI {mti}")
    user_data_length = reader.octet()
    user_data = reader.rest()
    encoding = _alphabet(dcs)

    header = b""
    if has_header:
        if not user_data:
            raise PduError("UDHI set but no user data")
        header_length = user_data[0]
        header = user_data[1 : 1 + header_length]
        if len(header) != header_length:
            raise PduError("user data header longer than the user data")
    concat = _concat_from_header(header) if header else None

    if encoding == "gsm7":
        if (user_data_length * 7 + 7) // 8 != len(user_data):
            raise PduError("septet count does not match the user data")
        header_septets = ((len(header) + 1) * 8 + 6) // 7 if has_header else 0
        septets = unpack_septets(user_data, user_data_length - header_septets, header_septets * 7)
        decoded = decode_gsm7_septets(septets)
        return DecodedPdu(kind, address, dcs, encoding, decoded, decoded.encode("utf-8").hex().upper(), concat, smsc_present)

    if user_data_length != len(user_data):
        raise PduError("octet count does not match the user data")
    body = user_data[1 + len(header) :] if has_header else user_data
    text: str | None = None
    if encoding == "ucs2":
        if len(body) % 2:
            raise PduError("UCS-2 user data has an odd number of octets")
        text = body.decode("utf-16-be", errors="replace")
    return DecodedPdu(kind, address, dcs, encoding, text, body.hex().upper(), concat, smsc_present)


def decode_pdu(hex_pdu: str) -> DecodedPdu:
    """Decode an SMS-SUBMIT or SMS-DELIVER PDU, with or without its SMSC prefix. Raises PduError."""
    try:
        raw = bytes.fromhex(hex_pdu.strip())
    except ValueError as exc:
        raise PduError("binary is not hex") from exc
    if not raw:
        raise PduError("binary is empty")
    attempts: list[tuple[bytes, bool]] = []
    smsc_length = raw[0]
    if 1 + smsc_length < len(raw):
        attempts.append((raw[1 + smsc_length :], True))
    attempts.append((raw, False))
    if raw[0] != 0x00 and raw[0] > 0x0C:
        attempts.reverse()  # cannot be an SMSC length octet: try the bare TPDU first
    errors = []
    for tpdu, smsc_present in attempts:
        try:
            return _parse_tpdu(tpdu, smsc_present)
        except PduError as exc:
            errors.append(str(exc))
    raise PduError("; ".join(errors))
