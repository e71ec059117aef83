"""Operator events (``POST /gateway/events``): IVR 1204, CRM life cycle, tariff changes
(R9, R12, R10), each recorded once and applied through :class:`Membership`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from dispatcher.kernel.states import Channel, SubscriberStatus
from dispatcher.program.membership import Membership, ProgramSQL

EVENT_TYPES = ("dnc_optout", "subscriber_status", "tariff_change")


class EventDesk:
    """Operator events (IVR 1204, CRM life cycle, tariff changes), each recorded once."""

    def __init__(self, pool: asyncpg.Pool, membership: Membership) -> None:
        self._pool = pool
        self._membership = membership

    async def apply(
        self,
        kind: str,
        msisdn: str,
        payload: Mapping[str, Any],
        event_id: str | None,
        occurred_at: datetime,
        now: datetime,
    ) -> bool:
        """Apply one validated event; False when its ``event_id`` was seen before."""
        evidence = {"event_id": event_id, "type": kind}
        async with self._pool.acquire() as conn, conn.transaction():
            await self._membership.lock(conn, msisdn)
            recorded = await conn.fetchval(
                ProgramSQL.record_event,
                msisdn,
                kind,
                event_id,
                dict(payload),
                occurred_at,
            )
            if recorded is None:
                return False
            if kind == "dnc_optout":
                await self._membership.dnc_block(conn, msisdn, Channel.IVR, evidence, now)
            elif kind == "subscriber_status":
                status = SubscriberStatus(payload["status"])
                await self._membership.set_status(conn, msisdn, status, evidence, now)
            elif kind == "tariff_change":
                # R10: the tariff is recorded; membership and bonuses stay as they are.
                await conn.execute(ProgramSQL.set_tariff, msisdn, payload["tariff"], now)
            return True
