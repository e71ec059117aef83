"""Scheduled jobs (apscheduler 3.x): the monthly grant, the hourly sweep, the charging outbox.

Jobs are thin wrappers around :class:`~dispatcher.program.bonus.BonusLedger` methods that
take ``now`` from the ledger's clock, so tests call the methods with a ManualClock and never
wait for the scheduler. Every replica runs the same schedule: the monthly grant takes an
advisory lock and records itself in ``job_runs``; sweeps and the outbox use guarded updates
and SKIP LOCKED, so running them everywhere at once is safe.

Catch-up: at start-up and every hour, the month's grant runs if ``job_runs`` says it has not
(the service was down at 00:05 on the 1st, or the run failed), then the sweep runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Any

import structlog
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from dispatcher.program.bonus import BonusLedger
from dispatcher.program.bonus_models import SweepResult
from dispatcher.settings import Settings
from dispatcher.web.keys import BONUS, SETTINGS

log = structlog.get_logger(__name__)

MISFIRE_GRACE = 3600  # a job late by up to an hour (event loop busy, clock step) still runs


async def monthly_grant_job(ledger: BonusLedger) -> None:
    """R3: the month's grant, 00:05 on the 1st (Astana time)."""
    await _logged("monthly_grant", ledger.grant_month(ledger.clock.now()))


async def hourly_job(ledger: BonusLedger) -> None:
    """R4 sweep, after catching up the month's grant if it has not run."""
    await _logged("hourly", catch_up(ledger))


async def charging_job(ledger: BonusLedger) -> None:
    """Owed credits and forfeits re-sent to the charging system."""
    await _logged("charging", ledger.run_charging_once(ledger.clock.now()))


async def catch_up(ledger: BonusLedger) -> SweepResult:
    """Grant the current month if ``job_runs`` has no run for it, then sweep."""
    now = ledger.clock.now()
    if not await ledger.month_granted(now):
        await ledger.grant_month(now)
    return await ledger.sweep(now)


def build_scheduler(ledger: BonusLedger, settings: Settings) -> AsyncIOScheduler:
    """The schedule, in the program's time zone; not started."""
    zone = settings.calendar.zone
    scheduler = AsyncIOScheduler(timezone=zone)
    common: dict[str, Any] = {
        "args": [ledger],
        "max_instances": 1,
        "coalesce": True,
        "misfire_grace_time": MISFIRE_GRACE,
    }
    scheduler.add_job(
        monthly_grant_job,
        CronTrigger(day=1, hour=0, minute=5, timezone=zone),
        id="monthly_grant",
        **common,
    )
    scheduler.add_job(hourly_job, CronTrigger(minute=17, timezone=zone), id="hourly", **common)
    scheduler.add_job(
        charging_job,
        IntervalTrigger(seconds=settings.charging_retry_interval, timezone=zone),
        id="charging",
        **common,
    )
    return scheduler


async def scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
    """aiohttp cleanup context: catch up, start the schedule; shut it down on cleanup.

    Goes after the database context (it needs ``app[BONUS]``).
    """
    ledger = app[BONUS]
    await _logged("startup_catch_up", catch_up(ledger))
    await _logged("startup_charging", ledger.run_charging_once(ledger.clock.now()))
    scheduler = build_scheduler(ledger, app[SETTINGS])
    scheduler.start()
    try:
        yield
    finally:
        scheduler.shutdown(wait=False)


async def _logged(job: str, work: Awaitable[object]) -> None:
    # A failing run is logged and left to the next one: the jobs are idempotent.
    try:
        result = await work
    except Exception:
        log.exception("scheduled job failed", job=job)
        return
    log.debug("scheduled job done", job=job, result=repr(result))
