"""Never promise what won't come, searched (R3, R4, R6, R12): seeded random walks of one
number through joins, leaves, 1204, blocks, top-ups, recycling, monthly grants, sweeps and the
clock, each step followed by what the subscriber reads and what then happens.

After every step: ``*111*3#`` read, then ``*555*00#`` dialled — a balance that says "dial
*555*00#" is followed by an activation, one that says this month's activation is used by
"already activated", one that says the number is not active by a refusal for that; a join
that announces the present made a grant; and the database holds one grant per owner and
month.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Channel, Language, SubscriberStatus
from dispatcher.program.bonus import BonusLedger
from dispatcher.program.bonus_models import Activation
from dispatcher.program.membership import Membership
from dispatcher.settings import Settings
from tests.bonus_helpers import join, leave
from tests.factories import subscribers

WALKS, STEPS = 20, 40
#: Weighted: reads and joins often, the endings (leave, 1204, recycling) rarely, so walks
#: spend time in the states a member lives in.
ACTIONS = (
    *("join",) * 3,
    *("read",) * 5,
    "leave",
    "dnc",
    "blocked",
    "outgoing_blocked",
    *("active",) * 2,
    "recycle",
    *("hours",) * 2,
    *("days",) * 3,
    *("month",) * 2,
)


async def _most_grants_per_owner_month(database: Database, msisdn: str) -> int:
    most: int = await database.pool.fetchval(
        "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM bonus_grants "
        "WHERE msisdn = $1 GROUP BY owner_epoch, month) AS per_month",
        msisdn,
    )
    return most


async def _status(
    membership: Membership, database: Database, msisdn: str, status: str, now: datetime
) -> None:
    async with database.pool.acquire() as conn, conn.transaction():
        await membership.set_status(conn, msisdn, SubscriberStatus(status), {}, now)


async def _step(
    action: str,
    rng: random.Random,
    msisdn: str,
    database: Database,
    ledger: BonusLedger,
    membership: Membership,
    clock: ManualClock,
) -> None:
    now = clock.now()
    pool = database.pool
    if action == "join":
        before = await pool.fetchval("SELECT count(*) FROM bonus_grants WHERE msisdn = $1", msisdn)
        change = await join(pool, membership, msisdn, now)
        after = await pool.fetchval("SELECT count(*) FROM bonus_grants WHERE msisdn = $1", msisdn)
        if "A present of" in change.text:
            assert after == before + 1, change.text
        if "already received" in change.text:
            assert after == before, change.text
    elif action == "leave":
        await leave(pool, membership, msisdn, now)
    elif action == "dnc":
        async with pool.acquire() as conn, conn.transaction():
            await membership.dnc_block(conn, msisdn, Channel.IVR, {"event_id": None}, now)
    elif action in ("blocked", "outgoing_blocked", "active"):
        await _status(membership, database, msisdn, action, now)
    elif action == "recycle":
        await _status(membership, database, msisdn, "recycled", now)
        await _status(membership, database, msisdn, "active", now)
    elif action == "hours":
        clock.advance(timedelta(hours=rng.randint(1, 20)))
    elif action == "days":
        clock.advance(timedelta(days=rng.randint(1, 12)))
        await ledger.sweep(clock.now())
    elif action == "month":
        clock.advance(timedelta(days=rng.randint(20, 35)))
        await ledger.grant_month(clock.now(), force=True)
        await ledger.sweep(clock.now())


async def _read_then_dial(
    ledger: BonusLedger, zone: ZoneInfo, msisdn: str, clock: ManualClock
) -> None:
    """What *111*3# says is what *555*00# then does."""
    now = clock.now()
    shown = await ledger.balance_text(msisdn, Language.EN, now)
    result = await ledger.activate(msisdn, now)
    if "dial *555*00# by" in shown:
        assert result.outcome is Activation.ACTIVATED, (shown, result)
    if "activation is used" in shown:
        assert result.outcome is Activation.ALREADY_ACTIVATED, (shown, result)
    if "not active" in shown:
        assert result.outcome is Activation.NOT_ACTIVE, (shown, result)
    text = result.text(Language.EN, zone)
    assert "dial *555*00#" not in text or result.outcome is Activation.ACTIVATED


async def test_what_is_said_is_what_happens(
    database: Database,
    settings: Settings,
    ledger: BonusLedger,
    membership: Membership,
    clock: ManualClock,
) -> None:
    """Seeded walks: every balance and join reply along the way is borne out by the next
    activation and by the grants table (R3, R4, R6, R12)."""
    for walk in range(WALKS):
        rng = random.Random(walk)
        msisdn = f"7701888{walk:04d}"
        await subscribers(database, [msisdn], language="en")
        for _ in range(STEPS):
            action = rng.choice(ACTIONS)
            await _step(action, rng, msisdn, database, ledger, membership, clock)
            if action == "read":
                await _read_then_dial(ledger, settings.calendar.zone, msisdn, clock)
            assert await _most_grants_per_owner_month(database, msisdn) <= 1
