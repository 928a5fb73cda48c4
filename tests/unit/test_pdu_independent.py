"""The PDU decoder against PDUs it did not make: a worked example written out by hand, and PDUs built by
tests/pdus.py with a third party's GSM 03.38 / UCS-2 codec (each checked by that library's decoder)."""

from hypothesis import given, settings
from hypothesis import strategies as st
from smspdudecoder.codecs import GSM

from smsgw.encoding import decode_pdu
from tests.pdus import HELLOHELLO, concat_header, submit

# The third party's alphabet, basic and extension: not the decoder's own tables.
GSM_CHARACTERS = sorted(set(GSM.ALPHABET) - {"\x1b"} | set(GSM.ALPHABET_EXT.values()))
headers = st.one_of(
    st.none(),
    st.tuples(st.integers(0, 0xFF), st.integers(2, 255), st.booleans()),
    st.tuples(st.integers(0x100, 0xFFFF), st.integers(2, 255), st.booleans()),
)


def test_the_published_hellohello_submit_decodes():
    decoded = decode_pdu(HELLOHELLO)
    assert (decoded.kind, decoded.address, decoded.encoding, decoded.text, decoded.concat) == ("submit", "46708251358", "gsm7", "hellohello", None)


def _header(spec):
    if spec is None:
        return b"", None
    reference, total, last = spec
    sequence = total if last else 1
    return concat_header(reference, total, sequence, wide=reference > 0xFF), (reference, total, sequence)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=GSM_CHARACTERS, min_size=1, max_size=140), headers, st.booleans())
def test_7bit_parts_built_elsewhere_decode_to_their_text_and_reference(text, header_spec, smsc):
    header, concat = _header(header_spec)
    septets = sum(2 if c not in GSM.ALPHABET else 1 for c in text) + (len(header) * 8 + 6) // 7
    if septets > 160:
        return  # more than one SMS holds
    decoded = decode_pdu(submit(text, header=header, smsc=smsc))
    assert (decoded.text, decoded.concat, decoded.smsc_present) == (text, concat, smsc)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-16", exclude_categories=("Cs",)), min_size=1, max_size=60), headers)
def test_ucs2_parts_built_elsewhere_decode_to_their_text_and_reference(text, header_spec):
    header, concat = _header(header_spec)
    decoded = decode_pdu(submit(text, ucs2=True, header=header))
    assert (decoded.encoding, decoded.text, decoded.concat) == ("ucs2", text, concat)
