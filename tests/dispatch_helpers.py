"""A real dispatch rig for tests: database, SMSC simulator on 127.0.0.1, and the engine as
serve builds it (:func:`build_engine`), driven by ``run_once`` and a ManualClock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from dispatcher.db import Database
from dispatcher.engine.build import Engine, Program, build_engine
from dispatcher.engine.engine import Dispatcher, EngineConfig
from dispatcher.engine.sink import InboundSink
from dispatcher.kernel.clock import ManualClock
from dispatcher.program.bonus import BonusLedger
from dispatcher.program.charging import charging_from_settings
from dispatcher.settings import Settings
from smpp.config import SessionConfig
from smpp.ratelimit import Backoff
from smpp.session import Session
from smpp.simulator import SimulatorOptions, SmscSimulator

# Re-exported while tests/test_dispatch.py and tests/test_inbound_smpp.py import them from here.
from tests.factories import add_campaign as add_campaign
from tests.factories import add_members as add_members


@dataclass
class Rig:
    database: Database
    settings: Settings
    clock: ManualClock
    sim: SmscSimulator
    engine: Engine

    @property
    def session(self) -> Session:
        return self.engine.session

    @property
    def dispatcher(self) -> Dispatcher:
        return self.engine.dispatcher

    @property
    def sink(self) -> InboundSink:
        return self.engine.sink

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
        """The receipts service's passes until one finds nothing."""
        while await self.engine.receipts.run_once():
            pass

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
    program: Program | None = None,
    sim: SmscSimulator | None = None,
) -> AsyncIterator[Rig]:
    """A simulator and a bound engine over it. ``program`` defaults to the program's desks
    as serve builds them (the bonus ledger on its own ledger). ``sim``: a running simulator
    to bind to (a second engine beside another rig's), left running afterwards."""
    own = sim is None
    if sim is None:
        options = {"credentials": {"smartd": "pw"}, "seed": 1, **(sim_options or {})}
        sim = SmscSimulator(SimulatorOptions(**options))
        port = await sim.start()
    else:
        port = sim.port
    ledger = BonusLedger(database.pool, settings, clock, charging_from_settings(settings))
    config = SessionConfig(
        host="127.0.0.1",
        port=port,
        system_id="smartd",
        password="pw",
        reconnect=Backoff(base=0.01, cap=0.05),
        response_timeout=2.0,
        **(session_options or {}),
    )
    built = build_engine(
        settings,
        clock,
        database.pool,
        program or Program.over(database.pool, settings, ledger),
        session_config=config,
        engine_config=engine or EngineConfig(window=64),
    )
    try:
        async with built:
            async with asyncio.timeout(5):
                await built.session.wait_bound()
            yield Rig(database, settings, clock, sim, built)
    finally:
        await ledger.close()
        if own:
            await sim.stop()
