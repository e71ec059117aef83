"""The engine's background services and their runner (issue 10): one pass each with a
ManualClock, and the runner's loop."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest

from dispatcher.db import Database
from dispatcher.engine.build import Program
from dispatcher.engine.services import run_service
from dispatcher.kernel.clock import ManualClock
from dispatcher.program.bonus import BonusLedger
from dispatcher.settings import Settings
from tests.dispatch_helpers import add_campaign, add_members, dispatch_rig

NUMBERS = [f"7705{n:07d}" for n in range(1, 4)]


class Scripted:
    """A service whose passes return (or raise) what the script says, then stop the loop."""

    name = "scripted"
    interval = 0.0  # no waiting between idle passes: the test never sleeps

    def __init__(self, script: list[int | Exception], stop: asyncio.Event) -> None:
        self.script = script
        self.stop = stop
        self.passes = 0

    async def run_once(self) -> int:
        self.passes += 1
        if not self.script:
            self.stop.set()
            return 0
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


async def test_runner_goes_on_while_busy_and_outlives_a_failed_pass() -> None:
    """The runner calls run_once again while it finds work, and a pass that raises (any
    exception) is logged and followed by the next one."""
    stop = asyncio.Event()
    service = Scripted([3, 1, RuntimeError("boom"), 0, ValueError("bad"), 2], stop)
    async with asyncio.timeout(5):
        await run_service(service, stop)
    assert service.passes == 7 and service.script == []


async def test_runner_stops_at_once_when_told() -> None:
    """A stop set while the runner waits out its interval ends the loop."""
    stop = asyncio.Event()
    service = Scripted([0], stop)
    service.interval = 3600.0
    runner = asyncio.create_task(run_service(service, stop))
    await asyncio.sleep(0)  # the first pass runs, then the runner waits
    stop.set()
    async with asyncio.timeout(5):
        await runner
    assert service.passes == 1


async def test_housekeeping_starts_a_due_campaign(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """A scheduled campaign starts when the clock reaches start_at, and is then sent."""
    await add_members(database, NUMBERS)
    campaign = await add_campaign(
        database, NUMBERS, state="scheduled", start_at=clock.now() + timedelta(hours=1)
    )
    async with dispatch_rig(database, settings, clock) as rig:
        assert await rig.engine.housekeeping.run_once() == 0
        assert await rig.drain() == 0
        clock.advance(timedelta(hours=1))
        assert await rig.engine.housekeeping.run_once() == 1
        assert await rig.drain() == len(NUMBERS)
        assert await rig.states(campaign) == {"submitted": len(NUMBERS)}


@pytest.mark.parametrize("idle_seconds", [180.0, 900.0])
async def test_housekeeping_forgets_abandoned_ussd_sessions(
    database: Database,
    settings: Settings,
    clock: ManualClock,
    ledger: BonusLedger,
    idle_seconds: float,
) -> None:
    """A USSD menu session the gateway never finished is forgotten by housekeeping once the
    ussd_session_timeout setting has passed since it was last touched, not a second before."""
    settings = dataclasses.replace(settings, ussd_session_timeout=idle_seconds)
    await add_members(database, NUMBERS[:1])
    program = Program.over(database.pool, settings, ledger)
    async with dispatch_rig(database, settings, clock, program=program) as rig:
        ussd = program.ussd
        await ussd.handle(NUMBERS[0], "abandoned", "*555#", clock.now())
        sessions = "SELECT count(*) FROM ussd_sessions"
        clock.advance(timedelta(seconds=idle_seconds - 1))
        await rig.engine.housekeeping.run_once()
        assert await database.pool.fetchval(sessions) == 1
        clock.advance(timedelta(seconds=2))
        await rig.engine.housekeeping.run_once()
        assert await database.pool.fetchval(sessions) == 0


async def test_recovery_takes_back_a_dead_nodes_rows(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """Rows claimed by a node that holds no lock (it died) go back to the queue and are sent."""
    await add_members(database, NUMBERS)
    campaign = await add_campaign(database, NUMBERS)
    async with dispatch_rig(database, settings, clock) as rig:
        await database.pool.execute(
            "UPDATE deliveries SET state = 'claimed', claimed_by = 'dead-node' "
            "WHERE campaign_id = $1",
            campaign,
        )
        assert await rig.engine.recovery.run_once() == len(NUMBERS)
        assert await rig.engine.recovery.run_once() == 0
        assert await rig.drain() == len(NUMBERS)


async def test_loops_send_a_campaign_and_close_ends_them(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """With the loops running (as serve runs them), a campaign goes out by itself; closing the
    engine stops the loops."""
    await add_members(database, NUMBERS)
    campaign = await add_campaign(database, NUMBERS)
    async with dispatch_rig(database, settings, clock) as rig:
        rig.engine.run_loops()
        await rig.sim.wait_for(lambda: len(rig.sim.submits()) == len(NUMBERS))
    assert await rig.states(campaign) == {"submitted": len(NUMBERS)}
