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
from smpp.inbound import DeliveryReceipt, InboundEvent, MoMessage, UssdIndication
from smpp.receipts import parse_receipt_date

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
#: How long an MO resend is recognised by content when the PDU carries no id of its own.
MO_DEDUPE_BUCKET = timedelta(minutes=10)

#: Answers a USSD indication over SMPP: (indication, text, end of session).
UssdReplySender = Callable[[UssdIndication, str, bool], Awaitable[None]]


class ReceiptWriter:
    """Micro-batches receipt inserts: callers await the commit of the batch holding theirs."""

    def __init__(self, repo: DispatchRepository, clock: Clock, max_batch: int = 1000) -> None:
        self._repo = repo
        self._clock = clock
        self._max_batch = max_batch
        self._pending: list[tuple[ReceiptIn, asyncio.Future[None]]] = []
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
            try:
                await self._repo.insert_receipts([r for r, _ in batch], self._clock.now())
            except Exception as exc:  # the SMSC gets an error status and sends them again
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)
            self.committed += len(batch)
            self._progress.set()
            self._progress = asyncio.Event()


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
            await self.receipts.write(receipt_in(event, self._receipt_zone))
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


def receipt_in(event: DeliveryReceipt, zone: tzinfo) -> ReceiptIn:
    """What is stored of a receipt; its done date read in the SMSC's ``zone``."""
    state = RECEIPT_STATES.get(event.state, "unknown") if event.state else "unknown"
    return ReceiptIn(
        message_id=event.message_id,
        state=state,
        error_code=event.fields.error or None,
        done_at=parse_receipt_date(event.fields.done_date, zone),
    )


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
