"""Encoding decisions for outbound text, and decoding of inbound PDUs."""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from smspdudecoder.codecs import GSM

from smsgw import encoding
from smsgw.encoding import EncodingError, analyse_data, analyse_text, decode_pdu, ucs2_hex
from tests.helpers import GSM7_BASIC_PUBLISHED, GSM7_EXTENSION_PUBLISHED, submit_pdu

# What Eseye takes as 7-bit `text` (eseye-sms-api.md: the basic alphabet, in a Latin-1 form body), derived from
# the published table rather than from the gateway's own: every basic character but the escape that has a
# Latin-1 byte. The Greek capitals (Δ, Φ, ...) have none.
SENDABLE_GSM7 = sorted(c for c in GSM7_BASIC_PUBLISHED if c != "\x1b" and ord(c) < 256)


def test_the_gsm7_tables_are_the_published_3gpp_ts_23_038_tables():
    # Given the default alphabet and its extension as published, cross-checked with a third party's codec
    assert len(GSM7_BASIC_PUBLISHED) == 128 == len(set(GSM7_BASIC_PUBLISHED))
    assert (GSM7_BASIC_PUBLISHED, GSM7_EXTENSION_PUBLISHED) == (GSM.ALPHABET, GSM.ALPHABET_EXT)
    # Then the gateway's tables are exactly those
    assert encoding.GSM7_BASIC == GSM7_BASIC_PUBLISHED
    assert encoding.GSM7_EXTENSION == GSM7_EXTENSION_PUBLISHED
    assert sorted(encoding._SENDABLE_GSM7_TEXT) == SENDABLE_GSM7


def test_plain_text_goes_as_gsm7():
    # Given ordinary ASCII text / When analysed / Then it travels as 7-bit text, counted in characters
    analysis = analyse_text("Hello World")
    assert (analysis.encoding, analysis.length, analysis.limit, analysis.fits) == ("gsm7", 11, 160, True)


def test_greek_gsm_letters_force_ucs2_because_form_encoding_is_latin1():
    # Given text with Δ, which is GSM 03.38 but has no Latin-1 byte / Then auto chooses UCS-2 and names Δ
    analysis = analyse_text("Temp Δ 3")
    assert analysis.encoding == "ucs2"
    assert analysis.unicode_characters == ["Δ"]


def test_extension_characters_force_ucs2_since_eseye_takes_only_the_basic_alphabet():
    assert analyse_text("price 5€ [x]").unicode_characters == ["€", "[", "]"]


def test_surrogate_pairs_count_as_two_units():
    analysis = analyse_text("ok 👍")
    assert (analysis.encoding, analysis.length) == ("ucs2", 5)


def test_gsm7_limit_is_160_characters():
    assert analyse_text("a" * 160).fits
    assert not analyse_text("a" * 161).fits


def test_explicit_gsm7_with_unicode_is_refused_with_the_characters():
    with pytest.raises(EncodingError) as error:
        analyse_text("hi ✓", "gsm7")
    assert error.value.details["unsupported_characters"] == ["✓"]


def test_8bit_counts_latin1_octets_and_refuses_others():
    assert analyse_text("é" * 140, "8bit").fits
    assert not analyse_text("é" * 141, "8bit").fits
    with pytest.raises(EncodingError):
        analyse_text("你", "8bit")


def test_ucs2_hex_matches_the_eseye_example():
    assert ucs2_hex("你好世界") == "4F60597D4E16754C"
    assert ucs2_hex("A") == "0041"  # the docs' "0065" example is wrong (eseye-sms-api.md §8.2)


def test_data_is_checked_against_its_data_coding():
    hex_octets, analysis = analyse_data("0a0B", "f6")
    assert (hex_octets, analysis.encoding, analysis.length, analysis.limit) == ("0A0B", "8bit", 2, 140)
    with pytest.raises(EncodingError):
        analyse_data("ABC", "4")
    with pytest.raises(EncodingError):
        analyse_data("00", "7")
    with pytest.raises(EncodingError):
        analyse_data("004100", "8")


@given(st.text(alphabet=SENDABLE_GSM7, min_size=1, max_size=300))
def test_every_sendable_gsm7_text_stays_gsm7_and_counts_characters(text):
    analysis = analyse_text(text)
    assert analysis.encoding == "gsm7"
    assert analysis.length == len(text)
    assert analysis.fits == (len(text) <= 160)
    text.encode("latin-1")  # it can travel in a Latin-1 form body


@given(st.text(min_size=1, max_size=120).filter(lambda t: any(c not in SENDABLE_GSM7 for c in t)))
def test_every_other_text_goes_ucs2_and_round_trips(text):
    analysis = analyse_text(text)
    assert analysis.encoding == "ucs2"
    hex_text = ucs2_hex(text)
    assert hex_text == hex_text.upper()
    assert bytes.fromhex(hex_text).decode("utf-16-be", errors="surrogatepass") == text
    assert analysis.length == len(hex_text) // 4
    assert set(analysis.unicode_characters) == {c for c in text if c not in SENDABLE_GSM7}


# --- PDUs -------------------------------------------------------------------------------------------------


def test_gsm7_submit_with_and_without_smsc_prefix():
    for smsc in (True, False):
        decoded = decode_pdu(submit_pdu("Status OK {temp}", smsc=smsc))
        assert (decoded.kind, decoded.address, decoded.text, decoded.smsc_present) == ("submit", "447000000001", "Status OK {temp}", smsc)


def test_ucs2_submit():
    decoded = decode_pdu(submit_pdu("温度 OK ✓", dcs=0x08))
    assert (decoded.encoding, decoded.text) == ("ucs2", "温度 OK ✓")


def test_8bit_submit_keeps_octets():
    decoded = decode_pdu(submit_pdu(dcs=0x04, octets=bytes([0, 1, 0xFE, 0xFF])))
    assert (decoded.encoding, decoded.text, decoded.data_hex) == ("8bit", None, "0001FEFF")


def test_concatenated_parts_carry_reference_total_and_sequence():
    udh = bytes([0x00, 0x03, 0x2A, 0x02, 0x01])
    decoded = decode_pdu(submit_pdu("part one ", dcs=0x08, udh=udh))
    assert decoded.concat == (0x2A, 2, 1)
    assert decoded.text == "part one "
    udh16 = bytes([0x08, 0x04, 0x01, 0x02, 0x03, 0x02])
    assert decode_pdu(submit_pdu("hello", udh=udh16)).concat == (0x0102, 3, 2)
    assert decode_pdu(submit_pdu("hello", udh=udh16)).text == "hello"


def test_known_deliver_pdu_decodes():
    decoded = decode_pdu("07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07")
    assert (decoded.kind, decoded.address, decoded.text) == ("deliver", "31641600986", "How are you?")


@pytest.mark.parametrize("junk", ["", "zz", "00", "0011", "FFFFFFFF", "0041000B916407281553F80000FF0AE8"])
def test_garbage_is_refused_with_pdu_error(junk):
    with pytest.raises(encoding.PduError):
        decode_pdu(junk)


@given(st.binary(max_size=200))
def test_decoder_never_raises_anything_but_pdu_error(raw):
    with contextlib.suppress(encoding.PduError):
        decode_pdu(raw.hex())


VALID_PDUS = [
    submit_pdu("Status OK {temp}"),
    submit_pdu("温度 OK ✓", dcs=0x08),
    submit_pdu(dcs=0x04, octets=bytes([0, 1, 0xFE, 0xFF])),
    submit_pdu("part one ", dcs=0x08, udh=bytes([0x00, 0x03, 0x2A, 0x02, 0x01])),
    submit_pdu("hello", udh=bytes([0x08, 0x04, 0x01, 0x02, 0x03, 0x02])),
    "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07",
]


@given(
    pdu=st.sampled_from(VALID_PDUS),
    edits=st.lists(st.tuples(st.integers(min_value=0, max_value=200), st.integers(min_value=0, max_value=255)), min_size=1, max_size=4),
    cut=st.integers(min_value=0, max_value=8),
)
def test_mutated_valid_pdus_decode_or_are_refused_with_pdu_error(pdu, edits, cut):
    raw = bytearray(bytes.fromhex(pdu))
    for position, value in edits:
        raw[position % len(raw)] = value
    mutated = bytes(raw[: max(1, len(raw) - cut)])
    try:
        decoded = decode_pdu(mutated.hex())
    except encoding.PduError:
        return
    assert decoded.kind in ("submit", "deliver")
    assert decoded.encoding in ("gsm7", "8bit", "ucs2")
