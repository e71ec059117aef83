"""Text for SMPP 3.4: GSM 03.38 / UCS-2 encoding, segmentation and concatenation.

Encoding: GSM 03.38 (data_coding 0x00, with the basic extension table) when the whole text
fits it, else UCS-2 (data_coding 0x08, UTF-16BE so characters outside the BMP travel as
surrogate pairs). In SMPP, data_coding 0x00 short_message carries GSM septets unpacked,
one per octet, and the SMSC packs them; ``packed=True`` sends them packed instead, for the
SMSCs that want that.

Segments are counted in units: septets for GSM (an extension character costs 2) and UTF-16
code units for UCS-2 (a character outside the BMP costs 2). A long text is split on
character boundaries, so an escape sequence or a surrogate pair is never cut across parts.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from smpp import gsm7


class Encoding(enum.IntEnum):
    """Alphabet of a short message; the value is the SMPP data_coding."""

    GSM7 = 0x00
    UCS2 = 0x08


class ConcatMode(enum.Enum):
    """How a long message is carried: UDH in the body, SAR TLVs, or one message_payload."""

    UDH = "udh"
    SAR = "sar"
    PAYLOAD = "payload"


@dataclass(frozen=True, slots=True)
class Part:
    """One submit_sm worth of an encoded message."""

    short_message: bytes
    data_coding: int
    esm_class: int = 0
    sar_msg_ref_num: int | None = None
    sar_total_segments: int | None = None
    sar_segment_seqnum: int | None = None
    message_payload: bytes | None = None


@dataclass(frozen=True, slots=True)
class ConcatInfo:
    """Concatenation header of one part: reference, total parts, this part's number (1-based)."""

    reference: int
    total: int
    seqnum: int


class MalformedUdhError(ValueError):
    """A user data header that cannot be parsed: lengths past the end, or a bad concat IE."""


class ReassemblyError(ValueError):
    """Parts that do not make one whole message: missing, duplicated or mismatched."""


ESM_CLASS_UDHI = 0x40
"""esm_class bit saying short_message starts with a user data header."""

MAX_PARTS = 255
"""Most parts a concatenated message can have (the total is one octet in UDH and SAR)."""

MAX_PAYLOAD_OCTETS = 0xFFFF
"""Longest message_payload TLV value."""

_UNIT_OCTETS = {Encoding.GSM7: 1, Encoding.UCS2: 2}  # unpacked octets per unit
_SINGLE = {Encoding.GSM7: 160, Encoding.UCS2: 70}
_PER_UDH_PART = {Encoding.GSM7: 153, Encoding.UCS2: 67}
_PER_PAYLOAD = {Encoding.GSM7: MAX_PAYLOAD_OCTETS, Encoding.UCS2: MAX_PAYLOAD_OCTETS // 2}
_REFERENCE_BITS = {ConcatMode.UDH: 8, ConcatMode.SAR: 16, ConcatMode.PAYLOAD: 16}
_IEI_CONCAT_8BIT = 0x00
_IEI_CONCAT_16BIT = 0x08


def gsm7_encodable(text: str) -> bool:
    """True when every character of ``text`` is in the GSM 03.38 default or extension table."""
    return gsm7.is_encodable(text)


def choose_encoding(text: str) -> Encoding:
    """GSM7 when the whole text fits the GSM 03.38 alphabet, else UCS2."""
    return Encoding.GSM7 if gsm7.is_encodable(text) else Encoding.UCS2


def text_units(text: str, encoding: Encoding) -> int:
    """Units ``text`` costs in ``encoding``: septets for GSM7 (an extension character is 2),
    UTF-16 code units for UCS2 (a character outside the BMP is 2).

    Raises ValueError for GSM7 when ``text`` does not fit the alphabet.
    """
    if encoding is Encoding.GSM7:
        return len(gsm7.encode(text))
    return len(text.encode("utf-16-be", errors="surrogatepass")) // 2


def segment_limits(encoding: Encoding, mode: ConcatMode = ConcatMode.UDH) -> tuple[int, int]:
    """(units in a single message, units per part of a long one) for ``encoding`` and ``mode``.

    GSM7 160 / 153 septets and UCS2 70 / 67 code units with a UDH; SAR needs no UDH so each
    part holds the full 160 / 70; message_payload holds up to 64 KB in one PDU (counted as
    one octet per septet, so also a safe bound when packed).
    """
    if mode is ConcatMode.UDH:
        return _SINGLE[encoding], _PER_UDH_PART[encoding]
    if mode is ConcatMode.SAR:
        return _SINGLE[encoding], _SINGLE[encoding]
    return _SINGLE[encoding], _PER_PAYLOAD[encoding]


def max_parts(mode: ConcatMode) -> int:
    """Most PDUs :func:`encode_message` produces in ``mode``: 255, or 1 for message_payload."""
    return 1 if mode is ConcatMode.PAYLOAD else MAX_PARTS


def split_text(text: str, mode: ConcatMode = ConcatMode.UDH) -> tuple[Encoding, list[str]]:
    """Choose the encoding and cut ``text`` into the chunks that become parts.

    One chunk when the text fits a single message (an empty text is one empty chunk);
    otherwise chunks filled greedily up to the per-part limit, an extension character or a
    non-BMP character kept whole. Raises ValueError for a lone surrogate.
    """
    encoding, chunks = _split(text, mode)
    if encoding is Encoding.GSM7:
        return encoding, [gsm7.decode(chunk) for chunk in chunks]
    return encoding, [chunk.decode("utf-16-be") for chunk in chunks]


def count_segments(text: str, mode: ConcatMode = ConcatMode.UDH) -> tuple[Encoding, int]:
    """(encoding, number of PDUs) that ``text`` needs in ``mode``.

    Equals ``len(encode_message(text, mode=mode))`` whenever that succeeds; a count above
    :func:`max_parts` means :func:`encode_message` will refuse the text. The default (UDH)
    count is also what the handset and the operator's billing see. Raises ValueError only
    for a lone surrogate.
    """
    encoding, chunks = _split(text, mode)
    return encoding, len(chunks)


def _split(text: str, mode: ConcatMode) -> tuple[Encoding, list[bytes]]:
    """Encoding and unpacked encoded chunks, cut as :func:`split_text` describes.

    Cuts the encoded bytes: one octet per septet or two per UTF-16 unit, stepping back one
    unit when the cut would follow an escape (the encoder emits 0x1B only as the first
    septet of a pair) or a high surrogate.
    """
    encoding, data = _encode_text(text)
    single, per_part = segment_limits(encoding, mode)
    unit = _UNIT_OCTETS[encoding]
    if len(data) <= single * unit:
        return encoding, [data]
    chunks: list[bytes] = []
    start = 0
    while start < len(data):
        end = min(start + per_part * unit, len(data))
        if end < len(data) and _ends_in_lead(data, end, encoding):
            end -= unit
        chunks.append(data[start:end])
        start = end
    return encoding, chunks


def _ends_in_lead(data: bytes, end: int, encoding: Encoding) -> bool:
    """True when ``data[:end]`` ends with an escape septet or a high surrogate."""
    if encoding is Encoding.GSM7:
        return data[end - 1] == gsm7.ESCAPE
    return 0xD8 <= data[end - 2] <= 0xDB


def _encode_text(text: str) -> tuple[Encoding, bytes]:
    """Encoding and unpacked bytes: GSM septets one per octet, else UTF-16BE."""
    if gsm7.is_encodable(text):
        return Encoding.GSM7, gsm7.encode(text)
    try:
        return Encoding.UCS2, text.encode("utf-16-be")
    except UnicodeEncodeError:
        raise ValueError("text contains a lone surrogate; it cannot be encoded") from None


def encode_message(
    text: str,
    *,
    mode: ConcatMode = ConcatMode.UDH,
    reference: int = 0,
    packed: bool = False,
) -> list[Part]:
    """Encode ``text`` into the parts to submit, in order.

    A text that fits one message is one plain part in every mode. A longer one is, per
    ``mode``: parts with a concatenation UDH (05 00 03 ref total seq) and esm_class UDHI;
    parts with the SAR fields set; or one part with the whole text in message_payload and
    an empty short_message. ``reference`` must fit the mode (8 bits for UDH, 16 for SAR).
    ``packed`` packs GSM septets (default: unpacked, one per octet, as SMPP specifies);
    a part that then ends in CR on an octet boundary loses that CR when decoded (see
    :func:`smpp.gsm7.pack_septets`).

    Raises ValueError when the reference is out of range, the text has a lone surrogate,
    or it needs more than 255 parts (more than 64 KB in message_payload mode).
    """
    _check_reference(reference, mode)
    encoding, bodies = _split(text, mode)
    if len(bodies) > max_parts(mode):
        raise ValueError(
            f"text needs {len(bodies)} {mode.value} parts in {encoding.name}; "
            f"at most {max_parts(mode)} allowed"
        )
    data_coding = int(encoding)
    if len(bodies) == 1 and len(bodies[0]) <= _SINGLE[encoding] * _UNIT_OCTETS[encoding]:
        return [Part(_pack(bodies[0], encoding, packed), data_coding)]
    if mode is ConcatMode.PAYLOAD:
        payload = _pack(bodies[0], encoding, packed)
        return [Part(b"", data_coding, message_payload=payload)]
    total = len(bodies)
    if mode is ConcatMode.SAR:
        return [
            Part(_pack(body, encoding, packed), data_coding, 0, reference, total, seq)
            for seq, body in enumerate(bodies, start=1)
        ]
    return [
        Part(
            _pack(body, encoding, packed, _udh(reference, total, seq)), data_coding, ESM_CLASS_UDHI
        )
        for seq, body in enumerate(bodies, start=1)
    ]


def encode_screen(text: str) -> Part:
    """``text`` as one plain part, never split: a USSD screen (182 GSM-7 septets unpacked,
    or 80 UCS-2 characters: 160 octets), which an SMS's 160 / 70 would cut and concatenate.

    Raises ValueError when the text needs more than the 254 octets of short_message, or has
    a lone surrogate.
    """
    encoding, body = _encode_text(text)
    if len(body) > 254:
        raise ValueError(f"{len(body)} octets do not fit one short_message (254)")
    return Part(body, int(encoding))


def _check_reference(reference: int, mode: ConcatMode) -> None:
    bits = _REFERENCE_BITS[mode]
    if not 0 <= reference < 1 << bits:
        raise ValueError(f"{mode.value} reference must be in 0..{(1 << bits) - 1}, not {reference}")


def _udh(reference: int, total: int, seqnum: int) -> bytes:
    """Concatenation UDH with an 8-bit reference: UDHL 05, IEI 00, IEDL 03, ref, total, seq."""
    return bytes([0x05, _IEI_CONCAT_8BIT, 0x03, reference, total, seqnum])


def _pack(body: bytes, encoding: Encoding, packed: bool, udh: bytes = b"") -> bytes:
    """``udh`` + ``body``, the GSM septets packed after the UDH when ``packed``."""
    if packed and encoding is Encoding.GSM7:
        return gsm7.pack_septets(body, udh=udh)
    return udh + body


class ReferenceCounter:
    """Concatenation references for one bind: 0, 1, ... up to 2**bits - 1, then 0 again.

    A reference is unique per bind until the counter wraps. ``bits`` is 8 for UDH and 16
    for SAR. Not thread-safe; meant for one asyncio session.
    """

    def __init__(self, *, bits: int = 8, start: int = 0) -> None:
        if bits not in (8, 16):
            raise ValueError(f"reference width must be 8 or 16 bits, not {bits}")
        if not 0 <= start < 1 << bits:
            raise ValueError(f"start must be in 0..{(1 << bits) - 1}, not {start}")
        self._modulus = 1 << bits
        self._next = start

    def next(self) -> int:
        """The next reference, wrapping after 2**bits - 1."""
        reference = self._next
        self._next = (reference + 1) % self._modulus
        return reference


def decode_short_message(data_coding: int, payload: bytes, *, packed: bool = False) -> str:
    """Decode a message body by its data_coding; never raises, whatever the bytes.

    0x00 GSM 03.38 septets, unpacked one per octet (``packed=True``: packed), an octet above
    0x7F becoming U+FFFD; 0x01 IA5/ASCII; 0x03 Latin-1; 0x08 UCS-2 read as UTF-16BE, an
    odd trailing octet or a lone surrogate becoming U+FFFD; 0x02 and 0x04 binary, read as
    UTF-8 with U+FFFD for what is not; 0x06 Cyrillic, 0x07 Hebrew and the Japanese and
    Korean codings by their codecs; GSM 03.38 data coding schemes above 0x0F by their
    alphabet bits; anything else as Latin-1.
    """
    codec = gsm7.codec_for(data_coding)
    if codec == "gsm7":
        return gsm7.decode(gsm7.unpack_septets(payload) if packed else payload)
    return payload.decode(codec, errors="replace")


@dataclass(frozen=True, slots=True)
class DecodedPart:
    """Text of one received PDU, its concatenation header if any, and why that was unusable."""

    text: str
    concat: ConcatInfo | None = None
    concat_error: str | None = None


def decode_part(
    *,
    data_coding: int,
    short_message: bytes,
    esm_class: int = 0,
    sar_msg_ref_num: int | None = None,
    sar_total_segments: int | None = None,
    sar_segment_seqnum: int | None = None,
    message_payload: bytes | None = None,
    packed: bool = False,
) -> DecodedPart:
    """Decode one submit_sm / deliver_sm body with its concatenation header; never raises.

    The keywords match :class:`Part`'s fields. The body is short_message, or
    message_payload when short_message is empty. With esm_class UDHI the UDH is parsed
    (:func:`parse_concat_udh`); otherwise the SAR fields, when all three are set, give the
    concat info. A malformed UDH or SAR set leaves concat None, says why in concat_error,
    and decodes the whole body as text so nothing is lost.
    """
    body = message_payload if message_payload is not None and not short_message else short_message
    if esm_class & ESM_CLASS_UDHI:
        return _decode_with_udh(data_coding, body, packed)
    text = decode_short_message(data_coding, body, packed=packed)
    sar = (sar_msg_ref_num, sar_total_segments, sar_segment_seqnum)
    if sar_msg_ref_num is None or sar_total_segments is None or sar_segment_seqnum is None:
        error = None if sar == (None, None, None) else f"incomplete SAR fields {sar}"
        return DecodedPart(text, None, error)
    try:
        info = _checked_concat(sar_msg_ref_num, sar_total_segments, sar_segment_seqnum)
    except ValueError as exc:
        return DecodedPart(text, None, str(exc))
    return DecodedPart(text, info)


def _decode_with_udh(data_coding: int, body: bytes, packed: bool) -> DecodedPart:
    try:
        info, rest = parse_concat_udh(body)
    except MalformedUdhError as exc:
        return DecodedPart(decode_short_message(data_coding, body, packed=packed), None, str(exc))
    if packed and gsm7.codec_for(data_coding) == "gsm7":
        septets = gsm7.unpack_septets(body, udh_octets=len(body) - len(rest))
        return DecodedPart(gsm7.decode(septets), info)
    return DecodedPart(decode_short_message(data_coding, rest), info)


def parse_concat_udh(short_message: bytes) -> tuple[ConcatInfo | None, bytes]:
    """Split a body that starts with a UDH (esm_class UDHI set) into (concat, body after UDH).

    Reads the first concatenation IE, 8-bit (IEI 0x00) or 16-bit (IEI 0x08) reference, and
    skips every other IE; concat is None when there is none. Raises MalformedUdhError (a
    ValueError) when the UDH or an IE runs past its end, a concat IE has the wrong length,
    its total is 0, or its seqnum is 0 or above the total: the caller decides whether to
    reject the PDU or treat the body as plain text (:func:`decode_part` does the latter).
    """
    if not short_message:
        raise MalformedUdhError("UDHI is set but short_message is empty")
    end = 1 + short_message[0]
    if end > len(short_message):
        raise MalformedUdhError(
            f"UDH length {end - 1} runs past the {len(short_message)}-octet body"
        )
    header, body = short_message[1:end], short_message[end:]
    concat: ConcatInfo | None = None
    index = 0
    while index < len(header):
        if index + 2 > len(header) or index + 2 + header[index + 1] > len(header):
            raise MalformedUdhError(f"information element at UDH offset {index} runs past its end")
        iei, data = header[index], header[index + 2 : index + 2 + header[index + 1]]
        if concat is None and iei in (_IEI_CONCAT_8BIT, _IEI_CONCAT_16BIT):
            concat = _parse_concat_ie(iei, data)
        index += 2 + len(data)
    return concat, body


def _parse_concat_ie(iei: int, data: bytes) -> ConcatInfo:
    """ConcatInfo from the data of IE 0x00 (ref, total, seq) or 0x08 (ref16, total, seq)."""
    expected = 3 if iei == _IEI_CONCAT_8BIT else 4
    if len(data) != expected:
        raise MalformedUdhError(f"concat IE {iei:#04x} has {len(data)} octets, not {expected}")
    reference = int.from_bytes(data[:-2], "big")
    total, seqnum = data[-2], data[-1]
    try:
        return _checked_concat(reference, total, seqnum)
    except ValueError as exc:
        raise MalformedUdhError(str(exc)) from None


def _checked_concat(reference: int, total: int, seqnum: int) -> ConcatInfo:
    """ConcatInfo after checking 1 <= seqnum <= total <= 255; ValueError otherwise."""
    if not 1 <= total <= MAX_PARTS:
        raise ValueError(f"concatenated message of {total} parts")
    if not 1 <= seqnum <= total:
        raise ValueError(f"part {seqnum} of {total} is out of range")
    return ConcatInfo(reference, total, seqnum)


def reassemble(parts: Sequence[tuple[ConcatInfo, str]]) -> str:
    """Join the decoded texts of one concatenated message in seqnum order.

    Raises ReassemblyError (a ValueError) unless the parts share one reference and total
    and hold each seqnum 1..total exactly once.
    """
    if not parts:
        raise ReassemblyError("no parts to reassemble")
    first = parts[0][0]
    for info, _ in parts:
        if (info.reference, info.total) != (first.reference, first.total):
            raise ReassemblyError(
                f"part {info} does not belong with reference {first.reference} "
                f"of {first.total} parts"
            )
    ordered = sorted(parts, key=lambda part: part[0].seqnum)
    seqnums = [info.seqnum for info, _ in ordered]
    if seqnums != list(range(1, first.total + 1)):
        raise ReassemblyError(f"expected parts 1..{first.total}, got {seqnums}")
    return "".join(text for _, text in ordered)
