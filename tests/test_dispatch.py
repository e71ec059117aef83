"""The dispatch engine end to end: real PostgreSQL, real SMPP over 127.0.0.1 (issue 5)."""

from __future__ import annotations

from datetime import UTC, datetime

from dispatcher.clock import ManualClock
from dispatcher.db import Database
from dispatcher.settings import Settings
from tests.dispatch_helpers import add_campaign, add_members, dispatch_rig

NUMBERS = [f"7701{n:07d}" for n in range(1, 21)]


async def test_campaign_sent_and_delivered(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """Members get the campaign once each; receipts turn submitted into delivered."""
    await add_members(database, NUMBERS)
    campaign = await add_campaign(database, NUMBERS)
    async with dispatch_rig(database, settings, clock) as rig:
        assert await rig.drain() == len(NUMBERS)
        assert await rig.states(campaign) == {"submitted": len(NUMBERS)}
        destinations = sorted(sm.destination_addr for _, sm in rig.sim.submits())
        assert destinations == NUMBERS
        await rig.receipts_settled(len(NUMBERS))
        assert await rig.states(campaign) == {"delivered": len(NUMBERS)}


async def test_validity_ends_when_window_closes(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """R8: every submit's validity_period ends at 21:00 Astana time that day."""
    await add_members(database, NUMBERS[:3])
    await add_campaign(database, NUMBERS[:3])
    async with dispatch_rig(database, settings, clock) as rig:
        await rig.drain()
        validities = {sm.validity_period for _, sm in rig.sim.submits()}
        assert validities == {"261123210000020+"}


async def test_nothing_claimed_outside_window(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """R8: at 21:00 nothing is claimed; at 10:00 the next day it goes."""
    await add_members(database, NUMBERS[:3])
    campaign = await add_campaign(database, NUMBERS[:3])
    clock.set(datetime(2026, 11, 23, 16, 0, tzinfo=UTC))  # 21:00 Astana
    async with dispatch_rig(database, settings, clock) as rig:
        assert await rig.drain() == 0
        assert rig.sim.submits() == []
        clock.set(datetime(2026, 11, 24, 5, 0, tzinfo=UTC))  # 10:00 Astana
        assert await rig.drain() == 3
        assert await rig.states(campaign) == {"submitted": 3}


async def test_ineligible_are_suppressed_with_reason(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """Non-members, 1204-blocked and blocked numbers are suppressed with their reason."""
    member, outsider, dnc, blocked, unknown = NUMBERS[:5]
    await add_members(database, [member, dnc, blocked])
    await add_members(database, [outsider], member=False)
    await database.pool.execute(
        "INSERT INTO dnc_blocks (msisdn, blocked_at, channel) VALUES ($1, now(), 'sms')", dnc
    )
    await database.pool.execute(
        "UPDATE subscribers SET status = 'blocked' WHERE msisdn = $1", blocked
    )
    campaign = await add_campaign(database, [member, outsider, dnc, blocked, unknown])
    async with dispatch_rig(database, settings, clock) as rig:
        await rig.drain()
        assert await rig.states(campaign) == {
            "submitted": 1,
            "not_member": 2,
            "dnc": 1,
            "blocked": 1,
        }
        assert [sm.destination_addr for _, sm in rig.sim.submits()] == [member]


async def test_info_cap_across_campaigns(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """R7 / invariant 1: the 11th info message of a month is suppressed as cap_info."""
    number = NUMBERS[0]
    await add_members(database, [number])
    campaigns = [await add_campaign(database, [number]) for _ in range(11)]
    async with dispatch_rig(database, settings, clock) as rig:
        await rig.drain()
        states = [await rig.states(c) for c in campaigns]
        assert states.count({"submitted": 1}) == 10
        assert states.count({"cap_info": 1}) == 1
        assert len(rig.sim.submits()) == 10
