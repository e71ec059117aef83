"""What the SMSC sends us: delivery receipts, MO messages and USSD indications.

The SMPP session awaits :meth:`InboundSink.__call__` before it sends deliver_sm_resp, so
everything here is committed before the SMSC hears "got it" (invariant 4); a crash before
that makes the SMSC deliver again, and the repeat is recognised (receipts by their unique
key, MO by the rule below) instead of being applied twice.

Receipts arrive by the thousand per second, so they are written in micro-batches: every
receipt that arrives while a write is in progress joins the next one, with no timer.

**MO and the SMSC's resends.** SMPP gives an MO no id of its own, and a subscriber may well
send the very same text twice (``1`` to question 1, ``1`` to question 2; ``STOP`` with a
handset's user_message_reference that has wrapped). An SMSC sends a message again only when
it never got our ESME_ROK for it. So content alone never makes a message a resend: an
identical MO (same sender, destination, text and message references: :func:`mo_dedupe_key`)
is the resend of an earlier copy only if that copy's deliver_sm_resp was never written.
Each MO row records which node answers it, and that node records afterwards whether the
response was handed to an open connection (``acked_at``) or could not be, its connection
being gone (``ack_lost_at``). For an identical MO, each earlier copy not known to be
acknowledged (within :data:`MO_RESEND_HORIZON`) is judged:

* lost (its connection was gone when we answered) → this is its resend;
* answered by this node and still in this node's memory → memory decides, with no wait for
  the record: its response was written, or is about to be on a connection still open → a
  new message (two identical MOs back to back on one bind are two messages; the record of
  the first one's response may lag it by a few ms); it could not be written, or its
  connection closed before the response → a resend;
* answered by a node that is dead (its advisory lock is free: :mod:`dispatcher.engine.nodes`)
  with no record of the response → a resend: the node died between the commit and
  deliver_sm_resp (or just after the response, before recording it: see below);
* answered by another node that is alive, with nothing recorded yet → we cannot tell (its
  response is being written, or it just lost its connection and the SMSC came to us): the
  SMSC is answered with a temporary error (:class:`~smpp.session.DeliverLater`) and
  delivers again a moment later, when the other node will have recorded its answer.

A recognised resend takes the earlier row over (``resends`` + 1, answered by this node):
the message is one row however often it is resent, and only one resend is matched per
unacknowledged delivery. Everything else is a new message, recorded and applied.

What remains ambiguous is TCP's, and the rule leans toward never dropping a subscriber's
message: a response handed to a connection the SMSC has just closed counts as written (the
resend, if the SMSC sends one, is applied again); a node killed in the few ms between writing
a response and recording it leaves an unacknowledged copy behind, and a *new* identical
message within the horizon would be taken for its resend — hence the horizon. A resend
later than the horizon is applied again.

A text PostgreSQL cannot store (a NUL, a lone surrogate) is stored sanitised
(:func:`storable_text`) and applied: an insert that always fails would make the SMSC resend
the message for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta, tzinfo

import asyncpg
import structlog

from dispatcher.engine.nodes import node_dead
from dispatcher.engine.repository import DispatchRepository, ReceiptIn
from dispatcher.kernel.clock import Clock
from dispatcher.kernel.msisdn import InvalidMsisdn, normalise
from dispatcher.program.mo import (
    ATTRIBUTION_SPAN,
    Answer,
    MoDesk,
    MoRepository,
    UnacknowledgedCopy,
)
from dispatcher.program.ussd import UssdDesk
from smpp.constants import MessageState, Tag
from smpp.errors import InboundRejected
from smpp.inbound import DeliveryReceipt, InboundEvent, MoMessage, UssdIndication
from smpp.receipts import MAX_ID_LENGTH, parse_receipt_date, receipt_id_readings
from smpp.session import Acknowledgement, DeliverLater, acknowledgement

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
#: How far back an unacknowledged copy of an MO is looked for: an SMSC resends what we did
#: not acknowledge as soon as it has a bind again, so a resend comes well within it; past it,
#: an unacknowledged copy (its node killed between response and record) no longer stands in
#: the way of the subscriber's own identical message.
MO_RESEND_HORIZON = timedelta(hours=1)

#: Outcome returned for a recognised resend (nothing applied).
DUPLICATE = "duplicate"

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


class Verdict(enum.Enum):
    NEW = "new"  # a message of its own: record and apply
    RESEND = "resend"  # the SMSC's resend of an unacknowledged copy: apply nothing
    LATER = "later"  # another live node is answering a copy: ask the SMSC to deliver again


@dataclass(frozen=True, slots=True)
class _Answering:
    generation: int
    ack: Acknowledgement


class AnswerBook:
    """This node's memory of the MO it answers, and the writer of what became of their
    deliver_sm_resp (micro-batched, like receipts).

    An entry lives from before the MO's commit until its answer is recorded, so while the
    record lags, the resend check asks memory instead (:meth:`resend`). A failed write is
    kept and retried with the next one; its entry stays meanwhile.
    """

    def __init__(self, pool: asyncpg.Pool, clock: Clock) -> None:
        self._pool = pool
        self._clock = clock
        self._answering: dict[int, _Answering] = {}
        self._unwritten: list[tuple[Answer, _Answering]] = []
        self._writer: asyncio.Task[None] | None = None
        self.written = 0  # answers recorded since start (for tests)
        self._progress = asyncio.Event()

    def track(self, mo_id: int, generation: int, ack: Acknowledgement) -> None:
        """Remember that this node answers ``mo_id``'s delivery ``generation`` with ``ack``."""
        entry = self._answering[mo_id] = _Answering(generation, ack)
        ack.on_answered(lambda written: self._answered(mo_id, entry, written))

    def forget(self, mo_id: int) -> None:
        """The transaction that tracked ``mo_id`` did not commit."""
        self._answering.pop(mo_id, None)

    def resend(self, copy: UnacknowledgedCopy) -> bool | None:
        """Whether an identical MO is the resend of ``copy``, by this node's memory: False
        when its response was written or will be on a connection still open; True when it
        could not be; None when this node does not answer ``copy``'s latest delivery."""
        entry = self._answering.get(copy.id)
        if entry is None or entry.generation != copy.generation:
            return None
        if entry.ack.answered is not None:
            return not entry.ack.answered
        return not entry.ack.carried_open()

    async def flush(self) -> None:
        """Wait for the answers being recorded (at shutdown, once the session has answered
        everything): a clean stop leaves no acknowledged MO looking unanswered."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await self._writer

    async def wait_written(self, count: int) -> None:
        """Wait until at least ``count`` answers were recorded (wrap in a timeout)."""
        while self.written < count:
            await self._progress.wait()

    def _answered(self, mo_id: int, entry: _Answering, written: bool) -> None:
        if self._answering.get(mo_id) is not entry:
            return  # forgotten (rolled back) or superseded by a later delivery
        self._unwritten.append((Answer(mo_id, entry.generation, written), entry))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        while self._unwritten:
            batch, self._unwritten = self._unwritten, []
            try:
                await MoRepository(self._pool).answered([a for a, _ in batch], self._clock.now())
            except Exception as exc:  # kept: retried with the next answer
                log.warning("mo acknowledgement not recorded yet", error=repr(exc))
                self._unwritten[:0] = batch
                return
            for answer, entry in batch:
                if self._answering.get(answer.mo_id) is entry:
                    del self._answering[answer.mo_id]
            self.written += len(batch)
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
        node: Callable[[], str],
        attribution_span: timedelta = ATTRIBUTION_SPAN,
    ) -> None:
        """Built once, by :func:`dispatcher.engine.build.build_engine`. ``region``: how
        national numbers are read; ``receipt_zone``: the SMSC's local time, in which
        receipts write their dates; ``node``: this node's id now (the dispatcher's, whose
        advisory lock says it is alive); ``attribution_span``: how long after a campaign
        reached a number an MO from it is that campaign's in the inbox."""
        self._attribution_span = attribution_span
        self._pool = pool
        self._repo = repo
        self._clock = clock
        self._mo = mo
        self._node = node
        self.answers = AnswerBook(pool, clock)
        self._ussd = ussd
        self._region = region
        self._ussd_reply = ussd_reply
        self._receipt_zone = receipt_zone
        self.receipts = ReceiptWriter(repo, clock)

    async def __call__(self, event: InboundEvent) -> None:
        if isinstance(event, DeliveryReceipt):
            await self.receipts.write(receipt_in(event, self._receipt_zone, self._region))
        elif isinstance(event, MoMessage):
            await self.mo(event, acknowledgement())
        else:
            await self.ussd(event)

    async def mo(self, message: MoMessage, ack: Acknowledgement | None = None) -> str:
        """Record and apply one MO message in one transaction, unless it is the SMSC's resend
        of an unacknowledged copy (the rule: module docstring); returns its outcome.

        ``ack``: the session's acknowledgement of this delivery, whose answer is recorded
        once written; None for a caller with no response to send (the message counts as
        acknowledged when this returns). Raises DeliverLater when another live node is
        answering an identical copy."""
        msisdn = self._msisdn(message.source_addr)
        if msisdn is None:
            return "ignored"
        now = self._clock.now()
        text = storable_text(message.text)
        key = mo_dedupe_key(message, msisdn, text)
        node, acked_at = self._node(), (now if ack is None else None)
        tracked: int | None = None
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                mo_messages = MoRepository(conn)
                await mo_messages.lock_sender(msisdn)
                copies = await mo_messages.unacknowledged_copies(key, now - MO_RESEND_HORIZON)
                verdict, copy = await self._judge(conn, copies)
                if verdict is Verdict.LATER:
                    raise DeliverLater("another node is answering an identical MO")
                if copy is not None:
                    generation = await mo_messages.redelivered(copy, node, acked_at)
                    if generation is None:
                        raise DeliverLater("the unacknowledged copy changed meanwhile")
                    tracked = self._track(copy.id, generation, ack)
                    log.info("mo resend recognised", mo_id=copy.id, resends=generation)
                    return DUPLICATE
                mo = await mo_messages.record(
                    self._repo.smsc,
                    msisdn,
                    message.destination_addr,
                    text,
                    key,
                    now,
                    node=node,
                    acked_at=acked_at,
                    span=self._attribution_span,
                )
                tracked = self._track(mo.id, 0, ack)
                outcome = await self._mo.handle(
                    conn, msisdn, message.destination_addr, text, mo.id, now
                )
                await mo_messages.handled(mo.id, outcome, now)
        except BaseException:
            if tracked is not None:
                self.answers.forget(tracked)
            raise
        return outcome

    def _track(self, mo_id: int, generation: int, ack: Acknowledgement | None) -> int | None:
        """Track the answer before the commit: from the commit on, a concurrent identical MO
        may see the row, and must find this node's memory of it."""
        if ack is None:
            return None
        self.answers.track(mo_id, generation, ack)
        return mo_id

    async def _judge(
        self, conn: asyncpg.Connection, copies: Sequence[UnacknowledgedCopy]
    ) -> tuple[Verdict, UnacknowledgedCopy | None]:
        """Is an MO with these unacknowledged identical copies a resend of one of them (the
        oldest that qualifies), a new message, or not decidable now? See the module
        docstring."""
        undecided = False
        for copy in copies:
            mine = self.answers.resend(copy)
            if copy.lost or mine:
                return Verdict.RESEND, copy
            if mine is False or copy.node is None:
                continue  # answered, or being answered on an open connection
            if copy.node != self._node() and await node_dead(conn, copy.node):
                return Verdict.RESEND, copy
            undecided = undecided or copy.node != self._node()
        return (Verdict.LATER, None) if undecided else (Verdict.NEW, None)

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
    error = event.fields.error
    if not error.isprintable():  # most are: no walk over their characters
        error = "".join(c for c in error if c.isprintable())
    error = error[:MAX_ERROR_LENGTH]
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


def mo_dedupe_key(message: MoMessage, msisdn: str, text: str) -> str:
    """The identity of an MO's content, shared by an SMSC's resend and by the subscriber's
    identical message alike (which of the two it is, the acknowledgement decides; see the
    module docstring): sender, destination, the stored ``text``, and the references the PDU
    carries (user_message_reference, set by the handset; receipted_message_id, which some
    SMSCs add), so two messages that differ in them are never compared."""
    tlvs = message.pdu.tlvs if message.pdu is not None else {}
    refs = [
        tlvs.get(tag, b"").hex() for tag in (Tag.USER_MESSAGE_REFERENCE, Tag.RECEIPTED_MESSAGE_ID)
    ]
    basis = "|".join([msisdn, message.destination_addr, *refs, text])
    return hashlib.sha256(basis.encode()).hexdigest()


_UNENCODABLE = re.compile("[\ud800-\udfff]")


def storable_text(text: str) -> str:
    """``text`` as PostgreSQL stores it: NULs at either end dropped (the C-string padding some
    SMSCs send), others and lone surrogates (which UTF-8 cannot carry) as U+FFFD."""
    return _UNENCODABLE.sub("\ufffd", text.strip("\x00").replace("\x00", "\ufffd"))
