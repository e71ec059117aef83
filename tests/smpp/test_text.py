"""smpp.text and smpp.gsm7: byte-level fixtures, segment boundaries, and properties."""

from __future__ import annotations

from dataclasses import asdict
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smpp import gsm7
from smpp.text import (
    ConcatInfo,
    ConcatMode,
    DecodedPart,
    Encoding,
    MalformedUdhError,
    Part,
    ReassemblyError,
    ReferenceCounter,
    choose_encoding,
    count_segments,
    decode_part,
    decode_short_message,
    encode_message,
    encode_screen,
    gsm7_encodable,
    parse_concat_udh,
    reassemble,
    segment_limits,
    split_text,
    text_units,
)

EMOJI = "😀"  # U+1F600, UTF-16BE D8 3D DE 00
SALEM = "Сәлем"  # Kazakh "hello"

# --- encoding fixtures -------------------------------------------------------------------


def test_hello_is_one_gsm_part_unpacked() -> None:
    """'Hello' is GSM7, one septet per octet, no UDH."""
    assert encode_message("Hello") == [Part(b"Hello", 0x00)]


def test_euro_is_escape_sequence() -> None:
    """'€' encodes as escape 1B then 65 from the extension table."""
    assert encode_message("€") == [Part(bytes.fromhex("1b65"), 0x00)]


def test_extension_table_bytes() -> None:
    """Every basic extension character encodes as 1B plus its code."""
    assert gsm7.encode("\f^{}\\[~]|€") == bytes.fromhex("1b0a1b141b281b291b2f1b3c1b3d1b3e1b401b65")


def test_gsm_specials_map_to_their_codes() -> None:
    """'@' is 00, '£' 01, '§' 5F, 'à' 7F: the table is the 03.38 one, not ASCII."""
    assert gsm7.encode("@£§àΔ") == bytes([0x00, 0x01, 0x5F, 0x7F, 0x10])


def test_kazakh_is_ucs2_big_endian() -> None:
    """'Сәлем' is UCS-2 big-endian with data_coding 0x08."""
    assert encode_message(SALEM) == [Part(bytes.fromhex("042104d9043b0435043c"), 0x08)]


def test_emoji_is_surrogate_pair() -> None:
    """A non-BMP character travels as a UTF-16 surrogate pair."""
    assert encode_message(EMOJI) == [Part(bytes.fromhex("d83dde00"), 0x08)]


def test_choose_encoding() -> None:
    """GSM7 only when every character fits the alphabet, extension table included."""
    assert choose_encoding("Hi {you} €5") is Encoding.GSM7
    assert gsm7_encodable("[]~|^\\\f")
    assert choose_encoding("Hi ç") is Encoding.UCS2  # only capital Ç is in 03.38
    assert choose_encoding("`") is Encoding.UCS2


def test_packed_hello() -> None:
    """Packed 'hello' is the textbook E8 32 9B FD 06."""
    assert encode_message("hello", packed=True) == [Part(bytes.fromhex("e8329bfd06"), 0x00)]


def test_packed_udh_starts_body_on_septet_boundary() -> None:
    """With a 6-octet UDH one fill bit follows, so 'a' (61) packs as C2 in octet 7."""
    first = encode_message("a" * 161, packed=True, reference=0x2A)[0]
    assert first.short_message[:7] == bytes.fromhex("0500032a0201c2")
    assert len(first.short_message) == 140


def test_lone_surrogate_is_rejected() -> None:
    """A text with a lone surrogate cannot be encoded and says so."""
    with pytest.raises(ValueError, match="lone surrogate"):
        encode_message("a\ud800")


# --- segment boundaries ------------------------------------------------------------------


def test_160_gsm_chars_is_one_part_161_is_two() -> None:
    """160 septets fit one SMS; 161 split 153 + 8 with UDH and UDHI."""
    assert encode_message("a" * 160) == [Part(b"a" * 160, 0x00)]
    parts = encode_message("a" * 161, reference=9)
    assert [p.short_message for p in parts] == [
        bytes.fromhex("050003090201") + b"a" * 153,
        bytes.fromhex("050003090202") + b"a" * 8,
    ]
    assert {p.esm_class for p in parts} == {0x40}
    assert count_segments("a" * 160) == (Encoding.GSM7, 1)
    assert count_segments("a" * 161) == (Encoding.GSM7, 2)


def test_70_ucs2_units_is_one_part_71_is_two() -> None:
    """70 UCS-2 units fit one SMS; 71 split 67 + 4."""
    assert count_segments("ж" * 70) == (Encoding.UCS2, 1)
    parts = encode_message("ж" * 71)
    assert [len(p.short_message) for p in parts] == [6 + 134, 6 + 8]
    assert count_segments("ж" * 71) == (Encoding.UCS2, 2)


def test_escape_counts_two_septets() -> None:
    """80 '€' are 160 septets, one SMS; 81 are 162, two."""
    assert count_segments("€" * 80) == (Encoding.GSM7, 1)
    assert count_segments("€" * 81) == (Encoding.GSM7, 2)


def test_escape_never_cut_at_153() -> None:
    """An escape sequence straddling septet 153 moves whole to the next part."""
    parts = encode_message("a" * 152 + "€" + "b" * 10)
    assert parts[0].short_message[6:] == b"a" * 152
    assert parts[1].short_message[6:] == bytes.fromhex("1b65") + b"b" * 10


def test_surrogate_pair_never_cut_at_67() -> None:
    """A surrogate pair straddling unit 67 moves whole to the next part."""
    parts = encode_message("ж" * 66 + EMOJI + "ж" * 5)
    assert parts[0].short_message[6:] == "ж".encode("utf-16-be") * 66
    assert parts[1].short_message[6:10] == bytes.fromhex("d83dde00")


def test_segment_limits_per_mode() -> None:
    """UDH 160/153 and 70/67; SAR the full 160/70 per part; payload one 64 KB PDU."""
    assert segment_limits(Encoding.GSM7) == (160, 153)
    assert segment_limits(Encoding.UCS2) == (70, 67)
    assert segment_limits(Encoding.GSM7, ConcatMode.SAR) == (160, 160)
    assert segment_limits(Encoding.UCS2, ConcatMode.SAR) == (70, 70)
    assert segment_limits(Encoding.GSM7, ConcatMode.PAYLOAD) == (160, 65535)


def test_sar_parts_carry_tlv_fields_and_no_udh() -> None:
    """SAR mode fills 160 septets per part and sets ref / total / seqnum fields."""
    parts = encode_message("a" * 161, mode=ConcatMode.SAR, reference=0x1234)
    assert parts == [
        Part(b"a" * 160, 0x00, 0, 0x1234, 2, 1),
        Part(b"a", 0x00, 0, 0x1234, 2, 2),
    ]


def test_payload_mode_is_one_pdu() -> None:
    """Payload mode puts the whole long text in message_payload with empty short_message."""
    assert encode_message(SALEM * 100, mode=ConcatMode.PAYLOAD) == [
        Part(b"", 0x08, message_payload=(SALEM * 100).encode("utf-16-be"))
    ]
    assert encode_message("short", mode=ConcatMode.PAYLOAD) == [Part(b"short", 0x00)]


def test_payload_mode_limit() -> None:
    """More than 64 KB in payload mode is refused."""
    assert count_segments("a" * 65535, ConcatMode.PAYLOAD) == (Encoding.GSM7, 1)
    with pytest.raises(ValueError, match="at most 1"):
        encode_message("a" * 65536, mode=ConcatMode.PAYLOAD)


def test_255_parts_allowed_256_refused() -> None:
    """A message may have 255 parts; one more is a clear ValueError."""
    assert len(encode_message("a" * 153 * 255)) == 255
    assert count_segments("a" * (153 * 255 + 1)) == (Encoding.GSM7, 256)
    with pytest.raises(ValueError, match=r"needs 256 udh parts .* at most 255"):
        encode_message("a" * (153 * 255 + 1))


@pytest.mark.parametrize(
    ("mode", "reference"), [(ConcatMode.UDH, 256), (ConcatMode.UDH, -1), (ConcatMode.SAR, 65536)]
)
def test_reference_out_of_range(mode: ConcatMode, reference: int) -> None:
    """A reference wider than the mode allows is refused."""
    with pytest.raises(ValueError, match="reference must be"):
        encode_message("x", mode=mode, reference=reference)


def test_empty_text_is_one_empty_part() -> None:
    """An empty text is a single empty GSM part."""
    assert encode_message("") == [Part(b"", 0x00)]
    assert count_segments("") == (Encoding.GSM7, 1)


# --- reference counter -------------------------------------------------------------------


def test_reference_counter_wraps_at_8_bits() -> None:
    """References run 0..255 then wrap to 0."""
    counter = ReferenceCounter(start=254)
    assert [counter.next() for _ in range(4)] == [254, 255, 0, 1]


def test_reference_counter_16_bits() -> None:
    """A 16-bit counter wraps after 65535."""
    counter = ReferenceCounter(bits=16, start=65535)
    assert [counter.next(), counter.next()] == [65535, 0]


def test_reference_counter_rejects_bad_widths() -> None:
    """Only 8 and 16 bit counters exist, and start must fit."""
    with pytest.raises(ValueError):
        ReferenceCounter(bits=12)
    with pytest.raises(ValueError):
        ReferenceCounter(start=256)


# --- decoding ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data_coding", "payload", "text"),
    [
        (0x00, b"Hello", "Hello"),
        (0x00, bytes.fromhex("1b65"), "€"),
        (0x00, bytes([0x48, 0x80, 0xFF]), "H\ufffd\ufffd"),
        (0x00, bytes.fromhex("1b41"), "A"),  # unknown extension: basic character
        (0x00, bytes.fromhex("411b"), "A "),  # trailing escape: space
        (0x00, bytes.fromhex("1b1b41"), " A"),
        (0x01, b"Hi\xe9", "Hi\ufffd"),
        (0x03, b"caf\xe9", "café"),
        (0x08, bytes.fromhex("042104d9043b0435043c"), SALEM),
        (0x08, bytes.fromhex("d83dde00"), EMOJI),
        (0x08, bytes.fromhex("004100"), "A\ufffd"),  # odd length
        (0x08, bytes.fromhex("d83d0041"), "\ufffdA"),  # lone high surrogate
        (0x04, b"ok\xff", "ok\ufffd"),
        (0x02, "ә".encode(), "ә"),
        (0x18, bytes.fromhex("0416"), "Ж"),  # GSM DCS group: UCS2
        (0xF0, b"Hi", "Hi"),  # GSM DCS class 0: default alphabet
        (0x09, b"\xe9", "é"),  # unknown: Latin-1
    ],
)
def test_decode_fixtures(data_coding: int, payload: bytes, text: str) -> None:
    """Each data_coding decodes its known bytes, with U+FFFD for what is invalid."""
    assert decode_short_message(data_coding, payload) == text


def test_decode_packed() -> None:
    """Packed GSM septets decode when asked to."""
    assert decode_short_message(0x00, bytes.fromhex("e8329bfd06"), packed=True) == "hello"


@given(st.integers(0, 255), st.binary(max_size=300), st.booleans())
def test_decode_never_raises(data_coding: int, payload: bytes, packed: bool) -> None:
    """Any data_coding and any bytes decode to some text."""
    assert isinstance(decode_short_message(data_coding, payload, packed=packed), str)


@given(st.binary(max_size=300), st.binary(max_size=12))
def test_pack_unpack_roundtrip(septets_raw: bytes, udh: bytes) -> None:
    """Packed septets unpack exactly with a count; without, a CR ending an octet is padding."""
    septets = bytes(b & 0x7F for b in septets_raw)
    packed = gsm7.pack_septets(septets, udh=udh)
    total = (len(udh) * 8 + 6) // 7 + len(septets)  # septets with the UDH and its fill
    assert packed.startswith(udh)
    assert len(packed) == (7 * total + 7) // 8
    assert gsm7.unpack_septets(packed, len(septets), udh_octets=len(udh)) == septets
    lost_cr = septets.endswith(b"\r") and total % 8 == 0
    expected = septets[:-1] if lost_cr else septets
    assert gsm7.unpack_septets(packed, udh_octets=len(udh)) == expected


# --- UDH parsing and reassembly ----------------------------------------------------------


def test_parse_8bit_concat() -> None:
    """IE 00 gives an 8-bit reference, total and seqnum, and the body after the UDH."""
    assert parse_concat_udh(bytes.fromhex("0500032a0302") + b"hi") == (ConcatInfo(42, 3, 2), b"hi")


def test_parse_16bit_concat_after_other_ie() -> None:
    """IE 08 gives a 16-bit reference; other IEs before it are skipped."""
    udh = bytes.fromhex("097001ff080412340302")
    assert parse_concat_udh(udh + b"x") == (ConcatInfo(0x1234, 3, 2), b"x")


def test_parse_udh_without_concat() -> None:
    """A UDH without a concat IE gives None and the body after the UDH."""
    assert parse_concat_udh(bytes.fromhex("0324011b") + b"x") == (None, b"x")


@pytest.mark.parametrize(
    "data",
    [
        b"",  # no UDHL
        bytes.fromhex("0a000301"),  # UDHL past the end
        bytes.fromhex("03000301"),  # IE past the UDH end
        bytes.fromhex("0400020102"),  # concat IE with 2 octets
        bytes.fromhex("050003010001"),  # total 0
        bytes.fromhex("050003010200"),  # seqnum 0
        bytes.fromhex("050003010203"),  # seqnum above total
        bytes.fromhex("0100"),  # IE header cut short
    ],
)
def test_malformed_udh_raises(data: bytes) -> None:
    """A malformed UDH raises MalformedUdhError, a ValueError."""
    with pytest.raises(MalformedUdhError):
        parse_concat_udh(data)


@given(st.binary(max_size=50))
def test_parse_udh_raises_only_malformed(data: bytes) -> None:
    """On any bytes parse_concat_udh returns or raises MalformedUdhError, nothing else."""
    try:
        info, body = parse_concat_udh(data)
    except MalformedUdhError:
        return
    assert data.endswith(body)
    assert info is None or 1 <= info.seqnum <= info.total


def test_decode_part_with_malformed_udh_keeps_text() -> None:
    """decode_part reports a malformed UDH and decodes the whole body instead."""
    decoded = decode_part(data_coding=0, short_message=b"\x0aHi", esm_class=0x40)
    assert decoded.concat is None and decoded.concat_error is not None
    assert decoded.text.endswith("Hi")


def test_decode_part_sar() -> None:
    """decode_part takes the concat info from SAR fields, and reports a bad set."""
    ok = decode_part(
        data_coding=0,
        short_message=b"x",
        sar_msg_ref_num=7,
        sar_total_segments=2,
        sar_segment_seqnum=1,
    )
    assert ok == DecodedPart("x", ConcatInfo(7, 2, 1))
    bad = decode_part(data_coding=0, short_message=b"x", sar_msg_ref_num=7, sar_total_segments=2)
    assert bad.concat is None and bad.concat_error is not None


def test_reassemble_orders_by_seqnum() -> None:
    """Parts arriving out of order are joined by seqnum."""
    parts = [(ConcatInfo(1, 3, 3), "c"), (ConcatInfo(1, 3, 1), "a"), (ConcatInfo(1, 3, 2), "b")]
    assert reassemble(parts) == "abc"


@pytest.mark.parametrize(
    "parts",
    [
        [],
        [(ConcatInfo(1, 2, 1), "a")],
        [(ConcatInfo(1, 2, 1), "a"), (ConcatInfo(1, 2, 1), "a")],
        [(ConcatInfo(1, 2, 1), "a"), (ConcatInfo(2, 2, 2), "b")],
        [(ConcatInfo(1, 2, 1), "a"), (ConcatInfo(1, 3, 2), "b")],
    ],
)
def test_reassemble_rejects_incomplete(parts: list[tuple[ConcatInfo, str]]) -> None:
    """Missing, duplicate or foreign parts raise ReassemblyError."""
    with pytest.raises(ReassemblyError):
        reassemble(parts)


# --- properties --------------------------------------------------------------------------

GSM_CHARS = gsm7.BASIC_TABLE.replace(" ", "") + " " + "".join(gsm7.EXTENSION_TABLE.values())
MIXED_CHARS = st.one_of(st.sampled_from(GSM_CHARS), st.sampled_from("€{" + EMOJI + "жə"))


def _sized_text(alphabet: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Texts of 0..700 characters, long ones as likely as short (plain st.text stays short)."""
    return st.integers(0, 700).flatmap(lambda n: st.text(alphabet, min_size=n, max_size=n))


# A filler run that ends near a cut (67, 70, 153, 160 units), then a two-unit character.
near_a_cut = st.builds(
    lambda fill, run, special, tail: fill * run + special + tail,
    st.sampled_from(["a", "ж"]),
    st.integers(60, 165),
    st.sampled_from(["€", "\\", EMOJI, "ж", "a"]),
    st.text(max_size=20),
)
any_text = st.one_of(
    st.text(max_size=50),
    _sized_text(st.characters(exclude_categories=["Cs"])),  # valid text: no lone surrogates
    _sized_text(st.sampled_from(GSM_CHARS)),
    _sized_text(MIXED_CHARS),
    near_a_cut,
)


def _units(text: str, encoding: int) -> int:
    """Units a decoded part's text occupies in its encoding, measured from the bytes."""
    if encoding == Encoding.UCS2:
        return len(text.encode("utf-16-be")) // 2
    return len(gsm7.encode(text))


def _expected_texts(text: str, mode: ConcatMode, packed: bool) -> list[str]:
    """The chunk each part decodes to: its slice of text, less a CR that packing loses."""
    encoding, chunks = split_text(text, mode)
    if not packed or encoding is not Encoding.GSM7:
        return chunks
    fill = 7 if len(chunks) > 1 and mode is ConcatMode.UDH else 0  # 6-octet UDH + 1 bit
    return [
        chunk[:-1] if chunk.endswith("\r") and (fill + len(gsm7.encode(chunk))) % 8 == 0 else chunk
        for chunk in chunks
    ]


@pytest.mark.parametrize("mode", list(ConcatMode))
@settings(max_examples=150, deadline=None)
@given(text=any_text, reference=st.integers(0, 255), packed=st.booleans())
def test_any_text_splits_within_limits_and_reassembles(
    mode: ConcatMode, text: str, reference: int, packed: bool
) -> None:
    """Parts stay within the limits, match count_segments, and decode back to the text."""
    parts = encode_message(text, mode=mode, reference=reference, packed=packed)
    encoding, count = count_segments(text, mode)
    assert len(parts) == count
    assert {p.data_coding for p in parts} == {int(encoding)}
    octets = 140 if packed or encoding is Encoding.UCS2 else 160
    assert all(len(p.short_message) <= octets for p in parts)
    decoded = [decode_part(**asdict(part), packed=packed) for part in parts]
    single, per_part = segment_limits(encoding, mode)
    limit = single if text_units(text, encoding) <= single else per_part
    assert all(_units(d.text, encoding) <= limit for d in decoded)
    _, chunks = split_text(text, mode)
    assert all(text_units(a + b[0], encoding) > per_part for a, b in pairwise(chunks))  # greedy
    expected_texts = _expected_texts(text, mode, packed)
    assert [d.text for d in decoded] == expected_texts
    if len(parts) == 1:
        assert decoded[0].concat is None and decoded[0].concat_error is None
        return
    infos = [ConcatInfo(reference, count, seq) for seq in range(1, count + 1)]
    assert [d.concat for d in decoded] == infos
    joined = reassemble([(info, d.text) for info, d in zip(infos, decoded, strict=True)])
    assert joined == "".join(expected_texts)
    if not packed:
        assert joined == text


@given(
    st.one_of(
        st.text(alphabet="SMART 0123456789*#:.,\n", max_size=182),
        st.text(alphabet="Сәлем SMART *555# қосылу", max_size=80),
    )
)
def test_encode_screen_is_one_plain_part(text: str) -> None:
    """A USSD screen (182 GSM-7 septets, 80 UCS-2 characters) is one part: no concatenation
    header, the whole text, decoded back as it was."""
    part = encode_screen(text)
    assert part.esm_class == 0 and part.message_payload is None
    assert decode_short_message(part.data_coding, part.short_message) == text
    assert part.data_coding == int(choose_encoding(text))


def test_encode_screen_refuses_more_than_short_message_holds() -> None:
    with pytest.raises(ValueError, match="254"):
        encode_screen("ж" * 128)
