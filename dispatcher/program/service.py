"""The program as the HTTP layer sees it: operator events and the subscriber view."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from dispatcher.program.membership import Membership, ProgramSQL, Subscriber
from dispatcher.settings import Settings
from dispatcher.states import Channel, SubscriberStatus

EVENT_TYPES = ("dnc_optout", "subscriber_status", "tariff_change")


class NoBonus:
    """Bonus hooks for a service run without the bonus ledger (tests of membership alone)."""

    async def grant_on_join(self, conn: asyncpg.Connection, msisdn: str, now: datetime) -> None:
        return None

    async def forfeit(self, conn: asyncpg.Connection, msisdn: str, now: datetime) -> int:
        return 0


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
                json.dumps(dict(payload)),
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


async def subscriber_view(
    db: asyncpg.Pool, settings: Settings, msisdn: str, now: datetime
) -> dict[str, Any] | None:
    """Status, membership, 1204, this month's counters, grants and consent history of the
    number's current owner (R12: an earlier owner's history is not shown)."""
    row = await db.fetchrow(ProgramSQL.get_subscriber, msisdn)
    if row is None:
        return None
    sub = Subscriber.from_row(row)
    since = sub.owner_since
    month = settings.calendar.month_of(now)
    periods = await db.fetch(ProgramSQL.memberships_of, msisdn, since)
    dnc = await db.fetchrow(ProgramSQL.dnc_of, msisdn)
    counters = await db.fetchrow(ProgramSQL.counters_of, msisdn, month)
    grants = await db.fetch(ProgramSQL.grants_of, msisdn, since)
    consent = await db.fetch(ProgramSQL.consent_of, msisdn, since)
    return {
        "msisdn": sub.msisdn,
        "status": sub.status.value,
        "language": sub.language.value if sub.language else None,
        "tariff": sub.tariff,
        "owner_since": _iso(sub.owner_since),
        "member": any(p["left_at"] is None for p in periods),
        "memberships": [_plain(p) for p in periods],
        "dnc": None if dnc is None else _plain(dnc),
        "counters": {
            "month": month.isoformat(),
            "info": counters["info_count"] if counters else 0,
            "survey": counters["survey_count"] if counters else 0,
            "info_cap": counters["info_cap"] if counters else settings.info_cap,
            "survey_cap": counters["survey_cap"] if counters else settings.survey_cap,
        },
        "grants": [_plain(g) for g in grants],
        "consent": [{**_plain(c), "evidence": json.loads(c["evidence"])} for c in consent],
    }


def _plain(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _iso(v) for k, v in dict(row).items()}


def _iso(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
