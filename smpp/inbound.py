"""Inbound deliver_sm: classification into receipt / MO message / USSD indication, text
decoding, and reassembly of concatenated MO messages (UDH or SAR TLVs).

Pure apart from logging: the session feeds PDUs in with an explicit ``now`` and gets
events back, each with the acknowledgement tokens (the deliver_sm sequence numbers) that
may be answered once the application has handled it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import structlog

from smpp import text as smstext
from smpp.constants import ESM_CLASS_TYPE_MASK, ESM_CLASS_UDHI, RECEIPT_TYPES, MessageState, Tag
from smpp.pdu import ShortMessage, tlv_int
from smpp.receipts import IdFormat, IdSide, ReceiptFields, normalise_message_id, receipt_fields

log = structlog.get_logger("smpp.inbound")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    """A delivery receipt; ``message_id`` is normalised to match :class:`~smpp.Accepted`."""

    message_id: str
    state: MessageState | None
    fields: ReceiptFields
    source_addr: str
    destination_addr: str
    pdu: ShortMessage = field(repr=False)


@dataclass(frozen=True, slots=True)
class MoMessage:
    """A mobile-originated message, reassembled if it came in parts.

    ``complete`` is False when the reassembly timed out or the buffer overflowed and the
    message is handed over with the parts that did arrive (``missing`` lists the others).
    """

    source_addr: str
    destination_addr: str
    text: str
    data_coding: int
    parts: int = 1
    complete: bool = True
    missing: tuple[int, ...] = ()
    pdu: ShortMessage | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class UssdIndication:
    """A deliver_sm carrying ``ussd_service_op`` (a USSD indication or response)."""

    source_addr: str
    destination_addr: str
    text: str
    service_op: int
    session_info: bytes | None
    pdu: ShortMessage = field(repr=False)


InboundEvent = DeliveryReceipt | MoMessage | UssdIndication


def payload_of(sm: ShortMessage) -> bytes:
    """The user data: short_message, or message_payload when short_message is empty."""
    if not sm.short_message and Tag.MESSAGE_PAYLOAD in sm.tlvs:
        return sm.tlvs[Tag.MESSAGE_PAYLOAD]
    return sm.short_message


def decode_text(data_coding: int, payload: bytes) -> str:
    """Text of a payload by data_coding; never raises (falls back to UCS-2 / latin-1
    with replacement characters for an encoding the text module rejects)."""
    try:
        return smstext.decode_short_message(data_coding, payload)
    except Exception as exc:  # the text module's contract allows ValueError; be safe
        log.warning("text decode fell back", data_coding=data_coding, error=repr(exc))
        if data_coding == 0x08:
            return payload.decode("utf-16-be", errors="replace")
        return payload.decode("latin-1")


def is_receipt(sm: ShortMessage) -> bool:
    """esm_class says receipt/acknowledgement, or a receipted_message_id TLV is present."""
    return (sm.esm_class & ESM_CLASS_TYPE_MASK) in RECEIPT_TYPES or (
        Tag.RECEIPTED_MESSAGE_ID in sm.tlvs
    )


def to_receipt(sm: ShortMessage, id_format: IdFormat) -> DeliveryReceipt:
    """Parse a receipt (text decoded as latin-1: receipt texts are ASCII by convention)."""
    fields = receipt_fields(payload_of(sm).decode("latin-1"), sm.tlvs)
    return DeliveryReceipt(
        message_id=normalise_message_id(fields.raw_message_id, id_format, IdSide.RECEIPT),
        state=fields.state,
        fields=fields,
        source_addr=sm.source_addr,
        destination_addr=sm.destination_addr,
        pdu=sm,
    )


def to_ussd(sm: ShortMessage) -> UssdIndication:
    """A USSD indication (``ussd_service_op`` present)."""
    return UssdIndication(
        source_addr=sm.source_addr,
        destination_addr=sm.destination_addr,
        text=decode_text(sm.data_coding, payload_of(sm)),
        service_op=tlv_int(sm.tlvs[Tag.USSD_SERVICE_OP]),
        session_info=sm.tlvs.get(Tag.ITS_SESSION_INFO),
        pdu=sm,
    )


def concat_info(sm: ShortMessage) -> tuple[smstext.ConcatInfo | None, bytes]:
    """Concatenation header (UDH when esm_class has UDHI, else SAR TLVs) and the body
    without the UDH. A header that does not parse leaves the message whole."""
    payload = payload_of(sm)
    if sm.esm_class & ESM_CLASS_UDHI and payload:
        try:
            return smstext.parse_concat_udh(payload)
        except Exception as exc:
            log.warning("UDH did not parse; treated as a single part", error=repr(exc))
            return None, payload[1 + payload[0] :]
    tlvs = sm.tlvs
    if Tag.SAR_MSG_REF_NUM in tlvs and Tag.SAR_TOTAL_SEGMENTS in tlvs:
        info = smstext.ConcatInfo(
            reference=tlv_int(tlvs[Tag.SAR_MSG_REF_NUM]),
            total=tlv_int(tlvs[Tag.SAR_TOTAL_SEGMENTS]),
            seqnum=tlv_int(tlvs.get(Tag.SAR_SEGMENT_SEQNUM, b"\x01")),
        )
        return info, payload
    return None, payload


def part_bytes(sm: ShortMessage) -> int:
    """What a buffered part costs, as received: its short_message and TLV values (the
    user data, whether in short_message or message_payload, and anything a vendor adds)."""
    return len(sm.short_message) + sum(len(value) for value in sm.tlvs.values())


@dataclass(slots=True)
class _Group(Generic[T]):
    first: ShortMessage
    total: int
    started: float
    texts: dict[int, str] = field(default_factory=dict)
    tokens: list[T] = field(default_factory=list)
    size: int = 0
    """Bytes of every part fed to this group (:func:`part_bytes`), repeats included."""


@dataclass(frozen=True, slots=True)
class Ready(Generic[T]):
    """An event ready for the application, and the tokens to acknowledge after it."""

    event: InboundEvent
    tokens: tuple[T, ...]


class Reassembler(Generic[T]):
    """Buffers parts of concatenated MO messages, bounded in groups, parts, bytes and age.

    ``T`` is whatever the caller needs to acknowledge a part later (its sequence
    number). No part is acknowledged before the whole message has been handled, so a
    crash mid-way makes the SMSC deliver the parts again rather than lose them.

    Bounds, held after every :meth:`feed`: at most ``max_groups`` messages, ``max_parts``
    parts (every deliver_sm held counts, a repeated part too: each waits for its
    deliver_sm_resp) and ``max_bytes`` of them as received (:func:`part_bytes`); a group
    whose first part is ``timeout`` old is handed over at the next feed or
    :meth:`expire`. Over a bound, the oldest groups are handed over incomplete. What a
    group claims (up to 255 parts) costs nothing until the parts arrive.
    """

    def __init__(
        self,
        *,
        timeout: float = 60.0,
        max_groups: int = 1000,
        max_parts: int = 10_000,
        max_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self.timeout = timeout
        self.max_groups = max_groups
        self.max_parts = max_parts
        self.max_bytes = max_bytes
        self.buffered_parts = 0
        self.buffered_bytes = 0
        self._groups: OrderedDict[tuple[str, str, int, int], _Group[T]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._groups)

    def feed(self, sm: ShortMessage, token: T, now: float) -> list[Ready[T]]:
        """Add one MO deliver_sm; return what became ready (possibly nothing)."""
        ready = self.expire(now)
        info, body = concat_info(sm)
        text = decode_text(sm.data_coding, body)
        if info is None or info.total <= 1 or not 1 <= info.seqnum <= info.total:
            event = MoMessage(sm.source_addr, sm.destination_addr, text, sm.data_coding, pdu=sm)
            ready.append(Ready(event, (token,)))
            return ready
        key = (sm.source_addr, sm.destination_addr, info.reference, info.total)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(first=sm, total=info.total, started=now)
        size = part_bytes(sm)
        group.texts[info.seqnum] = text  # a repeated part replaces the earlier copy
        group.tokens.append(token)
        group.size += size
        self.buffered_parts += 1
        self.buffered_bytes += size
        if len(group.texts) == group.total:
            ready.append(self._finish(self._pop(key)))
        else:
            ready.extend(self._evict())
        return ready

    def _evict(self) -> list[Ready[T]]:
        """Hand over the oldest groups, incomplete, until every bound holds again."""
        evicted: list[Ready[T]] = []
        while self._groups and (
            len(self._groups) > self.max_groups
            or self.buffered_parts > self.max_parts
            or self.buffered_bytes > self.max_bytes
        ):
            oldest = self._pop(next(iter(self._groups)))
            log.warning(
                "reassembly buffer full; oldest message handed over incomplete",
                parts=len(oldest.tokens),
                bytes=oldest.size,
            )
            evicted.append(self._finish(oldest))
        return evicted

    def _pop(self, key: tuple[str, str, int, int]) -> _Group[T]:
        group = self._groups.pop(key)
        self.buffered_parts -= len(group.tokens)
        self.buffered_bytes -= group.size
        return group

    def expire(self, now: float) -> list[Ready[T]]:
        """Hand over, incomplete, every message whose first part is ``timeout`` old
        (groups are kept in the order they started, on a monotonic clock)."""
        stale: list[Ready[T]] = []
        while self._groups:
            key, oldest = next(iter(self._groups.items()))
            if now - oldest.started < self.timeout:
                break
            stale.append(self._finish(self._pop(key)))
        return stale

    def drain(self) -> list[Ready[T]]:
        """Hand over everything buffered (at shutdown)."""
        groups, self._groups = list(self._groups.values()), OrderedDict()
        self.buffered_parts = self.buffered_bytes = 0
        return [self._finish(g) for g in groups]

    @staticmethod
    def _finish(group: _Group[T]) -> Ready[T]:
        present = sorted(group.texts)
        missing = tuple(n for n in range(1, group.total + 1) if n not in group.texts)
        sm = group.first
        event = MoMessage(
            source_addr=sm.source_addr,
            destination_addr=sm.destination_addr,
            text="".join(group.texts[n] for n in present),
            data_coding=sm.data_coding,
            parts=group.total,
            complete=not missing,
            missing=missing,
            pdu=sm,
        )
        return Ready(event, tuple(group.tokens))


def classify(
    sm: ShortMessage, token: T, now: float, reassembler: Reassembler[T], id_format: IdFormat
) -> list[Ready[T]]:
    """Turn one deliver_sm into the events it completes: a receipt or a USSD indication
    at once, an MO message when its last part has arrived."""
    if is_receipt(sm):
        return [Ready(to_receipt(sm, id_format), (token,))]
    if Tag.USSD_SERVICE_OP in sm.tlvs:
        return [Ready(to_ussd(sm), (token,))]
    return reassembler.feed(sm, token, now)
