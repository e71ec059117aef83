"""Operator events (``POST /gateway/events``): IVR 1204, CRM life cycle, tariff changes
(R9, R12, R10) and top-ups, each recorded once and applied through :class:`Membership`; a
recorded event also queues the message of each running campaign it triggers (issue 15,
``record_event`` in sql/program.sql), in the same transaction."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from dispatcher.kernel.states import Channel, SubscriberStatus
from dispatcher.program.membership import Membership, ProgramSQL

EVENT_TYPES = ("dnc_optout", "subscriber_status", "tariff_change", "top_up")
#: Other names of event types: the issue's ``status`` is ``subscriber_status``.
EVENT_ALIASES = {"status": "subscriber_status"}
#: Events that change nothing of the subscriber: recorded (and their triggered messages
#: queued) by one statement, without the subscriber's lock (issue 15: 1,000 top-ups/s).
UNLOCKED = frozenset({"top_up"})


class EventDesk:
    """Operator events (IVR 1204, CRM life cycle, tariff changes), each recorded once."""

    def __init__(self, pool: asyncpg.Pool, membership: Membership) -> None:
        self._pool = pool
        self._membership = membership

    async def record(
        self,
        kind: str,
        msisdn: str,
        payload: Mapping[str, Any],
        event_id: str | None,
        occurred_at: datetime,
        now: datetime,
    ) -> int | None:
        """Apply one validated event → how many triggered messages it queued; None when its
        ``event_id`` was seen before (nothing changes)."""
        if kind in UNLOCKED:
            row = await self._pool.fetchrow(
                ProgramSQL.record_event, msisdn, kind, event_id, dict(payload), occurred_at, now
            )
            return None if row["id"] is None else int(row["queued"])
        evidence = {"event_id": event_id, "type": kind}
        async with self._pool.acquire() as conn, conn.transaction():
            await self._membership.lock(conn, msisdn)
            recorded = await conn.fetchrow(
                ProgramSQL.record_event,
                msisdn,
                kind,
                event_id,
                dict(payload),
                occurred_at,
                now,
            )
            if recorded["id"] is None:
                return None
            if kind == "dnc_optout":
                await self._membership.dnc_block(conn, msisdn, Channel.IVR, evidence, now)
            elif kind == "subscriber_status":
                status = SubscriberStatus(payload["status"])
                await self._membership.set_status(conn, msisdn, status, evidence, now)
            elif kind == "tariff_change":
                # R10: the tariff is recorded; membership and bonuses stay as they are.
                await conn.execute(ProgramSQL.set_tariff, msisdn, payload["tariff"], now)
            return int(recorded["queued"])
