"""One TCP connection to an SMSC, bound in one role: framing, request/response pairing,
enquire_link, and the answers the protocol requires whatever the application does.

The session (:mod:`smpp.session`) owns connections and replaces them when they die; a
connection never reconnects, never retries and never resends anything itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Container
from typing import NamedTuple, Protocol

import structlog

from smpp import legacy
from smpp.config import Role, SessionConfig
from smpp.constants import MAX_SEQUENCE, RESPONSE_BIT, CommandId, Status, status_name
from smpp.errors import AuthenticationFailed, BindRefused, NotBound
from smpp.pdu import (
    HEADER,
    HEADER_SIZE,
    FrameError,
    Header,
    PduError,
    command_name,
    encode_header_only,
    encode_message_id_resp,
    parse_header,
)
from smpp.ratelimit import Monotonic
from smpp.stats import SessionStats

log = structlog.get_logger("smpp.connection")


class Interrupted(NamedTuple):
    """Result of a request that got no response: timed out, or the connection died."""

    reason: str


FLUSH_AT = 16
"""Frames queued before a write is forced within the same loop iteration: one write per
iteration makes the two peers take turns (neither works while the other does); a
quarter of the default window keeps both busy. Measured in bench/smpp.py."""

Response = tuple[int, bytes]
"""command_status and body of a response (or of a generic_nack that answered it)."""
Result = Response | Interrupted


def next_sequence(current: int, in_use: Container[int]) -> int:
    """The sequence number after ``current``: 1..0x7FFFFFFF, wrapping, skipping any still
    outstanding (a window is far smaller than the space, so this ends at once)."""
    sequence = current
    while True:
        sequence = 1 if sequence >= MAX_SEQUENCE else sequence + 1
        if sequence not in in_use:
            return sequence


class Listener(Protocol):
    """What a connection hands to its owner, and the owner's inbound backlog."""

    def on_deliver_sm(self, conn: Connection, header: Header, body: bytes) -> None: ...

    @property
    def inbound_full(self) -> bool:
        """True while no more inbound work may be taken on (the reader pauses)."""
        ...

    def wait_inbound_room(self, waiter: asyncio.Future[None]) -> None:
        """Resolve ``waiter`` once the backlog has room again."""


class Connection:
    """A bound connection. Create with :meth:`open`; watch :attr:`closed`."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        role: Role,
        config: SessionConfig,
        clock: Monotonic,
        stats: SessionStats,
        listener: Listener,
    ) -> None:
        self.role = role
        self.config = config
        self._reader = reader
        self._writer = writer
        self._transport = writer.transport
        self._clock = clock
        self._stats = stats
        self._listener = listener
        self._loop = asyncio.get_running_loop()
        self._pending: dict[int, tuple[asyncio.Future[Result], float, int]] = {}
        self._sequence = config.first_sequence - 1
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._tasks: list[asyncio.Task[None]] = []
        self._resume: asyncio.Future[None] | None = None
        self.paused = False
        """True while the reader holds off because the inbound backlog is full."""
        self.usable = False
        """True while submits may be written (bound, not unbinding)."""
        self.closed = asyncio.Event()
        self.close_reason = ""
        self.unbound_by_peer = False
        self.last_received = clock.now()
        self.log = log.bind(role=role.name.lower(), host=config.host, port=config.port)

    # -- opening ------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        role: Role,
        config: SessionConfig,
        clock: Monotonic,
        stats: SessionStats,
        listener: Listener,
    ) -> Connection:
        """Connect and bind; raise BindRefused / AuthenticationFailed / OSError / TimeoutError."""
        async with asyncio.timeout(config.connect_timeout):
            reader, writer = await asyncio.open_connection(
                config.host, config.port, limit=config.max_pdu_length * 2
            )
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # keepalive finds a peer that vanished without FIN even when we are idle
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        conn = cls(reader, writer, role, config, clock, stats, listener)
        try:
            async with asyncio.timeout(config.bind_timeout):
                await conn._bind()
        except BaseException:
            conn._shutdown("bind failed")
            raise
        conn._start()
        return conn

    async def _bind(self) -> None:
        cfg = self.config
        request = legacy.BindRequest(
            system_id=cfg.system_id,
            password=cfg.password,
            system_type=cfg.system_type,
            addr_ton=cfg.addr_ton,
            addr_npi=cfg.addr_npi,
            address_range=cfg.address_range,
        )
        sequence = self._next_sequence()
        self._transport.write(legacy.encode_bind(self.role.value, sequence, request))
        while True:
            header, body = await self._read_frame()
            if header.sequence == sequence and header.command_id & RESPONSE_BIT:
                break
            self.log.warning(
                "PDU before bind_resp ignored", command=command_name(header.command_id)
            )
        if header.status != Status.ESME_ROK:
            error = (
                AuthenticationFailed if header.status in cfg.fatal_bind_statuses else BindRefused
            )
            raise error(header.status, self.role.name.lower())
        with contextlib.suppress(PduError):
            peer = legacy.decode_bind_resp(HEADER.pack(*header) + body)
            self.log = self.log.bind(smsc_system_id=peer)
        self.usable = True

    def _start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._read_loop(), name="smpp-read"),
            asyncio.create_task(self._sweep_loop(), name="smpp-sweep"),
            asyncio.create_task(self._keepalive_loop(), name="smpp-keepalive"),
        ]

    # -- reading ------------------------------------------------------------------------

    async def _read_frame(self) -> tuple[Header, bytes]:
        header = parse_header(
            await self._reader.readexactly(HEADER_SIZE), self.config.max_pdu_length
        )
        body = (
            await self._reader.readexactly(header.length - HEADER_SIZE)
            if header.length > 16
            else b""
        )
        self.last_received = self._clock.now()
        return header, body

    async def _read_loop(self) -> None:
        reason = "closed by peer"
        try:
            receives, listener = self.role.receives, self._listener
            while True:
                header, body = await self._read_frame()
                self._dispatch(header, body)
                if receives and listener.inbound_full:
                    await self._hold()
        except FrameError as exc:
            # the stream cannot be resynchronised: say why, then drop the connection
            self._stats.malformed_pdus += 1
            self._send(encode_header_only(CommandId.GENERIC_NACK, exc.sequence or 0, exc.status))
            reason = f"broken framing: {exc}"
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            reason = f"connection lost: {exc!r}"
        except asyncio.CancelledError:
            reason = self.close_reason or "cancelled"
            raise
        except Exception:  # a bug here must cost a reconnect, never the process
            self.log.exception("reader failed")
            reason = "internal error"
        finally:
            self._shutdown(reason)

    async def _hold(self) -> None:
        """Backpressure: stop reading while the inbound backlog is full, so what the SMSC
        writes waits in the socket buffers and TCP slows it down.

        Never while this connection is owed a response: a handler may be waiting for the
        submit_sm_resp behind the deliver_sm in the stream (a transceiver answering USSD),
        and not reading it would deadlock; the session refuses the deliver_sm read
        meanwhile. A request written during the pause resumes the reader at once.
        """
        if self._pending:
            return
        self._stats.reader_pauses += 1
        self.paused = True
        try:
            while self._listener.inbound_full and not self._pending:
                waiter: asyncio.Future[None] = self._loop.create_future()
                self._resume = waiter
                self._listener.wait_inbound_room(waiter)
                await waiter
        finally:
            self.paused = False
            self._resume = None
            self.last_received = self._clock.now()  # the SMSC was there; we were not reading

    def _dispatch(self, header: Header, body: bytes) -> None:
        command_id = header.command_id
        if command_id & RESPONSE_BIT:
            self._on_response(header, body)
        elif command_id == CommandId.DELIVER_SM and self.role.receives:
            self._stats.deliver_sm_received += 1
            self._listener.on_deliver_sm(self, header, body)
        elif command_id == CommandId.ENQUIRE_LINK:
            # answered at once, window or no window: liveness must not queue behind data
            self._stats.enquire_links_received += 1
            self._send(encode_header_only(CommandId.ENQUIRE_LINK_RESP, header.sequence))
        elif command_id == CommandId.UNBIND:
            self._on_unbind(header)
        elif command_id == CommandId.ALERT_NOTIFICATION:
            self.log.info("alert_notification ignored", sequence=header.sequence)
        elif command_id == CommandId.DELIVER_SM:
            self.respond(CommandId.DELIVER_SM_RESP, header.sequence, Status.ESME_RINVBNDSTS)
        else:
            self._stats.generic_nacks_sent += 1
            self.log.warning("unsupported request", command=command_name(command_id))
            self.respond(CommandId.GENERIC_NACK, header.sequence, Status.ESME_RINVCMDID)

    def _on_response(self, header: Header, body: bytes) -> None:
        entry = self._pending.pop(header.sequence, None)
        is_nack = header.command_id == CommandId.GENERIC_NACK
        if is_nack:
            self._stats.generic_nacks_received += 1
        if entry is None:
            self._stats.unexpected_responses += 1
            self.log.warning(
                "response to no outstanding request",
                command=command_name(header.command_id),
                sequence=header.sequence,
                status=status_name(header.status),
            )
            return
        future, _, request_id = entry
        if not is_nack and header.command_id != request_id | RESPONSE_BIT:
            self._pending[header.sequence] = entry
            self._stats.unexpected_responses += 1
            self.log.warning("response of the wrong kind", command=command_name(header.command_id))
            return
        if not future.done():
            future.set_result((header.status, body))

    def _on_unbind(self, header: Header) -> None:
        self._stats.unbinds_received += 1
        self.log.info("unbind from SMSC")
        self.usable = False
        self.unbound_by_peer = True
        self._send(encode_header_only(CommandId.UNBIND_RESP, header.sequence))
        self._shutdown("unbound by SMSC")

    # -- writing ------------------------------------------------------------------------

    def _send(self, frame: bytes) -> None:
        """Queue a frame; all frames queued in one loop iteration leave in one write."""
        if self._transport.is_closing():
            return
        self._out.append(frame)
        if len(self._out) >= FLUSH_AT:
            self._flush()  # let the SMSC start on these while we prepare the rest
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._scheduled_flush)

    def _flush(self) -> None:
        if self._out:
            data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
            self._out.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self._flush()

    def respond(self, command_id: int, sequence: int, status: int, message_id: str = "") -> None:
        """Answer a request (or generic_nack one); silently dropped once closed."""
        if command_id in (
            CommandId.GENERIC_NACK,
            CommandId.ENQUIRE_LINK_RESP,
            CommandId.UNBIND_RESP,
        ):
            self._send(encode_header_only(command_id, sequence, status))
        else:
            self._send(encode_message_id_resp(command_id, sequence, status, message_id))

    def _next_sequence(self) -> int:
        self._sequence = next_sequence(self._sequence, self._pending)
        return self._sequence

    def request(
        self, command_id: int, body: bytes, timeout: float, *, force: bool = False
    ) -> tuple[int, asyncio.Future[Result]]:
        """Write a request; its future resolves to a Response or an Interrupted.

        Raises NotBound (nothing written) unless the connection is usable or ``force``.
        """
        if not (self.usable or force) or self.closed.is_set():
            raise NotBound(self.close_reason or "connection not usable")
        sequence = self._next_sequence()
        future: asyncio.Future[Result] = self._loop.create_future()
        self._pending[sequence] = (future, self._clock.now() + timeout, command_id)
        self._send(HEADER.pack(HEADER_SIZE + len(body), command_id, 0, sequence) + body)
        if self._resume is not None and not self._resume.done():
            self._resume.set_result(None)  # the response must be read: see _hold
        return sequence, future

    @property
    def outstanding(self) -> int:
        return len(self._pending)

    # -- timers -------------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        cfg = self.config
        interval = max(0.01, min(1.0, cfg.response_timeout / 4, cfg.enquire_link_timeout / 4))
        while True:
            await self._clock.sleep(interval)
            self.expire(self._clock.now())

    def expire(self, now: float) -> None:
        """Resolve every request past its deadline as Interrupted("response timeout")."""
        late = [seq for seq, (_, deadline, _) in self._pending.items() if deadline <= now]
        for sequence in late:
            future, _, command_id = self._pending.pop(sequence)
            self._stats.timeouts += 1
            self.log.warning(
                "response timeout", command=command_name(command_id), sequence=sequence
            )
            if not future.done():
                future.set_result(Interrupted("response timeout"))

    async def _keepalive_loop(self) -> None:
        interval = self.config.enquire_link_interval
        while True:
            # a paused reader is our doing, not the SMSC's silence: no enquire_link then
            idle = 0.0 if self.paused else self._clock.now() - self.last_received
            if idle < interval:
                await self._clock.sleep(interval - idle)
                continue
            alive = await self.enquire_link()
            if not alive:
                self._shutdown("enquire_link unanswered")
                return

    async def enquire_link(self) -> bool:
        """Send enquire_link and wait for any answer; False if none came in time."""
        if self.closed.is_set():
            return False
        self._stats.enquire_links_sent += 1
        _, future = self.request(
            CommandId.ENQUIRE_LINK, b"", self.config.enquire_link_timeout, force=True
        )
        return not isinstance(await future, Interrupted)

    # -- closing ------------------------------------------------------------------------

    async def unbind(self) -> None:
        """Stop submitting, send unbind, wait for unbind_resp (or the timeout), close."""
        self.usable = False
        if not self.closed.is_set():
            _, future = self.request(CommandId.UNBIND, b"", self.config.unbind_timeout, force=True)
            result = await future
            if isinstance(result, Interrupted):
                self.log.warning("no unbind_resp", reason=result.reason)
        self._shutdown("unbound")

    def abort(self, reason: str) -> None:
        """Drop the connection now (outstanding requests become Interrupted)."""
        self._shutdown(reason)

    def _shutdown(self, reason: str) -> None:
        if self.closed.is_set():
            return
        self.usable = False
        self.close_reason = reason
        self._flush()
        self._writer.close()  # flushes what is buffered (an unbind_resp) before closing
        pending, self._pending = self._pending, {}
        for future, _, _ in pending.values():
            if not future.done():
                future.set_result(Interrupted(f"connection lost: {reason}"))
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        self.closed.set()
        self.log.info("connection closed", reason=reason, outstanding=len(pending))
