"""What ``smartd serve`` runs beside the HTTP API: the SMPP session, the dispatch loop, the
receipt applier and campaign housekeeping, opened and closed in aiohttp's cleanup_ctx.

Each loop is a thin wrapper around a ``run_once``-style call, so tests drive the same code
with a ManualClock instead of running these tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta

import asyncpg
import structlog
from aiohttp import web

from campaigns import surveys
from campaigns.repository import CampaignRepository
from dispatcher.clock import Clock
from dispatcher.db import create_pool
from dispatcher.engine.engine import Dispatcher, EngineConfig
from dispatcher.engine.inbound import InboundSink
from dispatcher.engine.repository import MessageOutcome
from dispatcher.program.mo import MoDesk
from dispatcher.settings import Settings
from dispatcher.web.keys import CLOCK, DATABASE, MEMBERSHIP, READINESS, SETTINGS, USSD
from smpp.config import Address, BindMode, SessionConfig
from smpp.constants import Tag
from smpp.inbound import UssdIndication
from smpp.session import Session
from smpp.stats import SessionState
from smpp.text import encode_message

log = structlog.get_logger(__name__)

DISPATCHER = web.AppKey("dispatcher", Dispatcher)
SESSION = web.AppKey("smpp_session", Session)
ENGINE_STATEMENT_TIMEOUT = 30.0  # seconds
RECEIPT_RECHECK = timedelta(seconds=5)
SHUTDOWN_GRACE = 5.0  # seconds the loops get to finish their pass before the session closes
RECEIPT_GIVE_UP = timedelta(days=3)
USSD_PSSR_RESPONSE = 17  # ussd_service_op: PSSR response (ends the dialogue)
USSD_USSR_REQUEST = 2  # ussd_service_op: USSR request (the dialogue goes on)


def session_config(settings: Settings) -> SessionConfig:
    mode = (
        BindMode.TRANSCEIVER if settings.smpp_bind_mode == "trx" else BindMode.TRANSMITTER_RECEIVER
    )
    return SessionConfig(
        host=settings.smpp_host,
        port=settings.smpp_port,
        system_id=settings.smpp_system_id,
        password=settings.smpp_password,
        system_type=settings.smpp_system_type,
        bind_mode=mode,
        window=settings.smpp_window,
        tps=settings.smpp_tps,
        burst=1,  # paced evenly: the SMSC counts over a window, never exceed it within one
    )


async def open_survey_sessions(
    conn: asyncpg.Connection, outcomes: Sequence[MessageOutcome], now: datetime
) -> None:
    """R13: a survey's first question accepted by the SMSC opens the number's session."""
    await surveys.open_sessions(
        conn,
        [
            surveys.FirstQuestion(
                o.message.campaign_id or 0, o.message.id, o.message.msisdn, o.message.language
            )
            for o in outcomes
        ],
        now,
    )


async def survey_reply(conn: asyncpg.Connection, msisdn: str, text: str, now: datetime) -> bool:
    return await surveys.handle_reply(conn, msisdn, text, now) is not None


def ussd_replier(
    session: Session, settings: Settings
) -> Callable[[UssdIndication, str, bool], Awaitable[None]]:
    source = Address.short_code(settings.short_code)

    async def reply(indication: UssdIndication, text: str, end: bool) -> None:
        op = USSD_PSSR_RESPONSE if end else USSD_USSR_REQUEST
        tlvs: dict[int, bytes] = {Tag.USSD_SERVICE_OP: bytes((op,))}
        if indication.session_info is not None:
            tlvs[Tag.ITS_SESSION_INFO] = indication.session_info
        for part in encode_message(text)[:1]:  # one USSD screen: the texts are sized for it
            await session.submit(
                part,
                source=source,
                destination=Address.international(indication.source_addr),
                registered_delivery=0,
                extra_tlvs=tlvs,
            )

    return reply


async def engine_ctx(app: web.Application) -> AsyncIterator[None]:
    """SMPP session, dispatcher, receipt applier and housekeeping for the app's lifetime."""
    settings, clock = app[SETTINGS], app[CLOCK]
    # The hot path gets its own pool with a statement timeout: its statements are batches of
    # at most a few thousand rows, and one stuck on a connection the database dropped must
    # fail (the engine then retires its node and recovers) rather than hang the loop.
    pool = await create_pool(
        app[DATABASE].url,
        min_size=2,
        max_size=settings.db_pool_max,
        command_timeout=ENGINE_STATEMENT_TIMEOUT,
    )
    holder: dict[str, InboundSink] = {}

    async def inbound(event: object) -> None:
        await holder["sink"](event)  # type: ignore[arg-type]

    session = Session(session_config(settings), inbound)
    dispatcher = Dispatcher(
        pool,
        settings,
        clock,
        session,
        smsc=settings.smpp_host,
        config=EngineConfig(window=settings.smpp_window),
        on_submitted=open_survey_sessions,
        ready=lambda: session.state is SessionState.BOUND,
    )
    mo = MoDesk(app[MEMBERSHIP], settings.short_code, settings.dnc_code, survey_reply)
    holder["sink"] = InboundSink(
        pool,
        dispatcher.repo,
        clock,
        mo,
        app[USSD],
        ussd_replier(session, settings),
        settings.default_region,
    )
    app[SESSION] = session
    app[DISPATCHER] = dispatcher
    app[READINESS]["smpp"] = lambda: session.state is SessionState.BOUND
    session.start()
    await dispatcher.start()
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(dispatcher.run(stop), name="dispatch"),
        asyncio.create_task(_every(stop, 1.0, _receipts_once(dispatcher, clock)), name="receipts"),
        # Housekeeping statements can touch a whole campaign: the main pool, no short timeout.
        asyncio.create_task(
            _every(stop, 1.0, _housekeeping(app[DATABASE].pool, dispatcher, clock)), name="hk"
        ),
    ]
    try:
        yield
    finally:
        stop.set()
        # A dispatch pass may be waiting for a bind that never comes (the SMSC is down):
        # its submits wait without limit, so waiting for the loops first never ended and
        # SIGTERM hung serve (tests/reliability/test_smsc_faults.py::
        # test_serve_stops_cleanly_while_the_smsc_is_down). Give the loops a moment to end
        # their pass, then close the session: a submit still waiting for a bind raises
        # SessionClosed (nothing was written, so its row goes back to the queue).
        await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE)
        await session.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        await dispatcher.close()
        await pool.close()


def _receipts_once(dispatcher: Dispatcher, clock: Clock) -> Callable[[], Awaitable[int]]:
    async def once() -> int:
        now = clock.now()
        applied = await dispatcher.repo.apply_receipts(
            1000, now, now + RECEIPT_RECHECK, now - RECEIPT_GIVE_UP
        )
        return applied.matched

    return once


def _housekeeping(
    pool: asyncpg.Pool, dispatcher: Dispatcher, clock: Clock
) -> Callable[[], Awaitable[int]]:
    campaigns = CampaignRepository(pool)
    passes = 0

    async def once() -> int:
        nonlocal passes
        now = clock.now()
        if await campaigns.activate_due(now):
            dispatcher.wake()
        await campaigns.expire_due(now)
        await campaigns.complete_finished(now)
        await surveys.timeout_sweep(pool, now)
        passes += 1
        if passes % 30 == 0:  # surviving replicas take over what a dead one held
            await dispatcher.recover()
        return 0

    return once


async def _every(stop: asyncio.Event, interval: float, once: Callable[[], Awaitable[int]]) -> None:
    """Run ``once`` until ``stop``; again at once while it finds work, else after ``interval``."""
    while not stop.is_set():
        try:
            busy = await once()
        except Exception as exc:  # the loop must outlive any one pass
            expected = isinstance(exc, OSError | asyncpg.PostgresError | asyncpg.InterfaceError)
            log.warning(
                "background pass failed; retrying",
                task=once.__qualname__,
                error=repr(exc),
                exc_info=not expected,
            )
            busy = 0
        if busy:
            continue
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await stop.wait()
