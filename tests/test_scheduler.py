"""Scheduled bonus jobs: the schedule itself, and the catch-up at start-up (R3, R4)."""

from __future__ import annotations

from datetime import timedelta

from aiohttp.test_utils import TestServer

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.program.bonus import BonusLedger
from dispatcher.program.charging import LedgerCharging
from dispatcher.program.membership import Membership
from dispatcher.scheduler import build_scheduler, catch_up
from dispatcher.settings import Settings
from dispatcher.web.app import create_app
from tests.bonus_helpers import NUMBERS, join, utc
from tests.factories import members


def test_schedule_runs_monthly_grant_at_0005_astana_on_the_1st(
    settings: Settings, clock: ManualClock
) -> None:
    """R3: the monthly grant fires at 00:05 on the 1st, Astana time (UTC+5 in 2026)."""
    ledger = BonusLedger(None, settings, clock, LedgerCharging())  # type: ignore[arg-type]
    scheduler = build_scheduler(ledger, settings)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"monthly_grant", "hourly", "charging"}
    after = clock.now()
    monthly = jobs["monthly_grant"].trigger.get_next_fire_time(None, after)
    assert monthly == utc(2026, 11, 30, 19, 5)
    hourly = jobs["hourly"].trigger.get_next_fire_time(None, after)
    assert timedelta(0) < hourly - after <= timedelta(hours=1)


async def test_catch_up_grants_a_missed_month_once_and_sweeps(
    database: Database, ledger: BonusLedger, membership: Membership, clock: ManualClock
) -> None:
    """R3/R4: a service down at 00:05 on the 1st grants the month when it starts; once."""
    await join(database.pool, membership, NUMBERS[0], utc(2026, 10, 20, 6))  # October's grant
    await database.pool.execute(
        "DELETE FROM bonus_grants WHERE msisdn = $1 AND month = '2026-11-01'", NUMBERS[0]
    )
    clock.set(utc(2026, 11, 23, 12))
    swept = await catch_up(ledger)
    assert swept.cancelled == 1  # October's grant passed its 30 days on 19 November
    assert await ledger.month_granted(clock.now())
    months = await database.pool.fetch(
        "SELECT month::text, state FROM bonus_grants WHERE msisdn = $1 ORDER BY month",
        NUMBERS[0],
    )
    assert [tuple(r) for r in months] == [("2026-10-01", "cancelled"), ("2026-11-01", "pending")]
    await catch_up(ledger)
    assert await database.pool.fetchval("SELECT count(*) FROM bonus_grants") == 2


async def test_app_start_up_runs_catch_up_when_scheduler_enabled(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """R3: starting the app with the scheduler grants this month's units if the job has not run."""
    await members(database, [NUMBERS[0]], joined_at=utc(2026, 10, 1))
    app = create_app(settings, clock=clock, database=database, scheduler=True)
    async with TestServer(app, host="127.0.0.1"):
        granted = await database.pool.fetchval(
            "SELECT count(*) FROM bonus_grants WHERE month = '2026-11-01'"
        )
        assert granted == 1
