"""Cap slots for other channels (R7): an IVR dialer or a USSD push asks before it contacts.

The answer is decided like a campaign message's: the number must be reachable (not blocked
or recycled, no 1204), a SMART member for SMART scope, the send window open (R8), and a slot
left under the month's cap — taken in the same transaction, by the same database-enforced
upsert the dispatcher uses, so SMS and other channels share one ledger and one cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from dispatcher.kernel.sql import SqlFile
from dispatcher.kernel.states import CampaignScope, Channel, ContactKind
from dispatcher.policy.waiting import waits_for_window
from dispatcher.settings import Settings


class ContactSQL(SqlFile, domain="contacts"):
    existing: str
    eligibility: str
    reserve_slot: str
    record: str


@dataclass(frozen=True, slots=True)
class Reservation:
    granted: bool
    reason: str | None = None
    reservation_id: int | None = None
    month: str | None = None
    remaining: int | None = None


async def reserve(
    pool: asyncpg.Pool,
    settings: Settings,
    msisdn: str,
    kind: ContactKind,
    scope: CampaignScope,
    channel: Channel,
    reference: str | None,
    now: datetime,
) -> Reservation:
    """Grant one contact of ``kind`` to ``msisdn`` now, or refuse with a reason
    (``outside_window``, ``not_member``, ``dnc``, ``blocked``, ``cap_info``, ``cap_survey``)."""
    month = settings.calendar.month_of(now)
    async with pool.acquire() as conn, conn.transaction():
        if reference is not None:
            row = await conn.fetchrow(ContactSQL.existing, reference)
            if row is not None:
                return Reservation(True, None, row["id"], row["month"].isoformat())
        if waits_for_window(kind) and not settings.calendar.is_open(now):
            return Reservation(False, "outside_window")
        refusal = _refusal(await conn.fetchrow(ContactSQL.eligibility, msisdn), scope)
        if refusal is not None:
            return Reservation(False, refusal)
        info, survey = int(kind is ContactKind.INFO), int(kind is ContactKind.SURVEY)
        counts = await conn.fetchrow(
            ContactSQL.reserve_slot,
            msisdn,
            month,
            info,
            survey,
            settings.info_cap,
            settings.survey_cap,
        )
        if counts is None:
            return Reservation(False, f"cap_{kind.value}")
        reservation_id = await conn.fetchval(
            ContactSQL.record, msisdn, month, kind, channel, reference, now
        )
        left = counts[f"{kind.value}_cap"] - counts[f"{kind.value}_count"]
        return Reservation(True, None, reservation_id, month.isoformat(), left)


def _refusal(row: asyncpg.Record | None, scope: CampaignScope) -> str | None:
    if row is None:
        return "not_member"  # a number this service does not know
    if row["status"] in ("blocked", "recycled"):
        return "blocked"
    if row["dnc"]:
        return "dnc"
    if scope is CampaignScope.SMART and not row["member"]:
        return "not_member"
    return None
