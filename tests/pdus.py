"""SMS-SUBMIT PDUs for tests, built without the gateway's decoder or its character tables.

The frame is laid out by hand after 3GPP TS 23.040 §9.2.2.2 (SMS-SUBMIT) and §9.2.3.24.1/.8 (the
concatenation elements with 8- and 16-bit references); the characters are packed by a third party's
GSM 03.38 / UCS-2 codec (smspdudecoder). Every PDU built here is read back by that library's own
decoder before a test uses it, so a test cannot pass on a mistake the builder and our decoder share.
"""

from __future__ import annotations

from io import StringIO

from smspdudecoder.codecs import GSM, UCS2
from smspdudecoder.fields import SMSSubmit

DESTINATION = "447000000001"  # the API MSISDN a device sends to

# The worked example that circulates with the PDU-mode AT commands: SMS-SUBMIT of "hellohello" to
# +46708251358, no SMSC part (00), validity 0xAA (4 days), 7-bit. Written out by hand, not built.
HELLOHELLO = "0011000B916407281553F80000AA0AE8329BFD4697D9EC37"


def _address(digits: str) -> bytes:
    semi_octets = digits + ("F" if len(digits) % 2 else "")
    swapped = "".join(semi_octets[i + 1] + semi_octets[i] for i in range(0, len(semi_octets), 2))
    return bytes([len(digits), 0x91]) + bytes.fromhex(swapped)


def concat_header(reference: int, total: int, sequence: int, *, wide: bool = False) -> bytes:
    """The user data header (with its length octet) for one part: IEI 00 (8-bit reference) or 08 (16-bit)."""
    if wide:
        element = bytes([0x08, 4, reference >> 8, reference & 0xFF, total, sequence])
    else:
        element = bytes([0x00, 3, reference, total, sequence])
    return bytes([len(element)]) + element


def submit(text: str, *, ucs2: bool = False, header: bytes = b"", smsc: bool = True, to: str = DESTINATION) -> str:
    """One SMS-SUBMIT as uppercase hex, with the AT-command form's SMSC length octet (00) unless smsc=False."""
    first = 0x01 | (0x40 if header else 0)  # TP-MTI SUBMIT, TP-VPF absent, TP-UDHI when a header is present
    if ucs2:
        dcs = 0x08
        user_data = header + bytes.fromhex(UCS2.encode(text))
        length = len(user_data)  # octets
    else:
        dcs = 0x00
        # 7-bit: the header fills whole septets (with fill bits) and the text follows. Packing '@'
        # (septet 0) over the header's septets leaves zero bits there, which the header then overwrites.
        header_septets = (len(header) * 8 + 6) // 7
        packed = bytes.fromhex(GSM.encode("@" * header_septets + text))
        user_data = header + packed[len(header) :]
        length = header_septets + _septets(text)  # septets, the header's included
    tpdu = bytes([first, 0x00]) + _address(to) + bytes([0x00, dcs, length]) + user_data
    _check("00" + tpdu.hex().upper(), text, header)
    return ("00" if smsc else "") + tpdu.hex().upper()


def _septets(text: str) -> int:
    return sum(2 if c not in GSM.ALPHABET else 1 for c in text)  # extension characters take an escape


def _check(pdu: str, text: str, header: bytes) -> None:
    """Read the PDU back with the third party's decoder: the frame, the header's elements, the text."""
    sms = SMSSubmit.decode(StringIO(pdu))
    if header:
        elements = sms["user_data"]["header"]["elements"]
        assert [(e["iei"], e["length"]) for e in elements] == [(header[1], header[2])], elements
        concat = elements[0]["data"]
        assert header[-3:] == bytes([concat["reference"] & 0xFF, concat["parts_count"], concat["part_number"]])
    if sms["dcs"]["encoding"] == "gsm":
        # Its user-data reader slices characters where it should slice septets (wrong after an escape),
        # so read all the septets with its codec, the header's octets zeroed. 7 spare bits read as one '@'.
        septets = (len(header) * 8 + 6) // 7
        expected = "@" * septets + text
        user_data = bytes.fromhex(pdu[-2 * len(bytes.fromhex(GSM.encode(expected))) :])
        content = GSM.decode((bytes(len(header)) + user_data[len(header) :]).hex())
        spare = (septets + _septets(text)) % 8 == 7
        assert content == expected + ("@" if spare else ""), f"the third-party codec reads {content!r}, not {expected!r}"
    else:
        content = sms["user_data"]["data"]
        assert content == text, f"the third-party decoder reads {content!r}, not {text!r}"


def long_message(text: str, reference: int, *, per_part: int, ucs2: bool = False, wide: bool = False) -> list[str]:
    """Split `text` into parts of `per_part` characters, each an SMS-SUBMIT with its concatenation header."""
    chunks = [text[i : i + per_part] for i in range(0, len(text), per_part)]
    return [submit(chunk, ucs2=ucs2, header=concat_header(reference, len(chunks), n, wide=wide)) for n, chunk in enumerate(chunks, 1)]
