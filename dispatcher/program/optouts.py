"""Opt-out attribution (issue 15): every STOP, 1204 and leave, with the campaign — and so the
partner — whose message last reached the number.

:func:`record` writes one ``opt_outs`` row inside the transaction that applies the leave or
the 1204 (:class:`~dispatcher.program.membership.Membership`, the one place every channel's
opt-out goes through: SMS STOP and 1204, USSD leave, the IVR's ``dnc_optout`` event). The
campaign is decided then, by the inbox's rule (``last_reach``, migration 0040): the latest
campaign message the SMSC accepted for the number within the attribution span
(``inbox_attribution_days``, one setting for both) and has not reported undelivered. Only an
opt-out that changed something is written (a second STOP of a number that already left is
not one); a rejoin and a second leave is. A delivery is blamed for one opt-out at most, so a
campaign's opt-outs never exceed the recipients it reached.

The rate is opt-outs per reached recipient (the report's submitted + delivered) in percent.
Partner-facing roles (R11) see the counts through :mod:`campaigns.disclosure`; a rate is
shown only where both its counts are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

import asyncpg

from campaigns.disclosure import Shown, at_least, below, suppress
from campaigns.reports import DeliveryCounts, shown_counts
from dispatcher.kernel.sql import SqlFile
from dispatcher.kernel.states import Channel, DeliveryState, OptOutKind
from dispatcher.kernel.values import instant_in_range


class OptOutSQL(SqlFile, domain="optouts"):
    record_opt_out: str
    campaign_opt_outs: str
    partner_campaigns: str


#: Delivery states of a message that reached its recipient (the rate's denominator), as
#: ``last_reach`` decides for the attribution.
REACHED = (DeliveryState.SUBMITTED, DeliveryState.DELIVERED)


def leave_kind(channel: Channel) -> OptOutKind:
    """A leave by SMS is a STOP; by any other channel (the USSD menu) a leave."""
    return OptOutKind.STOP if channel is Channel.SMS else OptOutKind.LEAVE


@dataclass(frozen=True, slots=True)
class OptOut:
    """An opt-out as written: its campaign and the delivery blamed (None: none in the span)."""

    id: int
    campaign_id: int | None
    delivery_id: int | None


async def record(
    conn: asyncpg.Connection,
    msisdn: str,
    kind: OptOutKind,
    channel: Channel,
    now: datetime,
    span: timedelta,
) -> OptOut:
    """Write one opt-out of ``msisdn`` at ``now``, attributed within ``span`` before it.
    Inside the caller's transaction, with the subscriber row locked."""
    row = await conn.fetchrow(OptOutSQL.record_opt_out, msisdn, now, kind, channel, span)
    return OptOut(row["id"], row["campaign_id"], row["delivery_id"])


def rate(opt_outs: int, reached: int) -> float | None:
    """Opt-outs per reached recipient in percent, two decimals (opt-outs are rare); None
    when nobody was reached."""
    return round(100.0 * opt_outs / reached, 2) if reached else None


@dataclass(frozen=True, slots=True)
class OptOutCounts:
    """Opt-outs by kind (every kind a key) and the recipients reached."""

    by_kind: Mapping[OptOutKind, int]
    reached: int

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    @property
    def rate(self) -> float | None:
        return rate(self.total, self.reached)

    @classmethod
    def of(cls, by_kind: Mapping[str, int], reached: int) -> OptOutCounts:
        return cls({kind: int(by_kind.get(kind, 0)) for kind in OptOutKind}, reached)


def reached_of(counts: DeliveryCounts) -> int:
    """The recipients a campaign reached: its messages submitted or delivered."""
    return sum(counts.states[state] for state in REACHED)


async def campaign_opt_outs(
    db: asyncpg.Pool | asyncpg.Connection, campaign_id: int, counts: DeliveryCounts
) -> OptOutCounts:
    """The campaign's opt-outs by kind; reached from its report's ``counts``."""
    rows = await db.fetch(OptOutSQL.campaign_opt_outs, campaign_id)
    return OptOutCounts.of({row["kind"]: row["n"] for row in rows}, reached_of(counts))


# ---------------------------------------------------------------- R11: what a partner sees


def shown_opt_outs(counts: OptOutCounts, min_cell: int) -> dict[str, Shown]:
    """Opt-outs by kind and their total as shown with ``min_cell`` (1: exact): the total is
    the sum of the kinds, one group, so no hidden kind follows by subtraction."""
    cells = {str(kind): n for kind, n in counts.by_kind.items()} | {"total": counts.total}
    return suppress(cells, [("total", [str(kind) for kind in OptOutKind])], min_cell)


#: What a shown count says of the count: at least, at most (None: no upper bound).
Bounds = tuple[int, int | None]


def bounds(shown: Shown, min_cell: int) -> Bounds:
    """The counts a shown count can be: itself, ``"< N"`` 0..N-1, ``">= N"`` N or more."""
    if isinstance(shown, int):
        return shown, shown
    return (0, min_cell - 1) if shown.startswith("<") else (min_cell, None)


#: Further sums of states a page shows beside the report (campaigns.reports.shown_counts).
Sums = Mapping[str, Iterable[DeliveryState]]


def reached_bounds(counts: DeliveryCounts, min_cell: int, sums: Sums | None = None) -> Bounds:
    """What a campaign's report, as shown with ``min_cell`` (and with ``sums``, as the page
    showing it does), says of its reached recipients: the sum of its submitted and delivered
    counts, each exact or hidden."""
    shown = shown_counts(counts, min_cell, sums) if min_cell > 1 else None
    low: int = 0
    high: int | None = 0
    for state in REACHED:
        n = counts.states[state]
        part_low, part_high = (n, n) if shown is None else bounds(shown[("state", state)], min_cell)
        low += part_low
        high = None if high is None or part_high is None else high + part_high
    return low, high


def shown_bounds(value: Bounds, min_cell: int) -> Shown:
    """A count known only between bounds, as a report shows it: exact when they meet, else
    ``">= low"`` (a lower bound at or past the threshold), else ``"< high + 1"``."""
    low, high = value
    if low == high:
        return low
    if high is None or low >= min_cell:
        return at_least(low)
    return below(high + 1)


def shown_rate(opt_outs: Bounds, reached: Bounds) -> float | None:
    """The rate as shown: only where every count the shown bounds allow gives the same rate
    to its two decimals, so it tells nothing of a hidden count (R11); None otherwise, and
    when nobody was reached."""
    (o_low, o_high), (r_low, r_high) = opt_outs, reached
    if o_high is None or r_high is None or r_low == 0:
        return None
    lowest, highest = rate(o_low, r_high), rate(o_high, r_low)
    return lowest if lowest == highest else None


def opt_outs_json(
    opt_outs: OptOutCounts,
    counts: DeliveryCounts,
    min_cell: int,
    span_days: int,
    sums: Sums | None = None,
) -> dict[str, Any]:
    """A campaign report's ``opt_outs``: total, by kind, reached, rate (percent of reached),
    and the span they were attributed within; ``min_cell`` and ``sums`` as the report beside
    it is shown with (R11: reached is exact only where the shown states give it)."""
    shown = shown_opt_outs(opt_outs, min_cell)
    reached = reached_bounds(counts, min_cell, sums)
    return {
        "total": shown["total"],
        "by_kind": {str(kind): shown[str(kind)] for kind in OptOutKind},
        "reached": shown_bounds(reached, min_cell),
        "rate": shown_rate(bounds(shown["total"], min_cell), reached),
        "rate_of": "reached",
        "span_days": span_days,
    }


# ---------------------------------------------------------------- the partners view


@dataclass(frozen=True, slots=True)
class PartnerStanding:
    """A partner's campaigns in a period: how many, the recipients they reached and the
    opt-outs attributed to them."""

    partner: str
    campaigns: int
    counts: OptOutCounts


@dataclass(frozen=True, slots=True)
class Period:
    """``[since, until)``; either end open (None)."""

    since: datetime | None = None
    until: datetime | None = None


class PeriodRefused(ValueError):
    """A period bound that is no date or instant, or a period that ends before it starts."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def period_bound(raw: str | None, zone: tzinfo, field: str, *, end: bool) -> datetime | None:
    """``raw`` as a bound: an instant with its UTC offset, or a date (``YYYY-MM-DD``, in the
    program's ``zone``: a ``since`` date from its first second, an ``until`` date through its
    last); None when empty."""
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text) + timedelta(days=1 if end else 0)
            value = datetime.combine(day, time(), zone)
        else:
            value = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        value = None
    if value is None or not instant_in_range(value):
        message = f"{field} must be a date YYYY-MM-DD or an ISO 8601 instant with its offset"
        raise PeriodRefused(field, message)
    return value


def parse_period(since: str | None, until: str | None, zone: tzinfo) -> Period:
    """The period of ``?since=&until=`` (see :func:`period_bound`); refused when it ends
    before or when it starts."""
    period = Period(
        period_bound(since, zone, "since", end=False), period_bound(until, zone, "until", end=True)
    )
    if period.since and period.until and period.until <= period.since:
        raise PeriodRefused("until", "until must be after since")
    return period


async def partner_standings(
    db: asyncpg.Pool | asyncpg.Connection, period: Period
) -> list[PartnerStanding]:
    """Each partner whose campaigns reached anyone or drove anyone out in ``period``, exact,
    ranked by :func:`ranked`."""
    rows = await db.fetch(OptOutSQL.partner_campaigns, period.since, period.until)
    campaigns: dict[str, int] = {}
    reached: dict[str, int] = {}
    kinds: dict[str, dict[str, int]] = {}
    for row in rows:
        partner = row["partner"]
        campaigns[partner] = campaigns.get(partner, 0) + 1
        reached[partner] = reached.get(partner, 0) + row["reached"]
        totals = kinds.setdefault(partner, dict.fromkeys(OptOutKind, 0))
        for kind in OptOutKind:
            totals[kind] += row[str(kind)]
    standings = [
        PartnerStanding(
            partner, campaigns[partner], OptOutCounts.of(kinds[partner], reached[partner])
        )
        for partner in campaigns
    ]
    return ranked(standings)


def ranked(standings: Iterable[PartnerStanding]) -> list[PartnerStanding]:
    """Highest opt-out rate first (the operator's signal), then more opt-outs, then by name;
    partners who reached nobody in the period (no rate) last."""

    def key(standing: PartnerStanding) -> tuple[bool, float, int, str]:
        value = standing.counts.rate
        return (value is None, -(value or 0.0), -standing.counts.total, standing.partner)

    return sorted(standings, key=key)


def partner_json(standing: PartnerStanding, min_cell: int) -> dict[str, Any]:
    """One partner's row; ``min_cell`` > 1 (R11): small counts hidden, the rate only where
    its counts are shown."""
    counts = standing.counts
    shown = shown_opt_outs(counts, min_cell)
    reached: Shown = counts.reached
    if min_cell > 1 and counts.reached < min_cell:
        reached = below(min_cell)
    return {
        "partner": standing.partner,
        "campaigns": standing.campaigns,
        "reached": reached,
        "opt_outs": shown["total"],
        "by_kind": {str(kind): shown[str(kind)] for kind in OptOutKind},
        "rate": shown_rate(bounds(shown["total"], min_cell), bounds(reached, min_cell)),
    }


def shown_partners(standings: Iterable[PartnerStanding], min_cell: int) -> list[dict[str, Any]]:
    """The ranking as shown with ``min_cell``, each row with its ``rank``. For a
    partner-facing caller (``min_cell`` > 1) by the rate as shown, then by name, and rows
    whose rate is hidden last, by name: ordered by the exact rate, they would tell what the
    hidden counts are."""
    rows = [partner_json(standing, min_cell) for standing in standings]
    if min_cell > 1:
        rows.sort(key=lambda row: (row["rate"] is None, -(row["rate"] or 0.0), row["partner"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def partners_json(
    standings: Iterable[PartnerStanding], period: Period, min_cell: int, span_days: int
) -> dict[str, Any]:
    """``GET /api/v1/partners``: the period, the span and the ranking as shown."""
    return {
        "since": None if period.since is None else period.since.isoformat(),
        "until": None if period.until is None else period.until.isoformat(),
        "span_days": span_days,
        "rate_of": "reached",
        "partners": shown_partners(standings, min_cell),
    }
