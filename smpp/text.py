"""Text for SMPP 3.4: GSM 03.38 / UCS-2 encoding, segmentation and concatenation.

Interface stub: the functions below are implemented by the text work item.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass


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


def encode_message(text: str, *, mode: ConcatMode = ConcatMode.UDH, reference: int = 0) -> list[Part]:
    raise NotImplementedError


def decode_short_message(data_coding: int, payload: bytes) -> str:
    raise NotImplementedError


def parse_concat_udh(short_message: bytes) -> tuple[ConcatInfo | None, bytes]:
    raise NotImplementedError


def reassemble(parts: Sequence[tuple[ConcatInfo, str]]) -> str:
    raise NotImplementedError
