"""``smartd partners``: partners ranked by opt-out rate (issue 15,
:mod:`dispatcher.program.optouts`), and the opt-out line of ``smartd campaign show``. The CLI
reads the database as the operator does, so it shows what an admin sees: exact counts."""

from __future__ import annotations

import argparse

import asyncpg

from campaigns.reports import CampaignReport
from dispatcher.cli_common import Command, Subparsers, fail, local_minute
from dispatcher.db import open_database
from dispatcher.kernel.states import OptOutKind
from dispatcher.program.optouts import (
    OptOutCounts,
    PeriodRefused,
    campaign_opt_outs,
    parse_period,
    partner_standings,
)
from dispatcher.settings import Settings

#: How a kind reads in a line.
KIND_WORDS = {OptOutKind.STOP: "STOP", OptOutKind.DNC: "1204", OptOutKind.LEAVE: "leave"}


def add_parsers(sub: Subparsers) -> dict[str, Command]:
    partners = sub.add_parser("partners", help="partners ranked by opt-out rate")
    partners.add_argument("--since", metavar="DATE", help="from this date (or ISO instant)")
    partners.add_argument("--until", metavar="DATE", help="through this date (or before instant)")
    return {"partners": cmd_partners}


def counts_words(counts: OptOutCounts) -> str:
    """``3 opt-outs (STOP 2, 1204 1, leave 0) of 160 reached: 1.88%``."""
    kinds = ", ".join(f"{KIND_WORDS[kind]} {n}" for kind, n in counts.by_kind.items())
    rate = "no rate" if counts.rate is None else f"{counts.rate}%"
    noun = "opt-out" if counts.total == 1 else "opt-outs"
    return f"{counts.total} {noun} ({kinds}) of {counts.reached} reached: {rate}"


async def opt_outs_line(pool: asyncpg.Pool, report: CampaignReport, settings: Settings) -> str:
    """The campaign's opt-outs, for ``smartd campaign show``."""
    counts = await campaign_opt_outs(pool, report.campaign.id, report.counts)
    days = settings.inbox_attribution_days
    return f"opt-outs within {days} days of a message: {counts_words(counts)}"


async def cmd_partners(settings: Settings, args: argparse.Namespace) -> int:
    zone = settings.calendar.zone
    try:
        period = parse_period(args.since, args.until, zone)
    except PeriodRefused as exc:
        return fail(f"--{exc.field}: {exc.message}")
    async with open_database(settings) as db:
        standings = await partner_standings(db.pool, period)
    since = local_minute(period.since, zone, "the start")
    until = local_minute(period.until, zone, "now")
    print(
        f"partners by opt-out rate, {since} to {until} "
        f"(opt-outs within {settings.inbox_attribution_days} days of a message)"
    )
    if not standings:
        print("no campaign reached anyone in this period")
    for rank, standing in enumerate(standings, 1):
        name = standing.partner or "(no partner)"
        campaigns = f"{standing.campaigns} campaign" + ("" if standing.campaigns == 1 else "s")
        print(f"{rank:>3}. {name}: {counts_words(standing.counts)}, {campaigns}")
    return 0
