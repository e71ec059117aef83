"""The only caller of dispatch.sql: batches in, frozen rows out."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from dispatcher.kernel.sql import SqlFile
from dispatcher.kernel.states import ContactKind, DeliveryState


class DispatchSQL(SqlFile, domain="dispatch"):
    running_campaigns: str
    claim_campaign_batch: str
    claim_service_batch: str
    lock_subscribers_shared: str
    mark_deliveries_in_flight: str
    mark_service_in_flight: str
    unclaim_deliveries: str
    unclaim_service: str
    record_delivery_outcomes: str
    record_service_outcomes: str
    insert_submits: str
    insert_receipts: str
    apply_receipts: str
    claimers: str
    node_lock: str
    node_try_lock: str
    node_unlock: str
    recover_deliveries: str
    recover_service: str


@dataclass(frozen=True, slots=True)
class CampaignRef:
    id: int
    kind: ContactKind
    texts: Mapping[str, str]
    apply_caps: bool

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> CampaignRef:
        texts = row["texts"]
        return cls(
            id=row["id"],
            kind=ContactKind(row["kind"]),
            texts=json.loads(texts) if isinstance(texts, str) else texts,
            apply_caps=row["apply_caps"],
        )


@dataclass(frozen=True, slots=True)
class Claimed:
    """One message claimed by this node: a campaign delivery or a service message."""

    id: int
    msisdn: str
    text: str
    language: str | None
    campaign_id: int | None
    kind: ContactKind | None  # the cap kind of a campaign delivery; None for service
    cap_month: date | None
    in_window: bool
    attempts: int = 0

    @property
    def is_service(self) -> bool:
        return self.kind is None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to record for one message (see dispatcher.engine.policy.judge)."""

    message: Claimed
    state: DeliveryState
    status: int | None
    parts: int
    accepted: tuple[tuple[int, str], ...]
    error: str | None
    retry_at: datetime | None
    language: str | None


@dataclass(frozen=True, slots=True)
class ReceiptIn:
    message_id: str
    state: str
    error_code: str | None
    done_at: datetime | None


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
    ) -> list[asyncpg.Record]:
        return list(
            await self._pool.fetch(
                DispatchSQL.claim_campaign_batch, campaign_id, limit, now, self.node, month, *caps
            )
        )

    async def claim_service(
        self, limit: int, now: datetime, window_open: bool
    ) -> list[asyncpg.Record]:
        return list(
            await self._pool.fetch(
                DispatchSQL.claim_service_batch, now, limit, self.node, window_open
            )
        )

    async def mark_in_flight(
        self, messages: Sequence[Claimed], now: datetime
    ) -> set[tuple[bool, int]]:
        """Mark ``messages`` in flight; returns the (is_service, id) pairs that were.

        Shares the subscribers' row locks first, so a leave or 1204 that is committing
        finishes before (and its suppression wins), and one that starts waits for this.
        """
        deliveries = [m.id for m in messages if not m.is_service]
        service = [m.id for m in messages if m.is_service]
        msisdns = sorted({m.msisdn for m in messages})
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(DispatchSQL.lock_subscribers_shared, msisdns)
            marked = (
                {
                    (False, r["id"])
                    for r in await conn.fetch(
                        DispatchSQL.mark_deliveries_in_flight, deliveries, self.node, now
                    )
                }
                if deliveries
                else set()
            )
            if service:
                marked |= {
                    (True, r["id"])
                    for r in await conn.fetch(
                        DispatchSQL.mark_service_in_flight, service, self.node
                    )
                }
        return marked

    async def unclaim(self, messages: Sequence[Claimed]) -> None:
        deliveries = [m.id for m in messages if not m.is_service]
        service = [m.id for m in messages if m.is_service]
        async with self._pool.acquire() as conn, conn.transaction():
            if deliveries:
                await conn.execute(DispatchSQL.unclaim_deliveries, deliveries, self.node)
            if service:
                await conn.execute(DispatchSQL.unclaim_service, service, self.node)

    async def record(
        self, conn: asyncpg.Connection, outcomes: Sequence[Outcome], now: datetime
    ) -> list[asyncpg.Record]:
        """Record a batch of outcomes, their accepted parts, and released cap slots, inside
        ``conn``'s transaction. Returns the campaign rows whose state changed."""
        campaign = [o for o in outcomes if not o.message.is_service]
        service = [o for o in outcomes if o.message.is_service]
        changed: list[asyncpg.Record] = []
        if campaign:
            changed = list(
                await conn.fetch(
                    DispatchSQL.record_delivery_outcomes,
                    *_columns(campaign),
                    now,
                    [o.language for o in campaign],
                )
            )
        if service:
            await conn.execute(DispatchSQL.record_service_outcomes, *_columns(service), now)
        await self._insert_submits(conn, outcomes, now)
        return changed

    async def _insert_submits(
        self, conn: asyncpg.Connection, outcomes: Sequence[Outcome], now: datetime
    ) -> None:
        rows = [
            (message_id, o.message, part, o.parts)
            for o in outcomes
            for part, message_id in o.accepted
        ]
        if not rows:
            return
        await conn.execute(
            DispatchSQL.insert_submits,
            self.smsc,
            [r[0] for r in rows],
            [None if r[1].is_service else r[1].id for r in rows],
            [r[1].id if r[1].is_service else None for r in rows],
            [r[1].msisdn for r in rows],
            [r[2] for r in rows],
            [r[3] for r in rows],
            now,
        )

    async def insert_receipts(self, receipts: Sequence[ReceiptIn], now: datetime) -> None:
        await self._pool.execute(
            DispatchSQL.insert_receipts,
            self.smsc,
            [r.message_id for r in receipts],
            [r.state for r in receipts],
            [r.error_code for r in receipts],
            [r.done_at for r in receipts],
            now,
        )

    async def apply_receipts(
        self, limit: int, now: datetime, recheck: datetime, give_up: datetime
    ) -> asyncpg.Record:
        return await self._pool.fetchrow(DispatchSQL.apply_receipts, limit, now, recheck, give_up)

    async def claimers(self) -> list[str]:
        return [r["claimed_by"] for r in await self._pool.fetch(DispatchSQL.claimers)]


def _columns(outcomes: Sequence[Outcome]) -> tuple[list[Any], ...]:
    return (
        [o.message.id for o in outcomes],
        [o.state.value for o in outcomes],
        [o.status for o in outcomes],
        [len(o.accepted) for o in outcomes],
        [o.error for o in outcomes],
        [o.retry_at for o in outcomes],
    )
