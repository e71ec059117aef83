"""A campaign's status in plain words (issue 14), with what it needs from the engine.

The rule itself is pure (:func:`dispatcher.policy.status.campaign_status`); this module
reads its two engine facts from PostgreSQL, so any replica answers alike, the console's
included: whether a live engine is bound to the SMSC (each engine's :class:`BindReport`
keeps its row of ``smsc_binds``, migration 0033) and how many program messages the engine
will claim before any campaign's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Self

import asyncpg

from campaigns.models import Campaign
from dispatcher.kernel.sql import SqlFile
from dispatcher.kernel.states import CampaignState, DeliveryState
from dispatcher.policy.calendar import ProgramCalendar
from dispatcher.policy.status import AHEAD_COUNTED, CampaignFacts, CampaignStatus, campaign_status

#: The program messages ahead of a campaign are counted up to this many (queued ones, and
#: monthly notices still to be queued, each); the status then says "10,000+".
AHEAD_LIMIT = AHEAD_COUNTED
#: Seconds between two looks at the session's bind (a write only when it changed).
BIND_REPORT_INTERVAL = 1.0


class StatusSQL(SqlFile, domain="status"):
    record_bind: str
    forget_bind: str
    binds: str
    service_ahead: str


class BindReport:
    """A background service of each engine: keeps this engine's ``smsc_binds`` row true
    (written at start and whenever the bind changes; deleted at a clean stop)."""

    name = "bind report"
    interval = BIND_REPORT_INTERVAL

    def __init__(
        self,
        pool: asyncpg.Pool,
        smsc: str,
        node: Callable[[], str],
        bound: Callable[[], bool],
        now: Callable[[], datetime],
    ) -> None:
        self._pool = pool
        self._smsc = smsc
        self._node = node
        self._bound = bound
        self._now = now
        self._written: tuple[str, bool] | None = None

    async def run_once(self) -> int:
        """Write the row when the bind (or the node id) changed; never counts as work."""
        seen = (self._node(), self._bound())
        if seen != self._written:
            await self._pool.execute(
                StatusSQL.record_bind, seen[0], self._smsc, seen[1], self._now()
            )
            self._written = seen
        return 0

    async def leave(self) -> None:
        """A clean stop: this engine's row goes."""
        if self._written is not None:
            await self._pool.execute(StatusSQL.forget_bind, self._written[0])
            self._written = None


async def smsc_bound(pool: asyncpg.Pool) -> bool:
    """Whether any live engine is bound to the SMSC (False with no live engine at all)."""
    row = await pool.fetchrow(StatusSQL.binds)
    return bool(row is not None and row["bound"])


async def service_ahead(pool: asyncpg.Pool, now: datetime, window_open: bool) -> int:
    """Program messages the engine claims before any campaign's: those queued and the
    monthly notices still to be queued (up to AHEAD_LIMIT of each)."""
    return int(await pool.fetchval(StatusSQL.service_ahead, now, window_open, AHEAD_LIMIT))


@dataclass(frozen=True, slots=True)
class EngineFacts:
    """What the engine's side says to every campaign at one instant."""

    bound: bool
    service_ahead: int

    @classmethod
    async def read(cls, pool: asyncpg.Pool, calendar: ProgramCalendar, now: datetime) -> Self:
        bound = await smsc_bound(pool)
        return cls(bound, await service_ahead(pool, now, calendar.is_open(now)))


def needs_engine_facts(state: CampaignState, counts: Mapping[DeliveryState, int]) -> bool:
    """Whether the status of a campaign in ``state`` with ``counts`` asks the engine's side:
    only a running one with messages queued."""
    return state is CampaignState.RUNNING and counts.get(DeliveryState.QUEUED, 0) > 0


async def status_of(
    pool: asyncpg.Pool,
    calendar: ProgramCalendar,
    campaign: Campaign,
    counts: Mapping[DeliveryState, int],
    now: datetime,
    *,
    exact: bool = True,
    engine: EngineFacts | None = None,
) -> CampaignStatus:
    """``campaign``'s status at ``now`` with its deliveries' ``counts`` by state; the
    engine's facts (``engine``, read once for a page of campaigns) are read here only when
    they matter. ``exact`` False (a partner-facing reader, R11) names no count."""
    if engine is None and needs_engine_facts(campaign.state, counts):
        engine = await EngineFacts.read(pool, calendar, now)
    bound = None if engine is None else engine.bound
    ahead = 0 if engine is None else engine.service_ahead
    facts = CampaignFacts(
        campaign.state,
        campaign.start_at,
        campaign.finished_at,
        counts,
        bound,
        ahead,
        exact,
        campaign.trigger is not None,
    )
    return campaign_status(facts, now, calendar)
