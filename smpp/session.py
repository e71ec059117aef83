"""The ESME session: binds (transceiver, or transmitter + receiver), keeps them bound,
paces submits through a window and a token bucket, and hands inbound deliver_sm to the
application before acknowledging them.

Inbound: the handler is awaited before deliver_sm_resp is written. While it runs it may read
:func:`acknowledgement` — which connections carried the event, whether they are still open —
and ask to be told once the response was written or could not be (the connection was gone):
what an application needs to tell an SMSC's resend of an unacknowledged message from a new
one. A handler that cannot decide yet raises :class:`DeliverLater`.

Contract of :meth:`Session.submit`: it returns an :data:`~smpp.outcome.Outcome` for every
submit_sm it wrote — Accepted, TemporaryFailure, PermanentFailure, or Unknown when no
response came — and raises (:class:`~smpp.errors.SessionClosed`,
:class:`~smpp.errors.NotBound`, :class:`~smpp.errors.DeadlinePassed`, ``ValueError``) only
when nothing was written. The
session never resends anything. A caller that cancels a submit after it was written
loses its outcome (it is counted in ``stats.unknown``): prefer letting it finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Self

import structlog

from smpp.config import Address, Role, SessionConfig
from smpp.connection import Connection, Interrupted, Result
from smpp.constants import CommandId, Status
from smpp.errors import (
    AuthenticationFailed,
    BindRefused,
    DeadlinePassed,
    InboundRejected,
    NotBound,
    SessionClosed,
)
from smpp.inbound import DeliveryReceipt, InboundEvent, MoMessage, Ready, Reassembler, classify
from smpp.outcome import Accepted, Outcome, TemporaryFailure, Unknown
from smpp.pdu import Header, PduError, decode_message_id, decode_short_message
from smpp.pdu import encode_short_message_body as encode_body
from smpp.ratelimit import LoopMonotonic, Monotonic, TokenBucket
from smpp.receipts import IdSide, normalise_message_id
from smpp.stats import SessionState, SessionStats
from smpp.submit import Window, build_submit
from smpp.text import Part

log = structlog.get_logger("smpp.session")
InboundHandler = Callable[[InboundEvent], Awaitable[None]]
#: Whether a submit may still be written (see :meth:`Session.submit`).
WriteIf = Callable[[], bool]
Token = tuple[Connection, int]


class DeliverLater(Exception):
    """Raised by an inbound handler that cannot decide about an event yet: the SMSC gets
    ``handler_error_status`` (temporary) and delivers it again later. Logged without a
    traceback and not counted as a handler error."""


class Acknowledgement:
    """The deliver_sm_resp of one inbound event, as the session sends it.

    ``carried_open()``: whether every connection that carried the event's PDUs is still open
    (its response can still reach the SMSC). ``answered``: None until the session answered;
    then True when every response was ESME_ROK handed to an open connection, False when one
    could not be (its connection was gone: the SMSC never heard it) or the status was an
    error. Callbacks given to :meth:`on_answered` run once, with that value.

    What "handed to an open connection" cannot say is whether the SMSC read it: a response
    written just as the peer's close is on its way is counted as answered (TCP's ambiguity).
    """

    def __init__(self, carried_open: Callable[[], bool]) -> None:
        self._carried_open = carried_open
        self.answered: bool | None = None
        self._callbacks: list[Callable[[bool], None]] = []

    def carried_open(self) -> bool:
        return self._carried_open()

    def on_answered(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(answered)`` once the session answered (at once if it has)."""
        if self.answered is None:
            self._callbacks.append(callback)
        else:
            callback(self.answered)

    def answer(self, written: bool) -> None:
        """Record the answer and run the callbacks (the session's side)."""
        if self.answered is not None:
            return
        self.answered = written
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback(written)
            except Exception:
                log.exception("acknowledgement callback failed")


_ACKNOWLEDGEMENT: ContextVar[Acknowledgement | None] = ContextVar(
    "smpp_acknowledgement", default=None
)


def acknowledgement() -> Acknowledgement | None:
    """The acknowledgement of the inbound event being handled in this task; None outside an
    inbound handler."""
    return _ACKNOWLEDGEMENT.get()


def _carriers_open(tokens: tuple[Token, ...]) -> Callable[[], bool]:
    connections = {conn for conn, _ in tokens}
    return lambda: all(not conn.closed.is_set() for conn in connections)


class Session:
    """One ESME session to one SMSC. Use as ``async with Session(cfg, handler) as s``.

    ``handler`` is awaited with each :data:`~smpp.inbound.InboundEvent` before its
    deliver_sm_resp is sent; if it raises, the SMSC gets ``handler_error_status`` (a
    temporary error, so it delivers again), or a permanent error when it raises
    :class:`~smpp.errors.InboundRejected`. ``clock`` drives the token bucket, response
    timeouts and enquire_link; ``rng`` the reconnect jitter.
    """

    def __init__(
        self,
        config: SessionConfig,
        handler: InboundHandler | None = None,
        *,
        clock: Monotonic | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.stats = SessionStats()
        self.failure: AuthenticationFailed | None = None
        self._handler = handler
        self._clock: Monotonic = clock or LoopMonotonic()
        self._rng = rng or random.Random()
        self._window = Window(config.window)
        self._bucket = TokenBucket(config.tps, config.burst, config.throttle)
        self._pace_lock = asyncio.Lock()
        self._conns: dict[Role, Connection | None] = dict.fromkeys(config.roles)
        self._role_state = dict.fromkeys(config.roles, SessionState.DISCONNECTED)
        self._tx: Connection | None = None
        self._tx_ready = asyncio.Event()
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._inbound: set[asyncio.Task[None]] = set()
        """Handler workers (at most ``inbound_concurrency``), each draining the queue."""
        self._workers = 0
        self._queue: deque[Ready[Token]] = deque()
        self._backlog = 0
        self._room_waiters: list[asyncio.Future[None]] = []
        self._reassembler: Reassembler[Token] = Reassembler(
            timeout=config.reassembly_timeout,
            max_groups=config.reassembly_max,
            max_parts=config.reassembly_max_parts,
            max_bytes=config.reassembly_max_bytes,
        )
        self._in_flight = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self._closing = False
        self._closed = False
        self._closer: asyncio.Task[None] | None = None
        self.log = log.bind(system_id=config.system_id, host=config.host, port=config.port)

    def set_handler(self, handler: InboundHandler) -> None:
        """Set the inbound handler, before :meth:`start`: for a handler that needs the session
        itself (one that answers a USSD indication by submitting on this session)."""
        if self._tasks:
            raise RuntimeError("the inbound handler is set before the session starts")
        self._handler = handler

    # -- life cycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        """Start binding (in the background); see :meth:`wait_bound`."""
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._supervise(role), name=f"smpp-{role.name.lower()}")
            for role in self.config.roles
        ]
        if any(role.receives for role in self.config.roles):
            self._tasks.append(asyncio.create_task(self._expire_loop(), name="smpp-reassembly"))

    @property
    def state(self) -> SessionState:
        if self._closed or self.failure is not None:
            return SessionState.CLOSED
        if self._closing:
            return SessionState.UNBINDING
        states = set(self._role_state.values())
        if states == {SessionState.BOUND}:
            return SessionState.BOUND
        if SessionState.BINDING in states:
            return SessionState.BINDING
        return SessionState.DISCONNECTED

    @property
    def in_flight(self) -> int:
        """submit_sm written and not yet resolved."""
        return self._in_flight

    @property
    def throttle_pause(self) -> float:
        """Seconds before submitting resumes after the SMSC's throttling (0.0: not paused)."""
        return self._bucket.paused_for(self._clock.now())

    @property
    def tps(self) -> float | None:
        """The submits/s this session is configured for now (None: unlimited)."""
        return self._bucket.configured_rate

    @property
    def burst(self) -> int:
        """Submits this session may write back to back beyond its rate (after a pause)."""
        return self._bucket.burst

    def set_tps(self, rate: float, burst: int | None = None) -> None:
        """Change the submits/s limit (and the burst: None keeps it) at run time: this
        replica's share of the account's grant changed (0: send nothing until a share comes).
        A lower rate holds from the next submit; at most the bucket's burst goes out at the
        old pace."""
        self._bucket.set_rate(rate, self._clock.now(), burst)

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_bound(self) -> None:
        """Wait until every bind is up (wrap in ``asyncio.timeout``); raise SessionClosed,
        with the AuthenticationFailed as its cause, if the session stopped."""
        while (state := self.state) is not SessionState.BOUND:
            if state in (SessionState.CLOSED, SessionState.UNBINDING):
                raise SessionClosed(f"session is {state.value}") from self.failure
            await self._changed.wait()

    async def close(self) -> None:
        """Stop submitting, let outstanding submits resolve, answer inbound work that is
        being handled, unbind every connection and wait for unbind_resp."""
        if self._closed:
            return
        self._closing = True
        self._tx_ready.set()  # wakes submitters waiting for a bind: they raise SessionClosed
        self._notify()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.response_timeout + 1):
                await self._drained.wait()
                if self._inbound:
                    await asyncio.gather(*self._inbound, return_exceptions=True)
        live = [c for c in self._conns.values() if c is not None and not c.closed.is_set()]
        await asyncio.gather(*(c.unbind() for c in live), return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._closed = True
        self._notify()
        self.log.info("session closed", **_counts(self.stats))

    # -- binding --------------------------------------------------------------------------

    async def _supervise(self, role: Role) -> None:
        attempt = 0
        while not self._closing:
            self._set_role_state(role, SessionState.BINDING)
            try:
                conn = await Connection.open(role, self.config, self._clock, self.stats, self)
            except AuthenticationFailed as exc:
                self.stats.bind_failures += 1
                self._fail(exc)
                return
            except (BindRefused, OSError, TimeoutError, EOFError, PduError) as exc:
                self.stats.bind_failures += 1
                self.log.warning("bind failed", role=role.name.lower(), error=str(exc) or repr(exc))
            else:
                attempt = 0
                if not await self._run_bound(role, conn):
                    return
            self._set_role_state(role, SessionState.DISCONNECTED)
            delay = self.config.reconnect.delay(attempt, self._rng)
            attempt += 1
            await self._clock.sleep(delay)

    async def _run_bound(self, role: Role, conn: Connection) -> bool:
        """Serve one bound connection until it closes; False if we must not reconnect."""
        self.stats.binds += 1
        self._conns[role] = conn
        if role.sends:
            self._tx = conn
            self._tx_ready.set()
        self._set_role_state(role, SessionState.BOUND)
        self.log.info("bound", role=role.name.lower())
        await conn.closed.wait()
        self._conns[role] = None
        if self._tx is conn:
            self._tx = None
            self._tx_ready.clear()
        if self._closing:
            return False
        self.stats.disconnects += 1
        self.log.warning("disconnected", role=role.name.lower(), reason=conn.close_reason)
        if conn.unbound_by_peer and not self.config.reconnect_on_unbind:
            self._set_role_state(role, SessionState.DISCONNECTED)
            self._closer = asyncio.create_task(self.close())  # unbinds the other bind too
            return False
        return True

    def _set_role_state(self, role: Role, state: SessionState) -> None:
        self._role_state[role] = state
        self._notify()

    def _fail(self, exc: AuthenticationFailed) -> None:
        self.log.error("authentication failed: session stopped", status=exc.status)
        self.failure = exc
        self._closing = True
        self._tx_ready.set()
        for conn in self._conns.values():
            if conn is not None:
                conn.abort("authentication failed on another bind")
        self._notify()

    # -- submitting -----------------------------------------------------------------------

    async def submit(
        self,
        part: Part,
        *,
        source: Address,
        destination: Address,
        registered_delivery: int = 1,
        validity_period: str = "",
        schedule_delivery_time: str = "",
        service_type: str = "",
        protocol_id: int = 0,
        priority_flag: int = 0,
        extra_tlvs: dict[int, bytes] | None = None,
        bind_timeout: float | None = None,
        write_if: WriteIf | None = None,
    ) -> Outcome:
        """Submit one part; wait for a window slot, a token and a bound transmitter
        (at most ``bind_timeout`` for the latter, else NotBound), then for the outcome.

        ``write_if`` is asked while waiting and once more right before the PDU is written
        (after every wait): when it says False, nothing is written and DeadlinePassed is
        raised. The caller's deadline is on its own clock (the service's: a send window
        closes at 21:00 by it), not on the session's monotonic pacing clock."""
        sm = build_submit(
            part,
            source,
            destination,
            registered_delivery=registered_delivery,
            validity_period=validity_period,
            schedule_delivery_time=schedule_delivery_time,
            service_type=service_type,
            protocol_id=protocol_id,
            priority_flag=priority_flag,
            extra_tlvs=extra_tlvs,
        )
        return await self.submit_body(encode_body(sm), bind_timeout=bind_timeout, write_if=write_if)

    async def submit_body(
        self, body: bytes, *, bind_timeout: float | None = None, write_if: WriteIf | None = None
    ) -> Outcome:
        """Submit a pre-encoded submit_sm body (see :func:`build_submit`); ``write_if`` as
        for :meth:`submit`."""
        await self._window.acquire()
        try:
            while True:
                _check(write_if)
                conn = await self._transmitter(bind_timeout)
                await self._pace(write_if)
                if conn.usable and not self._closing:
                    break
            _check(write_if)  # the last moment before the write: no await until it is done
            sequence, future = conn.request(CommandId.SUBMIT_SM, body, self.config.response_timeout)
            self.stats.submitted += 1
            self._in_flight += 1
            self._drained.clear()
            try:
                result = await future
            except asyncio.CancelledError:
                self.stats.unknown += 1
                self.log.warning("submit cancelled after it was written", sequence=sequence)
                raise
            finally:
                self._in_flight -= 1
                if not self._in_flight:
                    self._drained.set()
        finally:
            self._window.release()
        return self._outcome(result, sequence)

    async def _transmitter(self, limit: float | None) -> Connection:
        while True:
            if self._closing:
                raise SessionClosed("session is closing or closed") from self.failure
            conn = self._tx
            if conn is not None and conn.usable:
                return conn
            self._tx_ready.clear()
            try:
                async with asyncio.timeout(limit):
                    await self._tx_ready.wait()
            except TimeoutError:
                raise NotBound(f"no bound transmitter within {limit} s") from None

    async def _pace(self, write_if: WriteIf | None = None) -> None:
        bucket, clock = self._bucket, self._clock
        if not self._pace_lock.locked() and bucket.take(clock.now()) == 0.0:
            return
        async with self._pace_lock:  # one waiter at a time, in arrival order
            _check(write_if)  # those queued behind the lock give up without a token
            while (wait := bucket.take(clock.now())) > 0.0:
                await clock.sleep(wait)
                _check(write_if)

    def _outcome(self, result: Result, sequence: int) -> Outcome:
        stats = self.stats
        if isinstance(result, Interrupted):
            stats.unknown += 1
            return Unknown(result.reason, sequence)
        status, body = result
        stats.responses_by_status[status] += 1
        if status == Status.ESME_ROK:
            stats.accepted += 1
            self._bucket.accepted(self._clock.now())
            raw = decode_message_id(body)
            fmt = self.config.id_format
            return Accepted(normalise_message_id(raw, fmt, IdSide.RESPONSE), raw, sequence)
        policy = self.config.status_policy
        if status in policy.throttling:
            stats.throttled += 1
            self._bucket.throttled(self._clock.now())
        outcome = policy.failure(status, sequence)
        if isinstance(outcome, TemporaryFailure):
            stats.temporary_failures += 1
        else:
            stats.permanent_failures += 1
        return outcome

    async def enquire_link(self) -> bool:
        """Round trip on the transmitter (or any) bind; False if unanswered or unbound.

        Also a barrier: every PDU written before it has reached the SMSC when it returns.
        """
        conn = self._tx or next((c for c in self._conns.values() if c is not None), None)
        return conn is not None and await conn.enquire_link()

    # -- inbound --------------------------------------------------------------------------

    @property
    def inbound_backlog(self) -> int:
        """deliver_sm queued for a handler or being handled, not yet answered (the parts
        waiting in the reassembly buffer are bounded there)."""
        return self._backlog

    @property
    def inbound_full(self) -> bool:
        """True while the backlog is at ``inbound_backlog``: receiving connections stop
        reading (see :meth:`Connection._hold <smpp.connection.Connection._hold>`)."""
        return self._backlog >= self.config.inbound_backlog

    @property
    def inbound_paused(self) -> bool:
        """True while some connection holds off reading because the backlog is full."""
        return any(c is not None and c.paused for c in self._conns.values())

    def wait_inbound_room(self, waiter: asyncio.Future[None]) -> None:
        """Resolve ``waiter`` once the backlog drops below its limit."""
        if self.inbound_full:
            self._room_waiters.append(waiter)
        elif not waiter.done():
            waiter.set_result(None)

    def on_deliver_sm(self, conn: Connection, header: Header, body: bytes) -> None:
        """Called by the connection's reader; never raises, never blocks."""
        if self.inbound_full:
            # read only because the connection is owed a response: refuse, for the SMSC
            # to deliver it again, rather than hold more than the backlog allows
            self.stats.inbound_refused += 1
            conn.respond(
                CommandId.DELIVER_SM_RESP, header.sequence, self.config.inbound_full_status
            )
            return
        try:
            sm = decode_short_message(body)
            ready = classify(
                sm,
                (conn, header.sequence),
                self._clock.now(),
                self._reassembler,
                self.config.id_format,
            )
        except PduError as exc:
            self.stats.malformed_pdus += 1
            self.log.warning(
                "malformed deliver_sm rejected", error=str(exc), sequence=header.sequence
            )
            conn.respond(CommandId.DELIVER_SM_RESP, header.sequence, exc.status)
            return
        except Exception:
            self.stats.malformed_pdus += 1
            self.log.exception("deliver_sm could not be classified", sequence=header.sequence)
            conn.respond(
                CommandId.DELIVER_SM_RESP, header.sequence, self.config.malformed_deliver_status
            )
            return
        for item in ready:
            self._enqueue(item)

    def _enqueue(self, ready: Ready[Token]) -> None:
        """Queue an event for a handler; start a worker if fewer than the concurrency run.

        No task per PDU: the queue is bounded by the readers' pause, the tasks by the
        concurrency.
        """
        self._backlog += len(ready.tokens)
        self._queue.append(ready)
        if self._workers < self.config.inbound_concurrency:
            self._workers += 1
            task = asyncio.create_task(self._work(), name="smpp-inbound")
            self._inbound.add(task)
            task.add_done_callback(self._inbound.discard)

    async def _work(self) -> None:
        try:
            while self._queue:
                ready = self._queue.popleft()
                try:
                    if all(conn.closed.is_set() for conn, _ in ready.tokens):
                        # nobody to answer: the SMSC delivers it again on a new bind
                        self.stats.inbound_dropped += 1
                    else:
                        await self._handle(ready)
                finally:
                    self._release(len(ready.tokens))
        finally:
            self._workers -= 1  # at once, not in a done callback: _enqueue counts on it

    def _release(self, pdus: int) -> None:
        self._backlog -= pdus
        if self._room_waiters and not self.inbound_full:
            waiters, self._room_waiters = self._room_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def _handle(self, ready: Ready[Token]) -> None:
        event = ready.event
        if isinstance(event, DeliveryReceipt):
            self.stats.receipts += 1
        elif isinstance(event, MoMessage):
            self.stats.mo_messages += 1
        else:
            self.stats.ussd_indications += 1
        status: int = Status.ESME_ROK
        ack = Acknowledgement(_carriers_open(ready.tokens))
        _ACKNOWLEDGEMENT.set(ack)  # this task's context: seen by the handler it awaits
        if self._handler is not None:
            try:
                await self._handler(event)
            except InboundRejected as exc:  # can never be applied: not to be resent
                self.stats.inbound_rejected += 1
                status = exc.status or self.config.malformed_deliver_status
                self.log.warning("inbound PDU rejected for good", reason=exc.reason)
            except DeliverLater as exc:
                status = self.config.handler_error_status
                self.log.info("inbound event to be delivered again later", reason=str(exc))
            except Exception:
                self.stats.handler_errors += 1
                status = self.config.handler_error_status
                self.log.exception("inbound handler failed; SMSC will deliver again")
        written = ack.carried_open()
        for conn, sequence in ready.tokens:
            conn.respond(CommandId.DELIVER_SM_RESP, sequence, status)
        ack.answer(written and status == Status.ESME_ROK)

    async def _expire_loop(self) -> None:
        interval = max(0.05, min(5.0, self.config.reassembly_timeout / 4))
        while True:
            await self._clock.sleep(interval)
            for item in self._reassembler.expire(self._clock.now()):
                self.log.warning("MO reassembly timed out; handing over the parts received")
                self._enqueue(item)


def _check(write_if: WriteIf | None) -> None:
    if write_if is not None and not write_if():
        raise DeadlinePassed("the caller's deadline passed before the submit_sm was written")


def _counts(stats: SessionStats) -> dict[str, int]:
    return {
        "submitted": stats.submitted,
        "accepted": stats.accepted,
        "unknown": stats.unknown,
        "throttled": stats.throttled,
    }
