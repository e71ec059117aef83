"""GSM 03.38 (3GPP TS 23.038): default 7-bit alphabet, extension table, packing, data coding.

Septets are carried here as ``bytes`` holding one septet (0x00..0x7F) per octet. That is
also how SMPP 3.4 carries data_coding 0x00 in short_message: unpacked, one septet per
octet, and the SMSC packs them for the air interface. Some SMSCs want the septets packed
already (eight septets in seven octets); :func:`pack_septets` and :func:`unpack_septets`
do that conversion.
"""

from __future__ import annotations

ESCAPE = 0x1B
"""The escape septet: the next septet is read from the extension table."""

# Index = septet value. 0x1B is the escape, never produced as a character by the encoder;
# it is a placeholder space here so that a lone trailing escape decodes to a space.
BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x20ÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)

EXTENSION_TABLE: dict[int, str] = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}
"""Basic extension table: septet after an escape -> character."""

_ENCODE: dict[str, bytes] = {
    char: bytes([code]) for code, char in enumerate(BASIC_TABLE) if code != ESCAPE
}
_ENCODE.update({char: bytes([ESCAPE, code]) for code, char in EXTENSION_TABLE.items()})

_ALPHABET = frozenset(_ENCODE)
_REPLACEMENT = "\ufffd"
# str.translate tables, so that the hot paths run in C. Encoding: each character of the
# alphabet -> its septets as code points below 0x80. Decoding without escapes: septet ->
# character, octet above 0x7F -> U+FFFD.
_TO_SEPTETS = {ord(char): septets.decode("ascii") for char, septets in _ENCODE.items()}
_FROM_SEPTETS: dict[int, str] = dict.fromkeys(range(0x80, 0x100), _REPLACEMENT)
_FROM_SEPTETS.update(enumerate(BASIC_TABLE))
_CR = 0x0D


def is_encodable(text: str) -> bool:
    """True when every character of ``text`` is in the basic or the extension table."""
    return _ALPHABET.issuperset(text)


def encode(text: str) -> bytes:
    """Encode ``text`` to unpacked septets (one per octet).

    Raises ValueError naming the first character outside the alphabet.
    """
    if not _ALPHABET.issuperset(text):
        bad = next(char for char in text if char not in _ALPHABET)
        raise ValueError(f"character {bad!r} is not in the GSM 03.38 alphabet")
    return text.translate(_TO_SEPTETS).encode("ascii")


def decode(septets: bytes) -> str:
    """Decode unpacked septets to text; never raises.

    An octet above 0x7F becomes U+FFFD. An escape followed by a septet that the extension
    table lacks shows the basic-table character (TS 23.038 6.2.1.1); escape-escape and a
    trailing escape show a space.
    """
    if ESCAPE not in septets:
        return septets.decode("latin-1").translate(_FROM_SEPTETS)
    out: list[str] = []
    i, n = 0, len(septets)
    while i < n:
        code = septets[i]
        i += 1
        if code > 0x7F:
            out.append(_REPLACEMENT)
        elif code != ESCAPE:
            out.append(BASIC_TABLE[code])
        elif i == n or septets[i] == ESCAPE:
            out.append(" ")
        else:
            nxt = septets[i]
            i += 1
            default = BASIC_TABLE[nxt] if nxt <= 0x7F else _REPLACEMENT
            out.append(EXTENSION_TABLE.get(nxt, default))
    return "".join(out)


def pack_septets(septets: bytes, *, udh: bytes = b"") -> bytes:
    """Pack septets (0x00..0x7F each) eight into seven octets, least significant bit first.

    With a ``udh`` the result is the UDH, then fill bits up to a septet boundary (TS 23.040
    9.2.3.24), then the septets. Seven spare bits in the last octet are filled with CR
    (TS 23.038 6.1.2.3.1), so the receiver does not read a trailing '@'; the result is
    never longer than the 7/8 of the septets and UDH rounded up. Unlike 6.1.2.3.1 a wanted
    final CR that ends on an octet boundary is not doubled, since that could overflow a full
    segment: unpacked without a count, such a CR is read as padding and dropped. Raises
    ValueError on an octet above 0x7F.
    """
    if any(s > 0x7F for s in septets):
        raise ValueError("a septet must be in 0x00..0x7F")
    # Zero septets in the UDH's place pack to len(udh) zero octets and zero fill bits;
    # the UDH then replaces those octets.
    septets = bytes(_udh_septets(len(udh))) + septets
    if len(septets) % 8 == 7:
        septets += bytes([_CR])
    out = bytearray()
    acc, bits = 0, 0
    for septet in septets:
        acc |= septet << bits
        bits += 7
        if bits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            bits -= 8
    if bits:
        out.append(acc)
    return udh + bytes(out[len(udh) :])


def unpack_septets(data: bytes, count: int | None = None, *, udh_octets: int = 0) -> bytes:
    """Unpack the septets from packed octets; the inverse of :func:`pack_septets`.

    ``udh_octets`` skips a UDH of that many octets and its fill bits. ``count`` is the
    number of septets to return after it (the TP-UDL on the air, less the UDH); without it,
    all whole septets are returned, less a final CR that ends on an octet boundary (taken
    as the padding :func:`pack_septets` adds). Never raises for ``count=None``; raises
    ValueError if ``count`` needs more bits than ``data`` has.
    """
    skip = _udh_septets(udh_octets)
    available = len(data) * 8 // 7
    if count is None:
        count = max(available - skip, 0)
        strip_padding = len(data) % 7 == 0
    else:
        if not 0 <= count <= available - skip:
            raise ValueError(f"{len(data)} octets do not hold {count} septets after the UDH")
        strip_padding = False
    septets = bytearray()
    acc, bits = 0, 0
    for octet in data:
        acc |= octet << bits
        bits += 8
        while bits >= 7 and len(septets) < skip + count:
            septets.append(acc & 0x7F)
            acc >>= 7
            bits -= 7
    if strip_padding and septets.endswith(bytes([_CR])):
        del septets[-1]
    return bytes(septets[skip:])


def _udh_septets(udh_octets: int) -> int:
    """Septets a UDH of ``udh_octets`` occupies, fill bits included."""
    return (udh_octets * 8 + 6) // 7


_SMPP_CODECS = {
    0x00: "gsm7",
    0x01: "ascii",
    0x02: "utf-8",
    0x03: "latin-1",
    0x04: "utf-8",
    0x05: "shift_jis",
    0x06: "iso8859-5",
    0x07: "iso8859-8",
    0x08: "utf-16-be",
    0x0A: "iso2022_jp",
    0x0D: "euc_jis_2004",
    0x0E: "euc_kr",
}
_DCS_ALPHABETS = ("gsm7", "utf-8", "utf-16-be", "latin-1")


def codec_for(data_coding: int) -> str:
    """Python codec name for an SMPP data_coding, or "gsm7" for this module's alphabet.

    Values below 0x10 are SMPP's own; above, the GSM 03.38 data coding scheme groups
    (TS 23.038 clause 4) that SMSCs pass through. Unknown values read as Latin-1.
    """
    group = data_coding >> 4
    if group == 0:
        return _SMPP_CODECS.get(data_coding, "latin-1")
    if group <= 0x7 and not data_coding & 0x20:  # general coding groups, uncompressed
        return _DCS_ALPHABETS[(data_coding >> 2) & 0x3]
    if group in (0xC, 0xD):  # message waiting indication, GSM alphabet
        return "gsm7"
    if group == 0xE:  # message waiting indication, UCS2
        return "utf-16-be"
    if group == 0xF:  # data coding / message class: bit 2 picks 8-bit data over GSM
        return "utf-8" if data_coding & 0x04 else "gsm7"
    return "latin-1"
