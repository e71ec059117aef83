"""The only caller of dispatch.sql: batches in, frozen rows out.

Campaign deliveries and program service messages live in two tables of one shape and go
through the same transitions, each written once in dispatch.sql as a ``-- for:`` template.
A method takes a batch of either kind, groups it by table, and runs each table's statement:
one round trip per table present, never one per message.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Generic, Protocol, TypeVar

import asyncpg

from campaigns.variants import texts_of
from dispatcher.kernel.sql import PerTable, SqlFile
from dispatcher.kernel.states import ContactKind, DeliveryState
from smpp.receipts import IdEvidence, IdFormat


class MessageTable(enum.StrEnum):
    """Where an outbound message lives; both tables have the columns transitions touch."""

    DELIVERIES = "deliveries"  # campaign recipients: eligibility and caps decided at claim
    SERVICE_MESSAGES = "service_messages"  # confirmations, bonus notices, survey follow-ups


IN_FLIGHT = DeliveryState.IN_FLIGHT.value


class DispatchSQL(SqlFile, domain="dispatch"):
    running_campaigns: str
    claim_campaign_batch: str
    claim_service_batch: str
    queue_bonus_notices: str
    plan_claim: str
    mark_in_flight: PerTable
    unclaim: PerTable
    record_chunk: PerTable
    insert_receipts: str
    register_id_format: str
    id_format_evidence: str
    learn_id_format: str
    plan_each_batch: str
    apply_receipts: str
    lock_messages: PerTable
    finish_messages: PerTable
    claimers: str
    node_lock: str
    node_try_lock: str
    node_unlock: str
    node_dead: str
    recover: PerTable


def _check_templates() -> None:
    """Every transition template covers exactly the outbound tables (checked at import)."""
    tables = set(MessageTable)
    for name, kind in DispatchSQL.__annotations__.items():
        if kind == "PerTable" and set(getattr(DispatchSQL, name)) != tables:
            raise RuntimeError(f"dispatch.sql: {name} must be '-- for:' {', '.join(tables)}")


_check_templates()


@dataclass(frozen=True, slots=True)
class CampaignRef:
    id: int
    kind: ContactKind
    texts: Mapping[str, str]
    apply_caps: bool
    #: what a blank variable renders as (campaigns.templates.fill_variables; migration 0031)
    variable_defaults: Mapping[str, str] = field(default_factory=dict)
    #: text variants [{"name", "texts", "percent"}] ([]: ``texts`` alone; migration 0039)
    variants: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> CampaignRef:
        return cls(
            id=row["id"],
            kind=ContactKind(row["kind"]),
            texts=row["texts"],  # jsonb: decoded by the pool's codec (dispatcher.db)
            apply_caps=row["apply_caps"],
            variable_defaults=row.get("variable_defaults") or {},
            variants=list(row.get("variants") or []),
        )

    def texts_for(self, variant: int | None) -> Mapping[str, str]:
        """The texts a recipient of ``variant`` is sent (campaigns/variants.py)."""
        return texts_of(self.texts, self.variants, variant)


@dataclass(frozen=True, slots=True)
class Sent:
    """What earlier tries of a message left (R14): the part numbers the SMSC accepted, the
    message's total and concatenation reference, and until when its missing parts may
    still follow. Empty for a message never tried or tried without a part accepted."""

    parts: frozenset[int] = frozenset()
    total: int | None = None
    reference: int | None = None
    until: datetime | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Sent:
        accepted = frozenset(row["sent_parts"] or ())
        if not accepted:
            return NOT_SENT
        return cls(accepted, row["parts"], row["concat_ref"], row["valid_until"])


NOT_SENT = Sent()


@dataclass(frozen=True, slots=True)
class Claimed:
    """One message claimed by this node: a campaign delivery or a service message."""

    id: int
    msisdn: str
    text: str
    language: str | None
    campaign_id: int | None
    kind: ContactKind | None  # the cap kind of a campaign delivery; None for service
    in_window: bool
    attempts: int = 0  # attempts used by earlier tries
    sent: Sent = NOT_SENT

    @property
    def table(self) -> MessageTable:
        return MessageTable.SERVICE_MESSAGES if self.kind is None else MessageTable.DELIVERIES

    @property
    def key(self) -> tuple[MessageTable, int]:
        """The message's identity across both tables."""
        return self.table, self.id

    @classmethod
    def service_message(cls, row: Mapping[str, Any]) -> Claimed:
        return cls(
            id=row["id"],
            msisdn=row["msisdn"],
            text=row["body"],
            language=row["language"],
            campaign_id=row["campaign_id"],
            kind=None,
            in_window=row["in_window"],
            attempts=row["attempts"],
            sent=Sent.from_row(row),
        )


@dataclass(frozen=True, slots=True)
class Recipient:
    """A campaign delivery as claimed, before the engine renders its text."""

    id: int
    msisdn: str
    language: str | None  # the subscriber's language, when known
    variables: Mapping[str, str]  # the audience file's columns for this recipient
    attempts: int = 0
    sent: Sent = NOT_SENT
    sent_language: str | None = None  # the language of the parts already sent
    variant: int | None = 0  # the text variant assigned at the audience's load (0039)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Recipient:
        return cls(
            id=row["id"],
            msisdn=row["msisdn"],
            language=row["language"],
            variables=row["variables"] or {},
            attempts=row["attempts"],
            sent=Sent.from_row(row),
            sent_language=row["sent_language"],
            variant=row.get("variant", 0),
        )


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Claim(Generic[T]):
    """What one claim statement did: rows claimed for sending, and rows it settled as
    suppressed (ineligible, over the cap) instead."""

    claimed: tuple[T, ...]
    suppressed: int

    @property
    def rows(self) -> int:
        """Rows the claim took from the queue."""
        return len(self.claimed) + self.suppressed


@dataclass(frozen=True, slots=True)
class MessageOutcome:
    """What to record for one message after its submits (see dispatcher.policy.submit.judge)."""

    message: Claimed
    state: DeliveryState
    status: int | None
    parts: int  # the message's total
    accepted: tuple[tuple[int, str], ...]  # (part number, message id) accepted this time
    error: str | None
    retry_at: datetime | None
    language: str | None
    attempt_used: bool = True
    reference: int | None = None  # the concatenation reference of a multipart message
    valid_until: datetime | None = None  # until when its missing parts may follow

    @property
    def table(self) -> MessageTable:
        return self.message.table


@dataclass(frozen=True, slots=True)
class ReceiptIn:
    """What is stored of one receipt: its id's readings (smpp.receipts.IdReadings), state,
    error, done time and subscriber (None when the source address is not a number)."""

    message_id: str
    state: str
    error_code: str | None
    done_at: datetime | None
    id_hex: str | None = None
    id_dec: str | None = None
    msisdn: str | None = None


@dataclass(frozen=True, slots=True)
class IdFormatEvidence:
    """One SMSC set to auto: what detection has found so far, and what its latest
    receipts say (see :func:`smpp.receipts.detect_id_format`)."""

    smsc: str
    detected: IdFormat | None
    evidence: IdEvidence

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> IdFormatEvidence:
        detected = row["detected"]
        return cls(
            smsc=row["smsc"],
            detected=IdFormat(detected) if detected is not None else None,
            evidence=IdEvidence(
                row["receipts"], row["as_is"], row["hex_response"], row["decimal_response"]
            ),
        )


@dataclass(frozen=True, slots=True)
class ReceiptsApplied:
    """One pass of the receipt applier."""

    seen: int  # receipts looked at
    matched: int  # of which matched a submit
    messages: int  # messages updated (parts counted, or finished)
    #: Receipts matched to a part sent to another number than their source address
    #: (issue 13): (receipt id, the receipt's subscriber, the part's number).
    mismatches: tuple[tuple[int, str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Recovered:
    """What recovery did with a dead node's rows."""

    requeued: int  # claimed: back to the queue
    unknown: int  # in flight: may have reached the SMSC, never resent


class DispatchRepository:
    def __init__(self, pool: asyncpg.Pool, node: str, smsc: str) -> None:
        self._pool = pool
        self.node = node
        self.smsc = smsc

    async def running_campaigns(self) -> list[CampaignRef]:
        rows = await self._pool.fetch(DispatchSQL.running_campaigns)
        return [CampaignRef.from_row(r) for r in rows]

    async def claim_campaign(
        self, campaign_id: int, limit: int, now: datetime, month: date, caps: tuple[int, int]
    ) -> Claim[Recipient]:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(DispatchSQL.plan_claim)
            rows = await conn.fetch(
                DispatchSQL.claim_campaign_batch, campaign_id, limit, now, self.node, month, *caps
            )
        return _claim(rows, Recipient.from_row)

    async def claim_service(self, limit: int, now: datetime, window_open: bool) -> Claim[Claimed]:
        """Claims up to ``limit`` queued service messages; when fewer are queued, first
        queues the monthly grant's next notices (derived from its grant rows, migration 0023:
        queue_bonus_notices) up to the shortfall and claims again."""
        rows = await self._pool.fetch(
            DispatchSQL.claim_service_batch, now, limit, self.node, window_open
        )
        if len(rows) < limit and await self._pool.fetchval(
            DispatchSQL.queue_bonus_notices, limit - len(rows), window_open
        ):
            rows += await self._pool.fetch(
                DispatchSQL.claim_service_batch, now, limit - len(rows), self.node, window_open
            )
        return _claim(rows, Claimed.service_message)

    async def mark_in_flight(
        self, messages: Sequence[Claimed], now: datetime
    ) -> set[tuple[MessageTable, int]]:
        """Mark ``messages`` in flight; returns the keys of those that were.

        One statement per table (see mark_in_flight in dispatch.sql), which first shares the
        subscribers' row locks, so a leave or 1204 that is committing finishes before (and
        its suppression wins), and one that starts waits for this; campaign deliveries whose
        campaign stopped running since the claim are held back by the same statement. A
        chunk of one table (every chunk of a campaign) is that statement alone, atomic by
        itself: no BEGIN and COMMIT round trips.
        """
        by_table = _by_table(messages)
        msisdns = sorted({m.msisdn for m in messages})
        marked: set[tuple[MessageTable, int]] = set()
        async with self._pool.acquire() as conn, contextlib.AsyncExitStack() as stack:
            if len(by_table) > 1:
                await stack.enter_async_context(conn.transaction())
            for table, batch in by_table.items():
                campaigns = [m.campaign_id if m.kind is not None else None for m in batch]
                rows = await conn.fetch(
                    DispatchSQL.mark_in_flight[table],
                    _ids(batch),
                    self.node,
                    msisdns,
                    now,
                    campaigns,
                )
                marked |= {(table, r["id"]) for r in rows if r["state"] == IN_FLIGHT}
        return marked

    async def unclaim(self, messages: Sequence[Claimed]) -> None:
        """Claimed messages this node will not send now go back to the queue."""
        async with self._pool.acquire() as conn, conn.transaction():
            for table, batch in _by_table(messages).items():
                await conn.execute(DispatchSQL.unclaim[table], _ids(batch), self.node)

    @staticmethod
    def records_alone(outcomes: Sequence[MessageOutcome]) -> bool:
        """Whether :meth:`record` of ``outcomes`` is one statement (one table, nothing for
        finish_messages), which needs no transaction around it."""
        return len(_by_table(outcomes)) == 1 and not any(_settles(o) for o in outcomes)

    async def record(
        self, conn: asyncpg.Connection, outcomes: Sequence[MessageOutcome], now: datetime
    ) -> list[MessageOutcome]:
        """Record a batch of outcomes and their accepted parts (a failed message's cap slot
        goes back by trigger): inside ``conn``'s transaction, or on its own when
        :meth:`records_alone` says so. Returns the outcomes recorded: a message no longer
        in flight (a repeat) is left as it is and left out."""
        recorded: set[tuple[MessageTable, int]] = set()
        for table, batch in _by_table(outcomes).items():
            rows = await conn.fetch(
                DispatchSQL.record_chunk[table], *_columns(batch), now, self.smsc, *_parts(batch)
            )
            recorded |= {(table, r["id"]) for r in rows}
        done = [o for o in outcomes if o.message.key in recorded]
        # A message whose last part was just accepted may have had its other parts'
        # receipts already (they came while this part waited): settle it now, from a
        # snapshot taken after record_chunk's lock (see dispatch.sql). A message whose parts
        # were all accepted now has none: their submits rows are not committed yet.
        for table, batch in _by_table(done).items():
            ids = [o.message.id for o in batch if _settles(o)]
            if ids:
                await conn.execute(DispatchSQL.finish_messages[table], ids, now)
        return done

    async def insert_receipts(self, receipts: Sequence[ReceiptIn], now: datetime) -> None:
        await self._pool.execute(
            DispatchSQL.insert_receipts,
            self.smsc,
            [r.message_id for r in receipts],
            [r.state for r in receipts],
            [r.error_code for r in receipts],
            [r.done_at for r in receipts],
            now,
            [r.id_hex for r in receipts],
            [r.id_dec for r in receipts],
            [r.msisdn for r in receipts],
        )

    async def register_id_format(self, setting: IdFormat) -> None:
        """Record this engine's id format setting for its SMSC (at start)."""
        await self._pool.execute(DispatchSQL.register_id_format, self.smsc, setting.value)

    async def id_format_evidence(self, receipts: int, scanned: int) -> list[IdFormatEvidence]:
        """For each SMSC set to auto, what its latest ``receipts`` receipts say, among the
        latest ``scanned`` receipts of all SMSCs."""
        rows = await self._pool.fetch(DispatchSQL.id_format_evidence, receipts, scanned)
        return [IdFormatEvidence.from_row(r) for r in rows]

    async def learn_id_format(self, smsc: str, detected: IdFormat, now: datetime) -> None:
        """Keep what detection found for ``smsc``; its waiting receipts are looked at again."""
        await self._pool.execute(DispatchSQL.learn_id_format, smsc, detected.value, now)

    async def apply_receipts(
        self,
        limit: int,
        now: datetime,
        recheck: datetime,
        give_up: datetime,
        refuse_mismatch: bool = False,
    ) -> ReceiptsApplied:
        """Apply up to ``limit`` receipts to their parts, then finish the messages they
        settle, in one transaction; unmatched receipts are looked at again after
        ``recheck``, and dropped once received before ``give_up``. A receipt whose source
        address is not its part's number is reported, and refused if ``refuse_mismatch``."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(DispatchSQL.plan_each_batch)
            rows = await conn.fetch(
                DispatchSQL.apply_receipts, limit, now, recheck, give_up, refuse_mismatch
            )
            touched = [r for r in rows if r["tbl"] is not None]
            messages = 0
            for table in MessageTable:
                ids = [r["id"] for r in touched if r["tbl"] == table]
                if ids:
                    await conn.execute(DispatchSQL.lock_messages[table], ids)
                    finished = await conn.fetch(DispatchSQL.finish_messages[table], ids, now)
                    messages += len(finished)
        head = rows[0]
        mismatches = tuple(
            zip(
                head["mismatched"],
                head["mismatched_sources"],
                head["mismatched_numbers"],
                strict=True,
            )
        )
        return ReceiptsApplied(head["seen"], head["matched"], messages, mismatches)

    async def claimers(self) -> list[str]:
        """Nodes holding claimed or in-flight rows."""
        return [r["claimed_by"] for r in await self._pool.fetch(DispatchSQL.claimers)]

    async def recover_node(self, conn: asyncpg.Connection, node: str, now: datetime) -> Recovered:
        """A dead ``node``'s rows, inside ``conn``'s transaction: claimed ones back to the
        queue, in-flight ones unknown (invariant 2)."""
        requeued = unknown = 0
        for table in MessageTable:
            row = await conn.fetchrow(DispatchSQL.recover[table], node, now)
            requeued += row["requeued"]
            unknown += row["unknown"]
        return Recovered(requeued, unknown)


class _OnTable(Protocol):
    @property
    def table(self) -> MessageTable: ...


Item = TypeVar("Item", bound=_OnTable)


def _claim(rows: Sequence[Mapping[str, Any]], make: Callable[[Mapping[str, Any]], T]) -> Claim[T]:
    claimed = tuple(make(r) for r in rows if r["state"] == DeliveryState.CLAIMED)
    return Claim(claimed, len(rows) - len(claimed))


def _by_table(items: Iterable[Item]) -> dict[MessageTable, list[Item]]:
    """``items`` grouped by their message's table, in order of first appearance."""
    groups: dict[MessageTable, list[Item]] = {}
    for item in items:
        groups.setdefault(item.table, []).append(item)
    return groups


def _ids(messages: Sequence[Claimed]) -> list[int]:
    return [m.id for m in messages]


def _settles(outcome: MessageOutcome) -> bool:
    """Whether recording ``outcome`` may finish its message at once: submitted with parts
    accepted by earlier tries, whose receipts may have come already."""
    return outcome.state is DeliveryState.SUBMITTED and bool(outcome.message.sent.parts)


def _parts(outcomes: Sequence[MessageOutcome]) -> tuple[list[Any], ...]:
    """record_chunk's $13-$17 arrays: the accepted parts of one table's outcomes."""
    parts = [(message_id, o, part) for o in outcomes for part, message_id in o.accepted]
    return (
        [message_id for message_id, _, _ in parts],
        [o.message.id for _, o, _ in parts],
        [o.message.msisdn for _, o, _ in parts],
        [part for _, _, part in parts],
        [o.parts for _, o, _ in parts],
    )


def _columns(outcomes: Sequence[MessageOutcome]) -> tuple[list[Any], ...]:
    """record_chunk's $1-$10 arrays."""
    return (
        [o.message.id for o in outcomes],
        [o.state.value for o in outcomes],
        [o.status for o in outcomes],
        [o.parts for o in outcomes],
        [o.error for o in outcomes],
        [o.retry_at for o in outcomes],
        [o.language for o in outcomes],
        [int(o.attempt_used) for o in outcomes],
        [o.reference for o in outcomes],
        [o.valid_until for o in outcomes],
    )
