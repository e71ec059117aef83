"""What the SMSC sends us: delivery receipts, MO messages and USSD indications.

The SMPP session awaits :meth:`InboundSink.__call__` before it sends deliver_sm_resp, so
everything here is committed before the SMSC hears "got it" (invariant 4); a crash before
that makes the SMSC deliver again, and the repeat is recognised (receipts by their unique
key, MO by its dedupe key) instead of being applied twice.

Receipts arrive by the thousand per second, so they are written in micro-batches: every
receipt that arrives while a write is in progress joins the next one, with no timer.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, tzinfo

import asyncpg
import structlog

from dispatcher.engine.repository import DispatchRepository, ReceiptIn
from dispatcher.kernel.clock import Clock
from dispatcher.kernel.msisdn import InvalidMsisdn, normalise
from dispatcher.program.mo import MoDesk, MoRepository
from dispatcher.program.ussd import UssdDesk
from smpp.constants import MessageState, Tag
from smpp.errors import InboundRejected
from smpp.inbound import DeliveryReceipt, InboundEvent, MoMessage, UssdIndication
from smpp.receipts import MAX_ID_LENGTH, parse_receipt_date, receipt_id_readings

log = structlog.get_logger(__name__)

RECEIPT_STATES = {
    MessageState.ENROUTE: "enroute",
    MessageState.DELIVERED: "delivered",
    MessageState.EXPIRED: "expired",
    MessageState.DELETED: "deleted",
    MessageState.UNDELIVERABLE: "undelivered",
    MessageState.ACCEPTED: "accepted",
    MessageState.UNKNOWN: "unknown",
    MessageState.REJECTED: "rejected",
}
#: The longest error code kept from a receipt's text (the spec's is three digits).
MAX_ERROR_LENGTH = 32
#: How long an MO resend is recognised by content when the PDU carries no id of its own.
MO_DEDUPE_BUCKET = timedelta(minutes=10)

#: Answers a USSD indication over SMPP: (indication, text, end of session).
UssdReplySender = Callable[[UssdIndication, str, bool], Awaitable[None]]


_Pending = tuple[ReceiptIn, "asyncio.Future[None]"]  # a receipt and its writer's answer


class ReceiptWriter:
    """Micro-batches receipt inserts: callers await the commit of the batch holding theirs.

    A batch the database refuses for its data (a byte PostgreSQL does not take in a text)
    is written again one receipt at a time, so one bad receipt fails alone, for good
    (:class:`~smpp.errors.InboundRejected`), and the others are kept. Any other failure
    fails the batch, and the SMSC delivers its receipts again.
    """

    def __init__(self, repo: DispatchRepository, clock: Clock, max_batch: int = 1000) -> None:
        self._repo = repo
        self._clock = clock
        self._max_batch = max_batch
        self._pending: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None
        self.committed = 0  # receipts written since start (for tests and metrics)
        self._progress = asyncio.Event()

    async def wait_committed(self, count: int) -> None:
        """Wait until at least ``count`` receipts were committed (wrap in a timeout)."""
        while self.committed < count:
            await self._progress.wait()

    async def write(self, receipt: ReceiptIn) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((receipt, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        await asyncio.shield(done)

    async def _drain(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: len(batch)]
            await self._insert(batch)

    async def _insert(self, batch: list[_Pending]) -> None:
        try:
            await self._repo.insert_receipts([r for r, _ in batch], self._clock.now())
        except asyncpg.DataError as exc:
            if len(batch) > 1:
                for item in batch:
                    await self._insert([item])
                return
            reason = f"receipt refused by the database: {type(exc).__name__}"
            _settle(batch, InboundRejected(reason))
            return
        except Exception as exc:  # the SMSC gets an error status and sends them again
            _settle(batch, exc)
            return
        _settle(batch, None)
        self.committed += len(batch)
        self._progress.set()
        self._progress = asyncio.Event()


def _settle(batch: list[_Pending], error: BaseException | None) -> None:
    for _, done in batch:
        if done.done():
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)


class InboundSink:
    """The session's inbound handler."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        repo: DispatchRepository,
        clock: Clock,
        mo: MoDesk,
        *,
        ussd: UssdDesk,
        ussd_reply: UssdReplySender,
        region: str,
        receipt_zone: tzinfo,
    ) -> None:
        """Built once, by :func:`dispatcher.engine.build.build_engine`. ``region``: how
        national numbers are read; ``receipt_zone``: the SMSC's local time, in which
        receipts write their dates."""
        self._pool = pool
        self._repo = repo
        self._clock = clock
        self._mo = mo
        self._ussd = ussd
        self._region = region
        self._ussd_reply = ussd_reply
        self._receipt_zone = receipt_zone
        self.receipts = ReceiptWriter(repo, clock)

    async def __call__(self, event: InboundEvent) -> None:
        if isinstance(event, DeliveryReceipt):
            await self.receipts.write(receipt_in(event, self._receipt_zone, self._region))
        elif isinstance(event, MoMessage):
            await self.mo(event)
        else:
            await self.ussd(event)

    async def mo(self, message: MoMessage) -> str:
        """Record and apply one MO message in one transaction; returns its outcome."""
        msisdn = self._msisdn(message.source_addr)
        if msisdn is None:
            return "ignored"
        now = self._clock.now()
        key = mo_dedupe_key(message, now)
        async with self._pool.acquire() as conn, conn.transaction():
            mo_messages = MoRepository(conn)
            mo = await mo_messages.record(
                self._repo.smsc, msisdn, message.destination_addr, message.text, key, now
            )
            if mo is None:
                log.info("mo resend recognised", mo_key=key[:12])
                return "duplicate"
            outcome = await self._mo.handle(
                conn, msisdn, message.destination_addr, message.text, mo.id, now
            )
            await mo_messages.handled(mo.id, outcome, now)
        return outcome

    async def ussd(self, indication: UssdIndication) -> None:
        """A USSD request carried over SMPP: answered like the HTTP gateway's."""
        msisdn = self._msisdn(indication.source_addr)
        if msisdn is None:
            return
        session = (indication.session_info or b"").hex() or msisdn
        reply = await self._ussd.handle(msisdn, session, indication.text, self._clock.now())
        await self._ussd_reply(indication, reply.text, reply.end)

    def _msisdn(self, raw: str) -> str | None:
        try:
            return normalise(raw, self._region)
        except InvalidMsisdn:
            log.warning("inbound from an address that is not a number", source=raw)
            return None


def receipt_in(event: DeliveryReceipt, zone: tzinfo, region: str | None = None) -> ReceiptIn:
    """What is stored of a receipt: its id's readings, its done date read in the SMSC's
    ``zone``, and its subscriber's number read in ``region`` (None when it is not one).

    Raises InboundRejected for a receipt that can never be matched (no id, a control
    character such as NUL in it, longer than any submit_sm_resp id): answered with a
    permanent error, not delivered again. A bad error code or date is dropped instead.
    """
    raw = event.fields.raw_message_id.strip()
    if not raw or len(raw) > MAX_ID_LENGTH or any(ord(c) < 0x20 for c in raw):
        raise InboundRejected(f"receipt without a usable message id: {raw[:MAX_ID_LENGTH]!r}")
    readings = receipt_id_readings(raw)
    state = RECEIPT_STATES.get(event.state, "unknown") if event.state else "unknown"
    error = "".join(c for c in event.fields.error if c.isprintable())[:MAX_ERROR_LENGTH]
    return ReceiptIn(
        message_id=readings.as_is,
        state=state,
        error_code=error or None,
        done_at=parse_receipt_date(event.fields.done_date, zone),
        id_hex=readings.hex_response,
        id_dec=readings.decimal_response,
        msisdn=_number(event.source_addr, region),
    )


def _number(raw: str, region: str | None) -> str | None:
    if region is None:
        return None
    try:
        return normalise(raw, region)
    except InvalidMsisdn:
        return None


def mo_dedupe_key(message: MoMessage, now: datetime) -> str:
    """The identity of an MO message for recognising an SMSC's resend.

    SMPP 3.4 gives MO no id. When the PDU carries one anyway (user_message_reference or a
    receipted_message_id, as many SMSCs add), it is used; otherwise the content within a
    10-minute bucket: a resend after our crash arrives well within it, and a subscriber who
    texts the very same words twice in that span is taken to have repeated themselves.
    """
    tlvs = message.pdu.tlvs if message.pdu is not None else {}
    ref = tlvs.get(Tag.RECEIPTED_MESSAGE_ID) or tlvs.get(Tag.USER_MESSAGE_REFERENCE)
    if ref:
        basis = f"id|{message.source_addr}|{ref.hex()}"
    else:
        bucket = int(now.timestamp() // MO_DEDUPE_BUCKET.total_seconds())
        basis = f"text|{message.source_addr}|{message.destination_addr}|{message.text}|{bucket}"
    return hashlib.sha256(basis.encode()).hexdigest()
