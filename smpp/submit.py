"""Building a submit_sm from a text :class:`~smpp.text.Part`, and the session's window."""

from __future__ import annotations

import asyncio
import collections
import struct

from smpp.config import Address
from smpp.constants import Tag
from smpp.pdu import ShortMessage
from smpp.text import Part


def build_submit(
    part: Part,
    source: Address,
    destination: Address,
    *,
    registered_delivery: int = 1,
    validity_period: str = "",
    schedule_delivery_time: str = "",
    service_type: str = "",
    protocol_id: int = 0,
    priority_flag: int = 0,
    extra_tlvs: dict[int, bytes] | None = None,
) -> ShortMessage:
    """The submit_sm body fields for one :class:`~smpp.text.Part`."""
    tlvs: dict[int, bytes] = {}
    if part.sar_msg_ref_num is not None:
        tlvs[Tag.SAR_MSG_REF_NUM] = struct.pack(">H", part.sar_msg_ref_num)
        tlvs[Tag.SAR_TOTAL_SEGMENTS] = bytes((part.sar_total_segments or 1,))
        tlvs[Tag.SAR_SEGMENT_SEQNUM] = bytes((part.sar_segment_seqnum or 1,))
    if part.message_payload is not None:
        tlvs[Tag.MESSAGE_PAYLOAD] = part.message_payload
    tlvs.update(extra_tlvs or {})
    return ShortMessage(
        source_addr=source.addr,
        source_addr_ton=source.ton,
        source_addr_npi=source.npi,
        destination_addr=destination.addr,
        dest_addr_ton=destination.ton,
        dest_addr_npi=destination.npi,
        service_type=service_type,
        esm_class=part.esm_class,
        protocol_id=protocol_id,
        priority_flag=priority_flag,
        schedule_delivery_time=schedule_delivery_time,
        validity_period=validity_period,
        registered_delivery=registered_delivery,
        data_coding=part.data_coding,
        short_message=part.short_message,
        tlvs=tlvs,
    )


class Window:
    """Counting semaphore for outstanding requests, FIFO, cheaper than asyncio.Semaphore
    on the hot path (measured: its wake-up bookkeeping was ~10 % of a submit)."""

    def __init__(self, size: int) -> None:
        self.free = size
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self) -> None:
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # release() hands its slot over directly
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot but cancelled before using it
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1
