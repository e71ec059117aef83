"""One ESME connection inside the SMSC simulator (see :mod:`smpp.simulator`).

An ``asyncio.Protocol`` rather than streams: the simulator must never be the bottleneck
of a benchmark, so frames are cut from one buffer per read and every answer produced in
one loop iteration leaves in one write.
"""

from __future__ import annotations

import asyncio
import struct
from typing import TYPE_CHECKING, NamedTuple, cast

import structlog

from smpp import legacy
from smpp.connection import FLUSH_AT
from smpp.constants import RESPONSE_BIT, CommandId, Status
from smpp.pdu import (
    DEFAULT_MAX_PDU,
    HEADER,
    HEADER_SIZE,
    PduError,
    encode_header_only,
    encode_message_id_resp,
)

if TYPE_CHECKING:
    from smpp.simulator import SmscSimulator

log = structlog.get_logger("smpp.simulator")
_LENGTH = struct.Struct(">I")
_SENDS = frozenset({CommandId.BIND_TRANSMITTER, CommandId.BIND_TRANSCEIVER})
_RECEIVES = frozenset({CommandId.BIND_RECEIVER, CommandId.BIND_TRANSCEIVER})


class Received(NamedTuple):
    """One PDU the simulator received, as recorded for tests."""

    connection: int
    command_id: int
    status: int
    sequence: int
    body: bytes


class SimConnection(asyncio.Protocol):
    """Server side of one TCP connection."""

    def __init__(self, server: SmscSimulator, number: int) -> None:
        self.server = server
        self.number = number
        self.transport: asyncio.Transport | None = None
        self.bind_command: int | None = None
        self.system_id = ""
        self.received_count = 0
        self.outstanding = 0
        self._buffer = bytearray()
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._sequence = 0
        self._waiters: dict[int, asyncio.Future[tuple[int, bytes]]] = {}
        self.closed = asyncio.Event()

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not subclasses of asyncio.Transport: no isinstance).
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.forget(self)
        for future in self._waiters.values():
            if not future.done():
                future.cancel()
        self.closed.set()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        offset, size = 0, len(buffer)
        while size - offset >= HEADER_SIZE:
            (length,) = _LENGTH.unpack_from(buffer, offset)
            if length < HEADER_SIZE or length > DEFAULT_MAX_PDU:
                self.send(encode_header_only(CommandId.GENERIC_NACK, 0, Status.ESME_RINVCMDLEN))
                self.close()
                return
            if size - offset < length:
                break
            _, command_id, status, sequence = HEADER.unpack_from(buffer, offset)
            body = bytes(buffer[offset + HEADER_SIZE : offset + length])
            offset += length
            self._on_pdu(command_id, status, sequence, body)
            if self.transport is None or self.transport.is_closing():
                return
        del buffer[:offset]

    # -- writing --------------------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        """Queue a frame; frames queued in one loop iteration leave in one write."""
        self._out.append(frame)
        if len(self._out) >= FLUSH_AT:
            self._flush()  # the ESME can start on these while we answer the rest
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self._flush()

    def _flush(self) -> None:
        if self._out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(self._out))
        self._out.clear()

    def close(self) -> None:
        """Close after what is queued has been written."""
        self._flush()
        if self.transport is not None:
            self.transport.close()

    def request(self, command_id: int, body: bytes = b"") -> asyncio.Future[tuple[int, bytes]]:
        """Send a request to the ESME; the future resolves to (status, body)."""
        self._sequence = self._sequence % 0x7FFFFFFF + 1
        future: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self._waiters[self._sequence] = future
        self.send(HEADER.pack(HEADER_SIZE + len(body), command_id, 0, self._sequence) + body)
        return future

    @property
    def can_receive(self) -> bool:
        return self.bind_command in _RECEIVES

    @property
    def can_send(self) -> bool:
        return self.bind_command in _SENDS

    # -- reading --------------------------------------------------------------------------

    def _on_pdu(self, command_id: int, status: int, sequence: int, body: bytes) -> None:
        server, options = self.server, self.server.options
        self.received_count += 1
        server.record(self.number, command_id, status, sequence, body)
        if (
            options.disconnect_after is not None
            and server.total_received >= options.disconnect_after
        ):
            options.disconnect_after = None  # once: the ESME must be able to come back
            log.info("simulator: disconnecting as configured", connection=self.number)
            self.close()
            return
        if command_id & RESPONSE_BIT:
            future = self._waiters.pop(sequence, None)
            if future is not None and not future.done():
                future.set_result((status, body))
            return
        if options.stall:
            return
        self._on_request(command_id, sequence, body)

    def _on_request(self, command_id: int, sequence: int, body: bytes) -> None:
        if command_id == CommandId.SUBMIT_SM:
            self.server.on_submit(self, sequence, body)
        elif command_id == CommandId.ENQUIRE_LINK:
            self.send(encode_header_only(CommandId.ENQUIRE_LINK_RESP, sequence))
        elif command_id in (
            CommandId.BIND_TRANSMITTER,
            CommandId.BIND_RECEIVER,
            CommandId.BIND_TRANSCEIVER,
        ):
            self._on_bind(command_id, sequence, body)
        elif command_id == CommandId.UNBIND:
            self.send(encode_header_only(CommandId.UNBIND_RESP, sequence))
            self.bind_command = None
            self.close()
        else:
            self.send(encode_header_only(CommandId.GENERIC_NACK, sequence, Status.ESME_RINVCMDID))

    def _on_bind(self, command_id: int, sequence: int, body: bytes) -> None:
        resp_id = command_id | RESPONSE_BIT
        try:
            bind = legacy.decode_bind(
                HEADER.pack(HEADER_SIZE + len(body), command_id, 0, sequence) + body
            )
        except PduError as exc:
            self.send(encode_header_only(resp_id, sequence, exc.status))
            return
        status = self.server.check_credentials(bind.system_id, bind.password)
        if self.bind_command is not None:
            status = Status.ESME_RALYBND
        if status == Status.ESME_ROK:
            self.bind_command = command_id
            self.system_id = bind.system_id
        name = self.server.options.system_id
        self.send(legacy.encode_bind_resp(resp_id, sequence, status, name))
        if status == Status.ESME_ROK:
            self.server.on_bound(self)  # after the bind_resp: stored deliver_sm follow it

    def answer_submit(self, sequence: int, status: int, message_id: str) -> None:
        """Send a submit_sm_resp (used directly or from a latency timer)."""
        self.outstanding -= 1
        self.send(encode_message_id_resp(CommandId.SUBMIT_SM_RESP, sequence, status, message_id))
