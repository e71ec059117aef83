"""Subscriber lookup: what the program holds on a number's current owner (R12), read for
``GET /api/v1/subscribers/{msisdn}`` and the console's subscriber page."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from dispatcher.kernel.states import Channel, ConsentEvent
from dispatcher.program.bonus_models import Grant
from dispatcher.program.membership import ProgramSQL, Subscriber
from dispatcher.settings import Settings


@dataclass(frozen=True, slots=True)
class MembershipPeriod:
    """One period of SMART membership (a ``memberships`` row); open while ``left_at`` is None."""

    id: int
    joined_at: datetime
    join_channel: Channel
    left_at: datetime | None
    leave_channel: Channel | None
    leave_reason: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> MembershipPeriod:
        leave_channel = row["leave_channel"]
        return cls(
            id=row["id"],
            joined_at=row["joined_at"],
            join_channel=Channel(row["join_channel"]),
            left_at=row["left_at"],
            leave_channel=Channel(leave_channel) if leave_channel else None,
            leave_reason=row["leave_reason"],
        )


@dataclass(frozen=True, slots=True)
class DncBlock:
    """R9: since when and through which channel the number is 1204-blocked."""

    blocked_at: datetime
    channel: Channel

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DncBlock:
        return cls(blocked_at=row["blocked_at"], channel=Channel(row["channel"]))


@dataclass(frozen=True, slots=True)
class MonthCounters:
    """R7: the month's contacts and caps of one number (a ``contact_counters`` row)."""

    info_count: int
    survey_count: int
    info_cap: int
    survey_cap: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> MonthCounters:
        return cls(row["info_count"], row["survey_count"], row["info_cap"], row["survey_cap"])


@dataclass(frozen=True, slots=True)
class ConsentEntry:
    """One consent-ledger event: what, which scopes, when, through which channel, and what
    proves it (``{"ussd_session": ..}``, ``{"mo_message_id": ..}``, ``{"event_id": ..}``)."""

    event: ConsentEvent
    scopes: tuple[str, ...]
    channel: Channel
    evidence: dict[str, Any]
    occurred_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ConsentEntry:
        return cls(
            event=ConsentEvent(row["event"]),
            scopes=tuple(row["scopes"]),
            channel=Channel(row["channel"]),
            evidence=row["evidence"],
            occurred_at=row["occurred_at"],
        )


class SubscriberHistory:
    """Reads what the program holds on a number for the subscriber view; ``since`` is the
    current owner's start (R12: an earlier owner's history is not shown)."""

    def __init__(self, db: asyncpg.Pool | asyncpg.Connection) -> None:
        self._db = db

    async def subscriber(self, msisdn: str) -> Subscriber | None:
        row = await self._db.fetchrow(ProgramSQL.get_subscriber, msisdn)
        return None if row is None else Subscriber.from_row(row)

    async def memberships(self, msisdn: str, since: datetime | None) -> list[MembershipPeriod]:
        rows = await self._db.fetch(ProgramSQL.memberships_of, msisdn, since)
        return [MembershipPeriod.from_row(row) for row in rows]

    async def dnc(self, msisdn: str) -> DncBlock | None:
        row = await self._db.fetchrow(ProgramSQL.dnc_of, msisdn)
        return None if row is None else DncBlock.from_row(row)

    async def counters(self, msisdn: str, month: date) -> MonthCounters | None:
        row = await self._db.fetchrow(ProgramSQL.counters_of, msisdn, month)
        return None if row is None else MonthCounters.from_row(row)

    async def grants(self, msisdn: str) -> list[Grant]:
        """The current owner's grants (R3, R12: keyed by the owner epoch, not by time)."""
        rows = await self._db.fetch(ProgramSQL.grants_of, msisdn)
        return [Grant.from_row(row) for row in rows]

    async def consent(self, msisdn: str, since: datetime | None) -> list[ConsentEntry]:
        rows = await self._db.fetch(ProgramSQL.consent_of, msisdn, since)
        return [ConsentEntry.from_row(row) for row in rows]


#: The grant fields the subscriber view shows.
_GRANT_FIELDS = (
    "id",
    "month",
    "units",
    "state",
    "granted_at",
    "deadline_at",
    "activated_at",
    "expires_at",
    "closed_at",
)


async def subscriber_view(
    db: asyncpg.Pool, settings: Settings, msisdn: str, now: datetime
) -> dict[str, Any] | None:
    """Status, membership, 1204, this month's counters, grants and consent history of the
    number's current owner (R12: an earlier owner's history is not shown), as JSON values."""
    history = SubscriberHistory(db)
    sub = await history.subscriber(msisdn)
    if sub is None:
        return None
    since = sub.owner_since
    month = settings.calendar.month_of(now)
    periods = await history.memberships(msisdn, since)
    dnc = await history.dnc(msisdn)
    counters = await history.counters(msisdn, month)
    grants = await history.grants(msisdn)
    consent = await history.consent(msisdn, since)
    return {
        "msisdn": sub.msisdn,
        "status": sub.status.value,
        "language": sub.language.value if sub.language else None,
        "language_chosen_at": _plain(sub.language_chosen_at),
        "tariff": sub.tariff,
        "owner_since": _plain(sub.owner_since),
        "member": any(p.left_at is None for p in periods),
        "memberships": [_fields(p) for p in periods],
        "dnc": None if dnc is None else _fields(dnc),
        "counters": {
            "month": month.isoformat(),
            "info": counters.info_count if counters else 0,
            "survey": counters.survey_count if counters else 0,
            "info_cap": counters.info_cap if counters else settings.info_cap,
            "survey_cap": counters.survey_cap if counters else settings.survey_cap,
        },
        "grants": [_fields(g, _GRANT_FIELDS) for g in grants],
        "consent": [_fields(c) for c in consent],
    }


def _fields(record: Any, names: Sequence[str] | None = None) -> dict[str, Any]:
    """A dataclass's fields (or ``names`` of them) as JSON values."""
    if names is None:
        names = [f.name for f in dataclasses.fields(record)]
    return {name: _plain(getattr(record, name)) for name in names}


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value
