"""Classification of deliver_sm and reassembly of concatenated MO (pure, no sockets)."""

from __future__ import annotations

from smpp.connection import next_sequence
from smpp.constants import MAX_SEQUENCE, MessageState, Tag
from smpp.inbound import (
    DeliveryReceipt,
    MoMessage,
    Reassembler,
    UssdIndication,
    classify,
)
from smpp.pdu import ShortMessage
from smpp.receipts import IdFormat


def _udh_part(ref: int, total: int, seq: int, text: str) -> ShortMessage:
    udh = bytes((5, 0, 3, ref, total, seq))
    return ShortMessage(
        source_addr="7701",
        destination_addr="1204",
        esm_class=0x40,
        short_message=udh + text.encode("ascii"),
    )


def _sar_part(ref: int, total: int, seq: int, text: str) -> ShortMessage:
    tlvs = {
        Tag.SAR_MSG_REF_NUM: ref.to_bytes(2, "big"),
        Tag.SAR_TOTAL_SEGMENTS: bytes((total,)),
        Tag.SAR_SEGMENT_SEQNUM: bytes((seq,)),
    }
    return ShortMessage(
        source_addr="7701", destination_addr="1204", short_message=text.encode("ascii"), tlvs=tlvs
    )


def test_receipt_by_esm_class() -> None:
    """esm_class 0x04 makes a receipt, with the id normalised for the configured format."""
    sm = ShortMessage(esm_class=0x04, short_message=b"id:000FF stat:DELIVRD")
    (ready,) = classify(sm, 1, 0.0, Reassembler(), IdFormat.DECIMAL_RESPONSE_HEX_RECEIPT)
    assert isinstance(ready.event, DeliveryReceipt)
    assert ready.event.message_id == "255" and ready.event.state is MessageState.DELIVERED


def test_receipt_by_tlv_only() -> None:
    """A receipted_message_id TLV alone makes a receipt even with esm_class 0."""
    sm = ShortMessage(tlvs={Tag.RECEIPTED_MESSAGE_ID: b"abc\x00", Tag.MESSAGE_STATE: b"\x03"})
    (ready,) = classify(sm, 1, 0.0, Reassembler(), IdFormat.AS_IS)
    assert isinstance(ready.event, DeliveryReceipt)
    assert ready.event.message_id == "abc" and ready.event.state is MessageState.EXPIRED


def test_ussd_indication() -> None:
    """ussd_service_op makes a USSD indication carrying its session info."""
    sm = ShortMessage(
        short_message=b"*555#",
        tlvs={Tag.USSD_SERVICE_OP: b"\x01", Tag.ITS_SESSION_INFO: b"\x12\x00"},
    )
    (ready,) = classify(sm, 9, 0.0, Reassembler(), IdFormat.AS_IS)
    assert isinstance(ready.event, UssdIndication)
    assert ready.event.text == "*555#" and ready.event.session_info == b"\x12\x00"
    assert ready.tokens == (9,)


def test_plain_mo_and_message_payload() -> None:
    """An MO with its text in message_payload is decoded from there."""
    sm = ShortMessage(source_addr="7701", tlvs={Tag.MESSAGE_PAYLOAD: b"STOP"})
    (ready,) = classify(sm, 1, 0.0, Reassembler(), IdFormat.AS_IS)
    assert isinstance(ready.event, MoMessage) and ready.event.text == "STOP"


def test_ucs2_mo_is_decoded() -> None:
    """data_coding 8 decodes as UCS-2."""
    sm = ShortMessage(data_coding=8, short_message="СТОП".encode("utf-16-be"))
    (ready,) = classify(sm, 1, 0.0, Reassembler(), IdFormat.AS_IS)
    assert isinstance(ready.event, MoMessage) and ready.event.text == "СТОП"


def test_udh_parts_reassemble_in_any_order() -> None:
    """Three UDH parts arriving out of order yield one message; all tokens to ack."""
    r: Reassembler[int] = Reassembler()
    assert r.feed(_udh_part(7, 3, 3, "ghi"), 3, 0.0) == []
    assert r.feed(_udh_part(7, 3, 1, "abc"), 1, 0.0) == []
    (ready,) = r.feed(_udh_part(7, 3, 2, "def"), 2, 0.0)
    assert isinstance(ready.event, MoMessage)
    assert ready.event.text == "abcdefghi" and ready.event.complete and ready.event.parts == 3
    assert sorted(ready.tokens) == [1, 2, 3] and len(r) == 0


def test_sar_parts_reassemble() -> None:
    """SAR TLV parts reassemble the same way."""
    r: Reassembler[int] = Reassembler()
    assert r.feed(_sar_part(300, 2, 2, " there"), 2, 0.0) == []
    (ready,) = r.feed(_sar_part(300, 2, 1, "hello"), 1, 0.0)
    assert isinstance(ready.event, MoMessage) and ready.event.text == "hello there"


def test_duplicate_part_is_acked_not_doubled() -> None:
    """A part delivered twice is kept once, and both copies are acknowledged."""
    r: Reassembler[int] = Reassembler()
    r.feed(_udh_part(1, 2, 1, "ab"), 10, 0.0)
    r.feed(_udh_part(1, 2, 1, "ab"), 11, 0.0)
    (ready,) = r.feed(_udh_part(1, 2, 2, "cd"), 12, 0.0)
    assert isinstance(ready.event, MoMessage) and ready.event.text == "abcd"
    assert ready.tokens == (10, 11, 12)


def test_timeout_hands_over_incomplete_message() -> None:
    """After the timeout the parts that arrived are handed over, marked incomplete."""
    r: Reassembler[int] = Reassembler(timeout=30.0)
    r.feed(_udh_part(2, 3, 1, "abc"), 1, 100.0)
    assert r.expire(129.0) == []
    (ready,) = r.expire(130.0)
    assert isinstance(ready.event, MoMessage)
    assert not ready.event.complete and ready.event.missing == (2, 3) and ready.event.text == "abc"


def test_buffer_is_bounded() -> None:
    """A full buffer evicts its oldest message (incomplete) to admit a new one."""
    r: Reassembler[int] = Reassembler(max_groups=2)
    r.feed(_udh_part(1, 2, 1, "a"), 1, 0.0)
    r.feed(_udh_part(2, 2, 1, "b"), 2, 0.0)
    (evicted,) = r.feed(_udh_part(3, 2, 1, "c"), 3, 0.0)
    assert isinstance(evicted.event, MoMessage) and evicted.event.text == "a"
    assert len(r) == 2


def test_bad_concat_header_is_a_single_message() -> None:
    """A seqnum outside 1..total is not buffered: the message is handed over as is."""
    (ready,) = Reassembler[int]().feed(_udh_part(1, 2, 5, "x"), 1, 0.0)
    assert isinstance(ready.event, MoMessage) and ready.event.parts == 1


def test_sequence_wraps_and_skips_outstanding() -> None:
    """Sequence numbers wrap from 0x7FFFFFFF to 1 and skip ones still outstanding."""
    assert next_sequence(5, set()) == 6
    assert next_sequence(MAX_SEQUENCE, set()) == 1
    assert next_sequence(MAX_SEQUENCE - 1, {MAX_SEQUENCE, 1, 2}) == 3
