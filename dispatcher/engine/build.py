"""The engine, wired in one place: SMPP session, dispatcher, inbound sink and background
services. ``smartd serve``, the demo, the test rig and the benchmark all build it with
:func:`build_engine`, so they handle inbound traffic alike (receipts, MO with survey replies,
USSD answered over SMPP) and differ only in connection parameters and sizes.

Serve and the benchmark run the loops (:meth:`Engine.run_loops`); the demo and the tests
drive the same code with ``run_once`` and a ManualClock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Self

import asyncpg

from dispatcher.engine.engine import Dispatcher, EngineConfig
from dispatcher.engine.repository import MessageOutcome
from dispatcher.engine.services import (
    HousekeepingService,
    ReceiptService,
    RecoveryService,
    Service,
    run_service,
)
from dispatcher.engine.share import GrantShare
from dispatcher.engine.sink import InboundSink
from dispatcher.engine.status import BindReport
from dispatcher.kernel.clock import Clock
from dispatcher.policy.grant import pacing_burst
from dispatcher.program import surveys
from dispatcher.program.bonus import BonusLedger
from dispatcher.program.membership import Membership
from dispatcher.program.mo import MoDesk
from dispatcher.program.ussd import UssdDesk
from dispatcher.settings import Settings
from smpp.config import Address, BindMode, SessionConfig
from smpp.constants import Tag
from smpp.inbound import UssdIndication
from smpp.receipts import IdFormat
from smpp.session import Session
from smpp.stats import SessionState
from smpp.text import encode_screen

SHUTDOWN_GRACE = 5.0  # seconds the loops get to finish their pass before the session closes
USSD_PSSR_RESPONSE = 17  # ussd_service_op: PSSR response (ends the dialogue)
USSD_USSR_REQUEST = 2  # ussd_service_op: USSR request (the dialogue goes on)


@dataclass(frozen=True)
class Program:
    """What the engine's inbound side needs of the program: membership (STOP and 1204 by
    SMS) and the USSD desk (USSD indications over SMPP)."""

    membership: Membership
    ussd: UssdDesk

    @classmethod
    def over(cls, pool: asyncpg.Pool, settings: Settings, bonus: BonusLedger) -> Program:
        """The program's desks over ``pool``, with ``bonus`` as the bonus ledger."""
        membership = Membership(settings, bonus)
        return cls(membership, UssdDesk(pool, membership, bonus.activate_text, bonus.balance_text))


def smpp_session_config(settings: Settings) -> SessionConfig:
    """The SMPP session ``smartd serve`` opens, from the ``SMARTD_SMPP_*`` settings."""
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
        # Paced evenly, but a pacer woken late may catch up within a burst: with 1, each
        # late wake-up (the loop's timer granularity, other tasks first) was lost, 6-20 % of
        # the rate. With SMARTD_SMPP_ACCOUNT_TPS the share sets the rate and burst at once.
        burst=_burst_of(settings.smpp_tps, settings),
        inbound_concurrency=settings.smpp_inbound_concurrency,
        inbound_backlog=settings.smpp_inbound_backlog,
        reassembly_timeout=settings.smpp_reassembly_timeout,
        reassembly_max_parts=settings.smpp_reassembly_max_parts,
        reassembly_max_bytes=settings.smpp_reassembly_max_bytes,
        id_format=IdFormat(settings.smpp_id_format),
    )


class Engine:
    """One SMPP session with its dispatcher, inbound sink and background services.

    ``start()`` begins binding (in the background) and announces the dispatcher's node;
    ``run_loops()`` runs the dispatch loop and every service until ``close()``, which stops
    them, closes the session and retires the node. Use as ``async with build_engine(...)``.
    """

    def __init__(
        self,
        session: Session,
        dispatcher: Dispatcher,
        sink: InboundSink,
        receipts: ReceiptService,
        housekeeping: HousekeepingService,
        recovery: RecoveryService,
        share: GrantShare | None = None,
        binds: BindReport | None = None,
    ) -> None:
        self.session = session
        self.share = share
        self.dispatcher = dispatcher
        self.sink = sink
        self.receipts = receipts
        self.housekeeping = housekeeping
        self.recovery = recovery
        self.services: tuple[Service, ...] = (receipts, housekeeping, recovery)
        if share is not None:
            self.services = (share, *self.services)
        self.binds = binds  # the bind in smsc_binds, for every replica's status (issue 14)
        if binds is not None:
            self.services = (*self.services, binds)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def bound(self) -> bool:
        """Whether the SMPP session is bound (the engine's readiness)."""
        return self.session.state is SessionState.BOUND

    async def start(self) -> None:
        """Begin binding (without waiting for it) and announce the dispatcher's node, which
        recovers what dead nodes held."""
        self.session.start()
        try:
            await self.dispatcher.start()
            if self.share is not None:
                await self.share.beat()  # a first share (0 until the others make room)
            await self.receipts.start()
            if self.binds is not None:
                await self.binds.run_once()
        except BaseException:
            await self.session.close()
            raise

    def run_loops(self) -> None:
        """Run the dispatch loop and each service's loop in the background until close()."""
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self.dispatcher.run(self._stop), name="dispatch"),
            *(asyncio.create_task(run_service(s, self._stop), name=s.name) for s in self.services),
        ]

    async def run_services_once(self) -> int:
        """Each service until a pass finds nothing: what the loops do, for a ManualClock."""
        total = 0
        for service in self.services:
            while done := await service.run_once():
                total += done
        return total

    async def close(self) -> None:
        """Stop the loops, close the session (outstanding submits resolve and are recorded),
        then retire the node."""
        self._stop.set()
        # A dispatch pass may be waiting for a bind that never comes (the SMSC is down):
        # its submits wait without limit, so waiting for the loops first never ended and
        # SIGTERM hung serve (tests/reliability/test_smsc_faults.py::
        # test_serve_stops_cleanly_while_the_smsc_is_down). Give the loops a moment to end
        # their pass, then close the session: a submit still waiting for a bind raises
        # SessionClosed (nothing was written, so its row goes back to the queue).
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=SHUTDOWN_GRACE)
        await self.session.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.sink.answers.flush()  # what became of the last MO responses
        if self.share is not None:
            with contextlib.suppress(Exception):  # the node lock's release frees it anyway
                await self.share.leave()
        if self.binds is not None:
            with contextlib.suppress(Exception):  # a dead node's row is ignored anyway
                await self.binds.leave()
        await self.dispatcher.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def build_engine(
    settings: Settings,
    clock: Clock,
    pool: asyncpg.Pool,
    program: Program,
    *,
    session_config: SessionConfig | None = None,
    engine_config: EngineConfig | None = None,
    smsc: str | None = None,
    housekeeping_pool: asyncpg.Pool | None = None,
) -> Engine:
    """The engine over ``pool`` (the hot path's), not started.

    ``session_config`` defaults to the ``SMARTD_SMPP_*`` settings, ``smsc`` (the name the
    SMSC's message ids are kept under) to its host; ``housekeeping_pool`` (campaign-wide
    statements) to ``pool``. The caller owns the pools and closes them after the engine.
    """
    config = session_config or smpp_session_config(settings)
    session = Session(config)
    share: GrantShare | None = None

    def apply(rate: float) -> None:
        session.set_tps(rate, _burst_of(rate, settings))
        if rate > 0:
            dispatcher.wake()  # a share to send at: claim now, not at the next poll

    if settings.smpp_account_tps is not None:
        # the account's grant, shared with the other live replicas (SMARTD_SMPP_TPS unused)
        share = GrantShare(
            pool,
            settings.smpp_account,
            settings.smpp_account_tps,
            settings.smpp_account_binds,
            node=lambda: dispatcher.node,
            live=lambda: dispatcher.holds_node,
            apply=apply,
            ready=lambda: session.state is SessionState.BOUND,
            interval=settings.smpp_share_interval,
        )
    dispatcher = Dispatcher(
        pool,
        settings,
        clock,
        session,
        smsc=smsc or config.host,
        config=engine_config or EngineConfig(window=config.window),
        on_submitted=open_survey_sessions,
        ready=lambda: session.state is SessionState.BOUND,
        tps=(lambda: share.rate) if share is not None else None,
    )
    # R13: an SMS to the short code answers the number's open survey (or waits for it)
    mo = MoDesk(program.membership, settings.short_code, settings.dnc_code, surveys.reply)
    sink = InboundSink(
        pool,
        dispatcher.repo,
        clock,
        mo,
        node=lambda: dispatcher.node,  # renewed when its lock's connection is lost
        ussd=program.ussd,
        ussd_reply=ussd_replier(session, settings),
        region=settings.default_region,
        receipt_zone=settings.calendar.zone,
        attribution_span=timedelta(days=settings.inbox_attribution_days),
    )
    session.set_handler(sink)
    return Engine(
        session,
        dispatcher,
        sink,
        ReceiptService(dispatcher, clock, settings, config.id_format),
        HousekeepingService(
            housekeeping_pool or pool, clock, settings, dispatcher.wake, program.ussd
        ),
        RecoveryService(dispatcher, settings),
        share,
        BindReport(
            pool,
            smsc or config.host,
            node=lambda: dispatcher.node,
            bound=lambda: session.state is SessionState.BOUND,
            now=clock.now,
        ),
    )


def _burst_of(rate: float, settings: Settings) -> int:
    """The burst this replica paces with at ``rate`` (:func:`pacing_burst`): from its part of
    the account's burst, or without SMARTD_SMPP_ACCOUNT_TPS from the bind's own
    (SMARTD_SMPP_ACCOUNT_BURST, or a twentieth of SMARTD_SMPP_TPS)."""
    grant = settings.smpp_account_tps or rate
    return pacing_burst(settings.smpp_account_burst_size, grant, rate)


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


def ussd_replier(
    session: Session, settings: Settings
) -> Callable[[UssdIndication, str, bool], Awaitable[None]]:
    """Answers a USSD indication on ``session``: one screen in one submit_sm, PSSR response
    when the dialogue ends, USSR request when it goes on (a menu, a paged answer), the
    indication's session info echoed."""
    source = Address.short_code(settings.short_code)

    async def reply(indication: UssdIndication, text: str, end: bool) -> None:
        op = USSD_PSSR_RESPONSE if end else USSD_USSR_REQUEST
        tlvs: dict[int, bytes] = {Tag.USSD_SERVICE_OP: bytes((op,))}
        if indication.session_info is not None:
            tlvs[Tag.ITS_SESSION_INFO] = indication.session_info
        # R14: one screen whole in one PDU (the desk pages what does not fit); an SMS part
        # would cut a UCS-2 screen at 67 characters behind a concatenation header
        await session.submit(
            encode_screen(text),
            source=source,
            destination=Address.international(indication.source_addr),
            registered_delivery=0,
            extra_tlvs=tlvs,
        )

    return reply
