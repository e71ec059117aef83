"""A real dispatch rig for tests: database, SMSC simulator on 127.0.0.1, SMPP session,
dispatcher and inbound sink, all driven by ``run_once`` and a ManualClock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from dispatcher.clock import ManualClock
from dispatcher.db import Database
from dispatcher.engine.engine import Dispatcher, EngineConfig
from dispatcher.engine.inbound import InboundSink
from dispatcher.program.membership import Membership
from dispatcher.program.mo import MoDesk
from dispatcher.program.service import NoBonus
from dispatcher.runtime import open_survey_sessions, survey_reply
from dispatcher.settings import Settings
from smpp.config import SessionConfig
from smpp.ratelimit import Backoff
from smpp.session import Session
from smpp.simulator import SimulatorOptions, SmscSimulator
from smpp.stats import SessionState

# Re-exported while tests/test_dispatch.py and tests/test_inbound_smpp.py import them from here.
from tests.factories import add_campaign as add_campaign
from tests.factories import add_members as add_members


@dataclass
class Rig:
    database: Database
    settings: Settings
    clock: ManualClock
    sim: SmscSimulator
    session: Session
    dispatcher: Dispatcher
    sink: InboundSink

    async def drain(self) -> int:
        """run_once until a pass claims nothing; returns the rows handled."""
        total = 0
        while done := await self.dispatcher.run_once():
            total += done
        return total

    async def receipts_settled(self, expected: int) -> None:
        """Wait until ``expected`` receipts were committed, then apply them."""
        async with asyncio.timeout(10):
            await self.sink.receipts.wait_committed(expected)
        await self.apply_receipts()

    async def apply_receipts(self) -> None:
        now = self.clock.now()
        await self.dispatcher.repo.apply_receipts(1000, now, now, now.replace(year=2000))

    async def states(self, campaign_id: int) -> dict[str, int]:
        rows = await self.database.pool.fetch(
            "SELECT coalesce(suppressed::text, state::text) AS s, count(*) FROM deliveries "
            "WHERE campaign_id = $1 GROUP BY 1",
            campaign_id,
        )
        return {r["s"]: r["count"] for r in rows}


@asynccontextmanager
async def dispatch_rig(
    database: Database,
    settings: Settings,
    clock: ManualClock,
    *,
    sim_options: dict[str, Any] | None = None,
    session_options: dict[str, Any] | None = None,
    engine: EngineConfig | None = None,
) -> AsyncIterator[Rig]:
    options = {"credentials": {"smartd": "pw"}, "seed": 1, **(sim_options or {})}
    sim = SmscSimulator(SimulatorOptions(**options))
    port = await sim.start()
    membership = Membership(settings, NoBonus())
    mo = MoDesk(membership, settings.short_code, settings.dnc_code, survey_reply)
    config = SessionConfig(
        host="127.0.0.1",
        port=port,
        system_id="smartd",
        password="pw",
        reconnect=Backoff(base=0.01, cap=0.05),
        response_timeout=2.0,
        **(session_options or {}),
    )
    holder: dict[str, InboundSink] = {}

    async def handler(event: Any) -> None:
        await holder["sink"](event)

    session = Session(config, handler)
    dispatcher = Dispatcher(
        database.pool,
        settings,
        clock,
        session,
        config=engine or EngineConfig(window=64),
        on_submitted=open_survey_sessions,
        ready=lambda: session.state is SessionState.BOUND,
    )
    holder["sink"] = InboundSink(database.pool, dispatcher.repo, clock, mo)
    session.start()
    try:
        async with asyncio.timeout(5):
            await session.wait_bound()
        await dispatcher.start()
        yield Rig(database, settings, clock, sim, session, dispatcher, holder["sink"])
    finally:
        await dispatcher.close()
        await session.close()
        await sim.stop()
