"""The dispatch loop: claim → in flight → submit → record, at most once per message.

A message's life on this node:

1. **claim** (one statement per batch): eligibility and the cap slot are decided in the
   database, so two nodes can never pass a cap;
2. **in flight** (one transaction per chunk, under the subscribers' share locks): the row is
   marked *before* its PDUs are written. At most ``window`` parts are in flight at once, so
   after a crash at most one SMPP window of messages can be ``unknown`` (invariant 2);
3. **submit** through the SMPP session, all parts concurrently, each only while the send
   window is open by the service's clock (R8: the session checks right before it writes);
4. **record** the chunk's outcomes, accepted parts and released cap slots in one
   transaction, then free the window slots.

Near the close a pass claims no more than the granted TPS can write before it, and a
message is not started unless all its parts fit; a part that could not be written in time
waits for the next window without using an attempt. A long message keeps the parts the SMSC
accepted and its concatenation reference: a retry sends only the missing parts (R14).

``run_once()`` does one pass and returns how much it did, so tests drive it with a
``ManualClock`` and never sleep; ``run()`` loops it, waking on :meth:`wake` or a poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import asyncpg
import structlog

from campaigns.templates import message_text
from dispatcher.engine.nodes import NodeLock, new_node_id, recover_dead
from dispatcher.engine.repository import (
    CampaignRef,
    Claim,
    Claimed,
    DispatchRepository,
    MessageOutcome,
    Recipient,
)
from dispatcher.kernel.clock import Clock
from dispatcher.kernel.states import ContactKind, DeliveryState
from dispatcher.policy.submit import (
    PART_RETRY_LIMIT,
    NotWritten,
    PartOutcome,
    fitting,
    judge,
    writable_parts,
)
from dispatcher.policy.waiting import waits_for_window
from dispatcher.settings import Settings
from smpp.config import Address
from smpp.errors import DeadlinePassed
from smpp.outcome import Outcome
from smpp.text import Part, ReferenceCounter, encode_message

log = structlog.get_logger(__name__)


class Sender(Protocol):
    """What the engine needs of an SMPP session."""

    async def submit(
        self,
        part: Part,
        *,
        source: Address,
        destination: Address,
        validity_period: str = "",
        bind_timeout: float | None = None,
        write_if: Callable[[], bool] | None = None,
    ) -> Outcome: ...


@dataclass(frozen=True, slots=True)
class Encoded:
    """A message's text as parts: its total, the concatenation reference (None for one
    part), and the parts still to send (numbered from 1), or why it cannot be sent."""

    total: int
    reference: int | None
    parts: tuple[tuple[int, Part], ...]
    error: str | None = None


#: How long a submit marked in flight may wait for a lost bind to come back before it is
#: given up unwritten (and the message goes back to the queue, no attempt used).
BIND_WAIT = 2.0


#: Called inside the recording transaction with the survey deliveries just submitted:
#: opens their survey sessions (R13) in the same commit.
SubmittedHook = Callable[[asyncpg.Connection, Sequence[MessageOutcome], datetime], Awaitable[None]]

#: The slowest pace assumed for a long message's parts before the close (a node whose share
#: of the grant is 0 while it waits for one).
MIN_PACE_TPS = 0.01

#: A claim that took nothing.
NOTHING: Claim[Claimed] = Claim((), 0)


@dataclass(frozen=True)
class EngineConfig:
    batch_size: int = 500
    window: int = 64  # parts in flight at once: the SMPP window of the session(s)
    # Messages marked in flight per statement; 0: half the window, so while one chunk is
    # being recorded the next is already on the wire (issue 16: a quarter, 16 of 64, spent
    # twice the statements a message on marking and recording for no more throughput).
    chunk: int = 0
    poll_interval: float = 1.0


class Dispatcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        clock: Clock,
        sender: Sender,
        *,
        smsc: str = "default",
        node: str | None = None,
        config: EngineConfig | None = None,
        on_submitted: SubmittedHook,
        ready: Callable[[], bool],
        tps: Callable[[], float] | None = None,
    ) -> None:
        """Built by :func:`dispatcher.engine.build.build_engine`. ``on_submitted`` opens the
        survey sessions of surveys just accepted, in the recording transaction; ``ready``
        says whether the sender can write now (the SMPP session is bound): while it cannot,
        nothing is claimed or marked in flight, so a crash during an SMSC outage leaves no
        message unknown that was never written. ``tps`` gives the submits/s this node may
        send at now (its live share of the account's grant; default ``SMARTD_SMPP_TPS``)."""
        self.config = config or EngineConfig(window=settings.smpp_window)
        self._ready = ready
        self._tps = tps or (lambda: settings.smpp_tps)
        self.node = node or new_node_id()
        self.repo = DispatchRepository(pool, self.node, smsc)
        self._pool = pool
        self._settings = settings
        self._clock = clock
        self._sender = sender
        self._on_submitted = on_submitted
        self._source = Address.short_code(settings.short_code)
        self._refs = ReferenceCounter(start=random.randrange(256))
        self._slots = asyncio.Semaphore(self.config.window)
        self._pending = 0  # parts handed to the sender and not yet resolved
        self._wake = asyncio.Event()
        self._lock = NodeLock(pool, self.node)
        self.log = log.bind(node=self.node)

    # -- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Announce this node (its advisory lock) and recover rows of nodes that died."""
        await self._lock.hold()
        await self.recover()

    async def close(self) -> None:
        await self._lock.release()

    @property
    def holds_node(self) -> bool:
        """Whether this node's liveness lock is still held (its connection is open)."""
        return self._lock.alive()

    async def ensure_node(self) -> None:
        """Re-announce this node if its lock connection was lost (the database restarted).

        The old node id's lock is gone with that connection, so it is treated as a dead node
        from then on: its claimed rows go back to the queue and its in-flight rows become
        unknown — the same as after a crash, and for the same reason: what was in flight may
        have reached the SMSC. The engine carries on under a new node id.
        """
        if self.holds_node:
            return
        await self.close()
        old = self.node
        self.node = self.repo.node = new_node_id()
        self._lock = NodeLock(self._pool, self.node)
        self.log = log.bind(node=self.node)
        await self.start()
        self.log.warning("database connection lost: node renewed", previous_node=old)

    def wake(self) -> None:
        """Ask the loop to look for work now (a campaign started, a message queued)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Loop until ``stop``: the same claim and send as :meth:`run_once`, with the next
        batch claimed while the current one is sent, and started as soon as the window has
        room: its first chunks are marked and waiting for the pacer while the last chunks of
        the batch before are still being written and recorded (the pipe to the SMSC never
        drains between batches). Idle passes wait for :meth:`wake` or a poll."""
        ahead: asyncio.Task[Claim[Claimed]] | None = None
        tail: asyncio.Future[Any] | None = None  # the last batch's chunks, still on their way
        while not stop.is_set():
            try:
                if not self.holds_node:  # its rows are this node's: done before it is renewed
                    await _finish(tail)
                    tail = None
                await self.ensure_node()
                claim = await (ahead or asyncio.ensure_future(self.claim_once()))
                ahead = None
                done = claim.rows
                if claim.claimed:
                    ahead = asyncio.ensure_future(self.claim_once())
                    held, sending = await self._start_sending(claim.claimed)
                    done -= held
                    # (mostly done by now: this batch's chunks took the slots the last one freed)
                    previous, tail = tail, sending
                    await _finish(previous)
                else:
                    await _finish(tail)
                    tail = None
            except Exception as exc:  # the loop must outlive any one pass
                # Rows this pass held may be stuck claimed or in flight under this node id:
                # retire it, so the next pass takes a new one and recovers the old like a
                # dead node's (claimed → queued, in flight → unknown).
                expected = isinstance(exc, OSError | asyncpg.PostgresError | asyncpg.InterfaceError)
                self.log.warning(
                    "dispatch pass failed; retiring node", error=repr(exc), exc_info=not expected
                )
                await _drop(ahead)
                ahead = None
                await _settle(tail)  # chunks on their way end (recorded if they can be)
                tail = None
                await self.close()
                done = 0
            if done:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.poll_interval):
                    await _first(stop.wait(), self._wake.wait())
        await _drop(ahead)
        await _settle(tail)

    # -- one pass -----------------------------------------------------------------------

    async def run_once(self) -> int:
        """Claim one batch (service messages first, then campaigns by priority) and send it.
        Returns the number of rows handled (sent or suppressed; not those put back unsent
        because they could not be written before the window closes)."""
        claim = await self.claim_once()
        if not claim.claimed:
            return claim.rows
        return claim.rows - await self.send(claim.claimed)

    async def claim_once(self) -> Claim[Claimed]:
        """Claim one batch now (service messages first, then campaigns by priority) without
        sending it: the claimed messages are this node's until :meth:`send` (or recovery)."""
        if not self._ready() or self._tps() <= 0:
            # no bind, or no share of the account's grant (yet, or standing by beyond its
            # binds): claim nothing rather than hold rows we cannot write
            return NOTHING
        now = self._clock.now()
        window_open = self._settings.calendar.is_open(now)
        return await self._claim(now, window_open)

    async def _claim(self, now: datetime, window_open: bool) -> Claim[Claimed]:
        limit = self.config.batch_size
        budget = self._budget(now)
        if budget is not None and budget <= 0:
            window_open = False  # nothing more can be written before the close
        elif budget is not None:
            limit = min(limit, budget)  # each message is at least one part
        service = await self.repo.claim_service(limit, now, window_open)
        if service.rows or not window_open:
            return service
        month = self._settings.calendar.month_of(now)
        caps = (self._settings.info_cap, self._settings.survey_cap)
        for campaign in await self.repo.running_campaigns():
            claim = await self.repo.claim_campaign(campaign.id, limit, now, month, caps)
            if claim.rows:
                messages = tuple(self._delivery(campaign, r) for r in claim.claimed)
                return Claim(messages, claim.suppressed)
        return NOTHING

    def _budget(self, now: datetime) -> int | None:
        """Parts that can still be written before the window closes at the granted TPS, less
        those already waiting in the sender (None: the window is shut, no close to meet)."""
        calendar = self._settings.calendar
        writable = writable_parts(now, calendar.closes_at(now), self._tps())
        return None if writable is None else writable - self._pending

    def _delivery(self, campaign: CampaignRef, recipient: Recipient) -> Claimed:
        # A retry of missing parts is written in the language its other parts went in.
        preferred = recipient.sent_language if recipient.sent.parts else recipient.language
        language, text = message_text(  # "" is judged failed below
            campaign.texts_for(recipient.variant),
            preferred,
            recipient.variables,
            self._settings.default_language,
            campaign.variable_defaults,
        )
        return Claimed(
            id=recipient.id,
            msisdn=recipient.msisdn,
            text=text,
            language=language,
            campaign_id=campaign.id,
            kind=campaign.kind,
            in_window=waits_for_window(campaign.kind),  # R8: always, for partner kinds
            attempts=recipient.attempts,
            sent=recipient.sent,
        )

    # -- sending --------------------------------------------------------------------------

    async def send(self, messages: Sequence[Claimed]) -> int:
        """Send claimed messages in chunks whose parts fit the window: never more parts in
        flight than the window, so a crash leaves at most one window of unknowns. Messages
        bound to the send window whose parts cannot all be written before it closes go back
        to the queue unstarted. Returns how many went back so."""
        held, sending = await self._start_sending(messages)
        await sending
        return held

    async def _start_sending(self, messages: Sequence[Claimed]) -> tuple[int, asyncio.Future[Any]]:
        """Start :meth:`send`: returns once every chunk has its window slots and is on its
        way, with how many messages went back to the queue and the chunks' completion."""
        encoded = [self._encode(m) for m in messages]
        sending, encoded = await self._fit(messages, encoded)
        tasks = []
        for chunk, parts, need in self._chunks(sending, encoded):
            for _ in range(need):
                await self._slots.acquire()
            tasks.append(asyncio.create_task(self._send_chunk(chunk, parts, need)))
        return len(messages) - len(sending), asyncio.gather(*tasks)

    async def _fit(
        self, messages: Sequence[Claimed], encoded: Sequence[Encoded]
    ) -> tuple[list[Claimed], list[Encoded]]:
        """The messages to send now; the window-bound ones beyond the TPS budget before the
        close (whole messages, in order) are unclaimed."""
        budget = self._budget(self._clock.now())
        bound = [i for i, m in enumerate(messages) if m.in_window]
        fit = fitting([len(encoded[i].parts) for i in bound], budget)
        held = {i for i in bound[fit:]}
        if held:
            await self.repo.unclaim([messages[i] for i in sorted(held)])
        keep = [i for i in range(len(messages)) if i not in held]
        return [messages[i] for i in keep], [encoded[i] for i in keep]

    def _chunks(
        self, messages: Sequence[Claimed], encoded: Sequence[Encoded]
    ) -> Iterator[tuple[list[Claimed], list[Encoded], int]]:
        """Greedy chunks of at most ``chunk`` messages and ``window`` parts (a message longer
        than the window goes alone and holds the whole window)."""
        window = self.config.window
        size = self.config.chunk or max(1, window // 2)
        chunk: list[Claimed] = []
        parts_of: list[Encoded] = []
        parts = 0
        for message, message_parts in zip(messages, encoded, strict=True):
            cost = max(1, min(len(message_parts.parts), window))
            if chunk and (parts + cost > window or len(chunk) >= size):
                yield chunk, parts_of, parts
                chunk, parts_of, parts = [], [], 0
            chunk.append(message)
            parts_of.append(message_parts)
            parts += cost
        if chunk:
            yield chunk, parts_of, parts

    def _encode(self, message: Claimed) -> Encoded:
        """The message's parts still to send: all of them, or for a retry those the SMSC has
        not accepted, with the reference the others went out with."""
        sent = message.sent
        reference = sent.reference if sent.reference is not None else self._refs.next()
        try:
            parts = encode_message(message.text, reference=reference) if message.text else []
        except ValueError:
            parts = []
        if not parts:
            return Encoded(0, None, (), "text cannot be rendered or encoded")
        total = len(parts)
        if sent.total is not None and sent.total != total:
            return Encoded(sent.total, sent.reference, (), "text changed between parts")
        missing = tuple((n, p) for n, p in enumerate(parts, 1) if n not in sent.parts)
        return Encoded(total, reference if total > 1 else None, missing)

    async def _send_chunk(
        self, chunk: Sequence[Claimed], encoded: Sequence[Encoded], slots: int
    ) -> None:
        try:
            now = self._clock.now()
            calendar = self._settings.calendar
            closes = calendar.closes_at(now)
            validity = calendar.validity_until(now)
            ready = self._ready()
            sendable: list[Claimed] = []
            held: list[Claimed] = []
            for m in chunk:
                can = ready and (closes is not None or not m.in_window)
                (sendable if can else held).append(m)
            if held:  # the window closed or the bind dropped since the claim: back to the queue
                await self.repo.unclaim(held)
            marked = await self.repo.mark_in_flight(sendable, now) if sendable else set()
            # once a chunk, not once a message: the calendar's answers depend on now alone
            next_window = calendar.next_open(closes) if closes is not None else None
            jobs = [
                self._submit(m, parts, validity if m.in_window else None, closes, next_window, now)
                for m, parts in zip(chunk, encoded, strict=True)
                if m.key in marked
            ]
            outcomes = await asyncio.gather(*jobs)
            await self._record(outcomes)
        finally:
            for _ in range(slots):
                self._slots.release()

    async def _submit(
        self,
        message: Claimed,
        encoded: Encoded,
        validity: str | None,
        closes: datetime | None,
        opens: datetime | None,
        now: datetime,
    ) -> MessageOutcome:
        """Submit the message's parts still to send; a window-bound one only while the window
        is open by the service clock (the session asks right before each write). ``opens``:
        when the window opens next after ``closes``."""
        deadlines: list[datetime | None] = [None] * len(encoded.parts)
        next_window: datetime | None = None
        if message.in_window and closes is not None:
            retry_until = message.sent.until or closes
            next_window = opens
            # A part is written only while the parts after it can still follow before the
            # close at the granted TPS: a message is not started that cannot end in time.
            pace = timedelta(seconds=1 / max(self._tps(), MIN_PACE_TPS))
            last = len(encoded.parts) - 1
            deadlines = [closes - pace * (last - i) for i in range(len(encoded.parts))]
        else:
            retry_until = message.sent.until or now + PART_RETRY_LIMIT
        if encoded.error is not None:
            return self._unsent(message, encoded, encoded.error)
        if message.sent.until is not None and now >= retry_until:
            return self._unsent(message, encoded, "parts missing at the end of their validity")
        destination = Address.international(message.msisdn)
        self._pending += len(encoded.parts)
        try:
            if len(encoded.parts) == 1:  # most messages: no task and gather of one
                results: Sequence[PartOutcome] = (
                    await self._submit_part(
                        encoded.parts[0][1], destination, validity or "", deadlines[0]
                    ),
                )
            else:
                results = await asyncio.gather(
                    *(
                        self._submit_part(part, destination, validity or "", deadline)
                        for (_, part), deadline in zip(encoded.parts, deadlines, strict=True)
                    )
                )
        finally:
            self._pending -= len(encoded.parts)
        tried = {n: r for (n, _), r in zip(encoded.parts, results, strict=True)}
        verdict = judge(
            tried,
            message.attempts,
            self._clock.now(),
            parts=encoded.total,
            sent_before=message.sent.parts,
            next_window=next_window,
            retry_until=retry_until,
        )
        accepted_ever = bool(message.sent.parts) or bool(verdict.accepted)
        return MessageOutcome(
            message=message,
            state=verdict.state,
            status=verdict.status,
            parts=encoded.total,
            accepted=verdict.accepted,
            error=verdict.error,
            retry_at=verdict.retry_at,
            language=message.language,
            attempt_used=verdict.attempt_used,
            # kept only with parts out: a retry without any sends a fresh message
            reference=encoded.reference if accepted_ever else None,
            valid_until=retry_until if accepted_ever else None,
        )

    def _before(self, deadline: datetime) -> bool:
        """Whether the service clock is still before ``deadline`` (by a window's close)."""
        return self._clock.now() < deadline

    def _unsent(self, message: Claimed, encoded: Encoded, error: str) -> MessageOutcome:
        """A message given up without writing anything: failed, or undelivered when some of
        its parts went out before (it can never be whole)."""
        state = DeliveryState.UNDELIVERED if message.sent.parts else DeliveryState.FAILED
        return MessageOutcome(
            message=message,
            state=state,
            status=None,
            parts=encoded.total,
            accepted=(),
            error=error,
            retry_at=None,
            language=message.language,
        )

    async def _submit_part(
        self,
        part: Part,
        destination: Address,
        validity: str,
        deadline: datetime | None,
    ) -> PartOutcome:
        write_if = None if deadline is None else functools.partial(self._before, deadline)
        try:
            return await self._sender.submit(
                part,
                source=self._source,
                destination=destination,
                validity_period=validity,
                bind_timeout=BIND_WAIT,
                write_if=write_if,
            )
        except DeadlinePassed:  # the window closed before its turn: nothing was written
            return NotWritten(window_closed=True)
        except Exception as exc:  # the session raises only when nothing was written
            self.log.warning("submit not written", error=repr(exc))
            return NotWritten(window_closed=False)  # retried soon, no attempt used

    async def _record(self, outcomes: Sequence[MessageOutcome]) -> None:
        if not outcomes:
            return
        now = self._clock.now()
        surveys_possible = any(
            o.state is DeliveryState.SUBMITTED and o.message.kind is ContactKind.SURVEY
            for o in outcomes
        )
        if not surveys_possible and self.repo.records_alone(outcomes):
            # one statement, atomic by itself: no BEGIN and COMMIT round trips
            async with self._pool.acquire() as conn:
                await self.repo.record(conn, outcomes, now)
        else:
            await self._record_in_transaction(outcomes, now)
        unknown = sum(o.state is DeliveryState.UNKNOWN for o in outcomes)
        if unknown:
            self.log.warning("messages with unknown fate", count=unknown)

    async def _record_in_transaction(
        self, outcomes: Sequence[MessageOutcome], now: datetime
    ) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            recorded = await self.repo.record(conn, outcomes, now)
            surveys = [
                o
                for o in recorded
                if o.state is DeliveryState.SUBMITTED and o.message.kind is ContactKind.SURVEY
            ]
            if surveys:
                await self._on_submitted(conn, surveys, now)

    # -- recovery -------------------------------------------------------------------------

    async def recover(self) -> dict[str, int]:
        """Requeue what dead nodes claimed; mark what they had in flight unknown."""
        claimers = await self.repo.claimers()
        totals = await recover_dead(self._pool, self.repo, claimers, self.node, self._clock.now())
        if any(totals.values()):
            self.log.warning("recovered rows of dead nodes", **totals)
        return totals


async def _drop(task: asyncio.Task[Claim[Claimed]] | None) -> None:
    """Cancel a claim made ahead; rows it did claim stay claimed by this node until recovery
    (at start-up, or by a peer once this node is gone) puts them back in the queue."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


async def _finish(sending: asyncio.Future[Any] | None) -> None:
    """Wait for a batch's chunks to end; their first error is raised."""
    if sending is not None:
        await sending


async def _settle(sending: asyncio.Future[Any] | None) -> None:
    """Wait for a batch's chunks to end after a failed pass; their errors were the pass's."""
    if sending is not None:
        with contextlib.suppress(Exception):
            await sending


async def _first(*aws: Awaitable[Any]) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
