"""The engine's background services, and the one runner that loops each of them.

A service is a ``name``, an ``interval`` (its own setting) and ``run_once() -> int``, the work
one pass did. :func:`run_service` calls ``run_once`` again at once while it finds work, else
after ``interval`` or when told to stop; a failing pass is logged and the loop goes on.
Tests and the demo call ``run_once`` themselves with a ManualClock and never sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

import asyncpg
import structlog

from campaigns.repository import CampaignRepository
from dispatcher.engine.engine import Dispatcher
from dispatcher.kernel.clock import Clock
from dispatcher.program import retention, surveys
from dispatcher.program.ussd import UssdDesk
from dispatcher.settings import Settings
from smpp.receipts import IdFormat, detect_id_format

log = structlog.get_logger(__name__)

RECEIPT_BATCH = 5000  # receipts applied per statement (at most: a pass takes what is there)
#: The latest receipts per SMSC that id format detection looks at, found among the latest
#: ID_FORMAT_SCAN receipts of all SMSCs (a bound on each pass's reading).
ID_FORMAT_SAMPLE = 200
ID_FORMAT_SCAN = 20 * ID_FORMAT_SAMPLE
#: A receipt whose message is still unknown after this long is given up (its submit was
#: never recorded: the message's fate was unknown after a crash).
RECEIPT_GIVE_UP = timedelta(days=3)


class Service(Protocol):
    """A background loop's single pass, with its name and idle interval."""

    @property
    def name(self) -> str: ...

    @property
    def interval(self) -> float: ...

    async def run_once(self) -> int:
        """One pass; returns the work done (0 when there was nothing to do)."""
        ...


class ReceiptService:
    """Applies committed delivery receipts to their messages and parts (invariant 7), and
    detects how an SMSC set to ``auto`` writes its ids (issue 11)."""

    name = "receipts"

    def __init__(
        self,
        dispatcher: Dispatcher,
        clock: Clock,
        settings: Settings,
        id_format: IdFormat = IdFormat.AS_IS,
    ) -> None:
        self.interval = settings.receipts_interval
        self._repo = dispatcher.repo
        self._clock = clock
        self._recheck = timedelta(seconds=settings.receipts_recheck)
        self._refuse_mismatch = settings.receipt_address_check == "refuse"
        self.id_format = id_format
        self._detecting = id_format is IdFormat.AUTO  # until an SMSC's format is known
        #: When unmatched receipts may next make the formats be looked at again.
        self._look_again: datetime | None = None

    async def start(self) -> None:
        """Record this engine's id format setting for its SMSC (the applier reads it)."""
        await self._repo.register_id_format(self.id_format)

    async def run_once(self) -> int:
        """Apply one batch; returns the receipts looked at (matched, or put off for later).
        The id formats are looked at after a batch while one is still unknown, or when a
        batch left receipts unmatched (an SMSC may have changed its habit) — then at most
        once per recheck interval: receipts that beat their submit_sm_resp are unmatched in
        most batches of a busy campaign, and a look reads the latest receipts and probes
        submits three times for each (it was half the applier's time)."""
        now = self._clock.now()
        row = await self._repo.apply_receipts(
            RECEIPT_BATCH, now, now + self._recheck, now - RECEIPT_GIVE_UP, self._refuse_mismatch
        )
        for receipt_id, source, sent_to in row.mismatches:
            # The numbers are masked by the log processor (last four digits).
            log.warning(
                "receipt source address is not the message's number",
                receipt_id=receipt_id,
                source_addr=source,
                sent_to=sent_to,
                refused=self._refuse_mismatch,
            )
        if row.seen and self._detecting:
            await self.detect_id_formats()
        elif row.seen > row.matched and (self._look_again is None or now >= self._look_again):
            self._look_again = now + self._recheck
            await self.detect_id_formats()
        return row.seen

    async def detect_id_formats(self) -> int:
        """Learn the id format of each SMSC set to auto whose latest receipts show one
        clearly (smpp.receipts.detect_id_format); returns how many changed."""
        changed = 0
        undetected = False
        for found in await self._repo.id_format_evidence(ID_FORMAT_SAMPLE, ID_FORMAT_SCAN):
            detected = detect_id_format(found.evidence)
            undetected |= (detected or found.detected) is None
            if detected is None or detected is found.detected:
                continue
            log.info(
                "receipt id format detected",
                smsc=found.smsc,
                id_format=detected.value,
                previous=found.detected.value if found.detected else None,
                evidence=found.evidence,
            )
            await self._repo.learn_id_format(found.smsc, detected, self._clock.now())
            changed += 1
        self._detecting = undetected
        return changed


class HousekeepingService:
    """Campaigns by the clock (scheduled ones start, those past their end expire, finished
    ones complete), unanswered surveys time out (R13), replies left waiting by a survey
    question that never opened its session are ignored, USSD menu sessions the gateway
    abandoned are forgotten, and personal data past its retention is removed (R11). Its
    statements can touch a whole campaign: give it a pool without the hot path's short
    statement timeout."""

    name = "housekeeping"

    def __init__(
        self,
        pool: asyncpg.Pool,
        clock: Clock,
        settings: Settings,
        wake: Callable[[], None],
        ussd: UssdDesk,
    ) -> None:
        self.interval = settings.housekeeping_interval
        self._pool = pool
        self._campaigns = CampaignRepository(pool)
        self._clock = clock
        self._wake = wake
        self._ussd = ussd
        self._ussd_idle = timedelta(seconds=settings.ussd_session_timeout)
        self._retention = retention.Retention(
            mo_messages=timedelta(days=settings.mo_retention_days),
            survey_sessions=timedelta(days=settings.survey_session_retention_days),
        )

    async def run_once(self) -> int:
        """One sweep; returns the campaigns and survey sessions it changed."""
        now = self._clock.now()
        started = await self._campaigns.activate_due(now)
        if started:
            self._wake()  # the dispatcher looks for work now rather than at its next poll
        expired = await self._campaigns.expire_due(now)
        completed = await self._campaigns.complete_finished(now)
        timed_out = await surveys.timeout_sweep(self._pool, now)
        # Not counted as work: a stale waiting reply is rare, and ignoring it asks no more.
        await surveys.unwait_stale(self._pool, now)
        # Forgotten sessions are not work that calls for another pass at once.
        await self._ussd.expire_sessions(now, self._ussd_idle)
        # R11: one bounded batch per table; a full one is work, so the runner comes back at
        # once until the backlog (after an upgrade, say) is gone.
        swept = await retention.sweep(self._pool, self._retention, now)
        return len(started) + len(expired) + len(completed) + timed_out + swept.total


class RecoveryService:
    """Surviving nodes take back what a dead one held: its claimed messages go back to the
    queue, its in-flight ones become unknown (invariant 2)."""

    name = "recovery"

    def __init__(self, dispatcher: Dispatcher, settings: Settings) -> None:
        self.interval = settings.recovery_interval
        self._dispatcher = dispatcher

    async def run_once(self) -> int:
        """Recover every dead node's rows; returns how many rows changed."""
        return sum((await self._dispatcher.recover()).values())


async def run_service(service: Service, stop: asyncio.Event) -> None:
    """Run ``service`` until ``stop``: again at once while a pass finds work, else after the
    service's interval. The loop outlives any one pass: a failure is logged (with its
    traceback when it is not a database or network error) and the next pass follows."""
    while not stop.is_set():
        try:
            busy = await service.run_once()
        except Exception as exc:  # the loop must outlive any one pass
            expected = isinstance(exc, OSError | asyncpg.PostgresError | asyncpg.InterfaceError)
            log.warning(
                "background pass failed; retrying",
                service=service.name,
                error=repr(exc),
                exc_info=not expected,
            )
            busy = 0
        if busy:
            continue
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(service.interval):
                await stop.wait()
