"""Cap slots for other channels (R7): an IVR dialer or a USSD push asks before it contacts.

The answer is decided like a campaign message's, by the same SQL: the send window open (R8),
then ``suppression_for`` (reachable — not blocked or recycled, no 1204 — and a SMART member for
SMART scope), and a slot left under the month's cap — taken in the same transaction by
``take_cap_slots``, the upsert the dispatcher uses, so SMS and other channels share one ledger
and one cap. Both functions live in migration ``0008_eligibility.sql``.

A ``reference`` (the caller's id for the contact) makes a retry safe: the same reference for
the same number, kind and month gets the first grant back and takes no second slot. Used
for anything else — another number, kind or month — it is refused with
:class:`ReferenceConflict`, never answered with the first grant.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from dispatcher.kernel.sql import SqlFile
from dispatcher.kernel.states import CampaignScope, Channel, ContactKind
from dispatcher.policy.waiting import waits_for_window
from dispatcher.settings import Settings


class ContactSQL(SqlFile, domain="contacts"):
    lock_reference: str
    existing: str
    lock_subscriber: str
    suppression: str
    reserve_slot: str
    record: str


class ReferenceConflict(Exception):
    """The reference was used for another contact (number, kind or month)."""

    def __init__(self, reference: str, differs: list[str]) -> None:
        super().__init__(f"reference {reference!r} was used for another {', '.join(differs)}")
        self.reference = reference
        self.differs = differs


class _ReferenceTaken(Exception):
    """A concurrent request recorded the same reference first (rolls this one back)."""


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
    (``outside_window``, ``not_member``, ``recycled``, ``blocked``, ``dnc``, ``cap_info``,
    ``cap_survey``). Raises :class:`ReferenceConflict` for a reference used for another
    number, kind or month."""
    month = settings.calendar.month_of(now)
    try:
        return await _reserve(pool, settings, msisdn, kind, scope, channel, reference, month, now)
    except _ReferenceTaken:
        # Rolled back, slot and all; the winner's row is committed: answer as a repeat of it.
        assert reference is not None
        async with pool.acquire() as conn:
            row = await conn.fetchrow(ContactSQL.existing, reference)
        return _repeat(row, reference, msisdn, kind, month)


async def _reserve(
    pool: asyncpg.Pool,
    settings: Settings,
    msisdn: str,
    kind: ContactKind,
    scope: CampaignScope,
    channel: Channel,
    reference: str | None,
    month: date,
    now: datetime,
) -> Reservation:
    async with pool.acquire() as conn, conn.transaction():
        if reference is not None:
            await conn.execute(ContactSQL.lock_reference, reference)
            row = await conn.fetchrow(ContactSQL.existing, reference)
            if row is not None:
                return _repeat(row, reference, msisdn, kind, month)
        if waits_for_window(kind) and not settings.calendar.is_open(now):
            return Reservation(False, "outside_window")
        await conn.execute(ContactSQL.lock_subscriber, msisdn)
        refusal = await conn.fetchval(ContactSQL.suppression, msisdn, scope, kind)
        if refusal is not None:
            return Reservation(False, refusal)
        counts = await conn.fetchrow(
            ContactSQL.reserve_slot, msisdn, month, kind, settings.info_cap, settings.survey_cap
        )
        if counts is None:
            return Reservation(False, f"cap_{kind.value}")
        reservation_id = await conn.fetchval(
            ContactSQL.record, msisdn, month, kind, channel, reference, now
        )
        if reservation_id is None:
            raise _ReferenceTaken
        left = counts[f"{kind.value}_cap"] - counts[f"{kind.value}_count"]
        return Reservation(True, None, reservation_id, month.isoformat(), left)


def _repeat(
    row: Mapping[str, Any], reference: str, msisdn: str, kind: ContactKind, month: date
) -> Reservation:
    """The first grant under ``reference`` when this request is the same contact, else
    :class:`ReferenceConflict` naming what differs."""
    differs = [
        what
        for what, same in (
            ("number", row["msisdn"] == msisdn),
            ("kind", row["kind"] == kind.value),
            ("month", row["month"] == month),
        )
        if not same
    ]
    if differs:
        raise ReferenceConflict(reference, differs)
    return Reservation(True, None, row["id"], row["month"].isoformat())
