"""What ``smartd serve`` runs beside the HTTP API: the engine (SMPP session, dispatch loop,
receipts, housekeeping, recovery; see :mod:`dispatcher.engine.build`), opened and closed in
aiohttp's cleanup_ctx."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from dispatcher.db import create_pool
from dispatcher.engine.build import Engine, Program, build_engine
from dispatcher.web.keys import CLOCK, DATABASE, MEMBERSHIP, READINESS, SETTINGS, USSD
from smpp.session import Session

ENGINE = web.AppKey("engine", Engine)
SESSION = web.AppKey("smpp_session", Session)
ENGINE_STATEMENT_TIMEOUT = 30.0  # seconds


async def engine_ctx(app: web.Application) -> AsyncIterator[None]:
    """The engine with its loops for the app's lifetime."""
    settings = app[SETTINGS]
    # The hot path gets its own pool with a statement timeout: its statements are batches of
    # at most a few thousand rows, and one stuck on a connection the database dropped must
    # fail (the engine then retires its node and recovers) rather than hang the loop.
    pool = await create_pool(
        app[DATABASE].url,
        min_size=2,
        max_size=settings.db_pool_max,
        command_timeout=ENGINE_STATEMENT_TIMEOUT,
    )
    try:
        engine = build_engine(
            settings,
            app[CLOCK],
            pool,
            Program(app[MEMBERSHIP], app[USSD]),
            # Housekeeping statements can touch a whole campaign: the main pool, no short
            # timeout.
            housekeeping_pool=app[DATABASE].pool,
        )
        app[ENGINE] = engine
        app[SESSION] = engine.session
        app[READINESS]["smpp"] = engine.bound
        async with engine:
            engine.run_loops()
            yield
    finally:
        await pool.close()
