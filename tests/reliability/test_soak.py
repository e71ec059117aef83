"""A compressed 30 hours of traffic on a ManualClock, in-process: Nov 30 06:00 to Dec 1 12:00
Astana time, in 10-minute steps. Two send windows, the night between them, the December
grant at midnight, bonus expiries (an unactivated grant past 30 days, activated units past
7 days), a survey timing out, USSD and MO throughout, a new campaign every few hours.
Afterwards the invariants hold and Python memory stayed flat (tracemalloc)."""

from __future__ import annotations

import gc
import random
import tracemalloc
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.program.bonus import BonusLedger
from dispatcher.program.membership import Membership
from dispatcher.program.ussd import UssdDesk
from dispatcher.scheduler import catch_up
from dispatcher.settings import Settings
from tests.dispatch_helpers import Rig, dispatch_rig
from tests.factories import campaign, campaign_from_spec, members
from tests.reliability.procs import check_invariants

ASTANA = ZoneInfo("Asia/Almaty")
START = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)  # 06:00 Astana, before the window
STEPS = 180  # of 10 minutes: 30 hours
WARM_UP = 36  # steps before the first memory reading (6 hours)
MEMBERS = [f"7710{n:07d}" for n in range(600)]
NEWCOMERS = [f"7711{n:07d}" for n in range(400)]
SURVEY = {
    "name": "Soak survey",
    "kind": "survey",
    "scope": "smart",
    "survey": {
        "questions": [
            {
                "texts": {"ru": "Нравится?", "kk": "Ұнай ма?"},
                "options": [{"ru": "Да", "kk": "Иә"}, {"ru": "Нет", "kk": "Жоқ"}],
            }
        ],
        "thanks": {"ru": "Спасибо!", "kk": "Рақмет!"},
        "timeout_hours": 24,
    },
}


async def _seed_bonuses(database: Database) -> None:
    """Grants that expire during the soak: 100 pending since Oct 31 (R4: cancelled 30 days
    later) and 100 activated on Nov 23 (R4: what is left ends 7 days later)."""
    october = datetime(2026, 10, 31, 0, 5, tzinfo=ASTANA)
    november = datetime(2026, 11, 1, 0, 5, tzinfo=ASTANA)
    activated = datetime(2026, 11, 23, 12, 0, tzinfo=ASTANA)
    await database.pool.execute(
        "INSERT INTO bonus_grants (msisdn, month, units, state, granted_at, deadline_at) "
        "SELECT unnest($1::text[]), date '2026-10-01', 500, 'pending', $2::timestamptz, "
        "$2::timestamptz + interval '30 days'",
        MEMBERS[:100],
        october,
    )
    await database.pool.execute(
        "INSERT INTO bonus_grants (msisdn, month, units, state, granted_at, deadline_at, "
        "activated_at, activated_month, expires_at) "
        "SELECT unnest($1::text[]), date '2026-11-01', 500, 'active', $2::timestamptz, "
        "$2::timestamptz + interval '30 days', $3::timestamptz, date '2026-11-01', "
        "$3::timestamptz + interval '7 days'",
        MEMBERS[100:200],
        november,
        activated,
    )


class Traffic:
    """Subscribers' side of the soak: USSD requests and MO messages each step."""

    def __init__(self, rig: Rig, ussd: UssdDesk, seed: int = 3) -> None:
        self.rig, self.ussd = rig, ussd
        self.rng = random.Random(seed)
        self.joined = 0
        self.sessions = 0

    async def step(self, now: datetime) -> None:
        rng = self.rng
        for _ in range(12):
            self.sessions += 1
            msisdn = rng.choice(MEMBERS)
            code = rng.choice(["*555#", "*111*3#", "*555*00#", "*111*3#"])
            await self.ussd.handle(msisdn, f"s{self.sessions}", code, now)
        if self.joined < len(NEWCOMERS):
            await self.ussd.handle(NEWCOMERS[self.joined], f"j{self.joined}", "*555*1#", now)
            self.joined += 1
        if rng.random() < 0.1:
            await self.ussd.handle(rng.choice(MEMBERS[300:]), "leave", "*555*2#", now)
        await self.rig.sim.inject_mo(rng.choice(MEMBERS), self.rig.settings.short_code, "1")
        await self.rig.sim.inject_mo(rng.choice(MEMBERS), self.rig.settings.short_code, "HELP")


async def _housekeeping(
    rig: Rig, ledger: BonusLedger, ussd: UssdDesk, now: datetime, hourly: bool
) -> None:
    """What serve's loops and the scheduler run, driven by the manual clock."""
    # campaigns by the clock, survey timeouts, abandoned USSD menu sessions
    await rig.engine.housekeeping.run_once()
    if hourly:
        await catch_up(ledger)  # the month's grant if not yet run, then the R4 sweep
        await ledger.run_charging_once(now)


def _python_memory() -> int:
    """Bytes held by Python objects, less the test's own (the simulator records every PDU
    it receives, for the duplicate check)."""
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [
            tracemalloc.Filter(False, "*/smpp/sim*.py"),
            tracemalloc.Filter(False, "*/tests/*"),
            tracemalloc.Filter(False, tracemalloc.__file__),
        ]
    )
    return sum(stat.size for stat in snapshot.statistics("filename"))


@pytest.mark.slow
async def test_thirty_hours_compressed(
    database: Database,
    settings: Settings,
    clock: ManualClock,
    ledger: BonusLedger,
    membership: Membership,
) -> None:
    """30 simulated hours: partner messages only inside the two windows, the December grant
    once per member, expiries applied, the survey timed out, caps and no-duplicates hold,
    and Python memory grows by less than 4 MiB after warm-up."""
    clock.set(START)
    await members(database, MEMBERS)
    await _seed_bonuses(database)
    ussd = UssdDesk(database.pool, membership, ledger.activate_text, ledger.balance_text)
    survey = await campaign_from_spec(database, SURVEY, MEMBERS[400:500], clock.now())
    campaigns = 0
    tracemalloc.start()
    try:
        async with dispatch_rig(database, settings, clock) as rig:
            traffic = Traffic(rig, ussd)
            for step in range(STEPS):
                clock.advance(timedelta(minutes=10))
                now = clock.now()
                if step % 18 == 0:  # every 3 hours a new partner campaign
                    campaigns += 1
                    audience = MEMBERS[(campaigns * 50) % 500 :][:150]
                    await campaign(database, audience, texts={"ru": f"Soak offer {campaigns}"})
                await traffic.step(now)
                await rig.drain()
                await rig.receipts_settled(
                    await rig.database.pool.fetchval("SELECT count(*) FROM submits")
                )
                await _housekeeping(rig, ledger, ussd, now, hourly=step % 6 == 0)
                if step == WARM_UP:
                    baseline = _python_memory()
            growth = _python_memory() - baseline
            peak = tracemalloc.get_traced_memory()[1]
            fig = await check_invariants(database.pool, rig.sim, crashes=0, window=64)
    finally:
        tracemalloc.stop()
    pool = database.pool
    outside = await pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE submitted_at IS NOT NULL AND NOT "
        "(extract(hour FROM submitted_at AT TIME ZONE 'Asia/Almaty') BETWEEN 10 AND 20)"
    )
    days = await pool.fetch(
        "SELECT DISTINCT (submitted_at AT TIME ZONE 'Asia/Almaty')::date AS d FROM deliveries "
        "WHERE submitted_at IS NOT NULL ORDER BY 1"
    )
    december = await pool.fetchval(
        "SELECT count(*) FROM bonus_grants WHERE month = date '2026-12-01'"
    )
    twice = await pool.fetchval(
        "SELECT count(*) FROM (SELECT msisdn FROM bonus_grants GROUP BY msisdn, month "
        "HAVING count(*) > 1) x"
    )
    members_at_midnight = await pool.fetchval(
        "SELECT count(*) FROM memberships WHERE left_at IS NULL OR left_at > $1",
        datetime(2026, 12, 1, tzinfo=ASTANA),
    )
    grant_states = dict(
        await pool.fetch(  # the seeded grants: pending since October, activated on Nov 23
            "SELECT state::text, count(*) FROM bonus_grants WHERE (msisdn = ANY($1) "
            "AND month = date '2026-10-01') OR (msisdn = ANY($2) AND activated_at < $3) "
            "GROUP BY 1",
            MEMBERS[:100],
            MEMBERS[100:200],
            START,
        )
    )
    session_states = dict(
        await pool.fetch(
            "SELECT s.state::text, count(*) FROM survey_sessions s "
            "JOIN surveys v ON v.id = s.survey_id WHERE v.campaign_id = $1 GROUP BY 1",
            survey,
        )
    )
    print(
        f"\nsoak: {STEPS * 10 / 60:.0f} h, {campaigns} campaigns, {fig.submits} submits, "
        f"{traffic.sessions} USSD, December grants {december}, grant states {grant_states}, "
        f"survey sessions {session_states}; Python memory +{growth / 1024:.0f} KiB after "
        f"warm-up (peak {peak / 2**20:.1f} MiB)"
    )
    assert outside == 0
    assert [r["d"].day for r in days] == [30, 1]  # both windows sent
    assert twice == 0 and december >= members_at_midnight * 0.9
    assert grant_states == {"cancelled": 100, "expired": 100}
    assert session_states and "open" not in session_states
    assert growth < 4 * 2**20
