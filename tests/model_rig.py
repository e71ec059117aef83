"""The world of the model-based engine test (tests/test_engine_model.py): one event loop for
the whole run, one database reset between examples, and per example an SMSC simulator that
remembers what it took and when (by the service's clock), with an engine built by
:func:`build_engine` over it and driven by ``run_once``.

The adapters marked ``ADAPTER`` stand in for features other parts of issue 11 add (an SMSC
that renumbers its ids after a restart, a receipt id format setting); each says what to
switch on when those features land.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from dispatcher.db import create_pool
from dispatcher.engine.build import Engine, Program, build_engine
from dispatcher.engine.engine import EngineConfig
from dispatcher.kernel.clock import ManualClock
from dispatcher.program.bonus import BonusLedger
from dispatcher.program.charging import charging_from_settings
from dispatcher.settings import Settings
from smpp.config import SessionConfig
from smpp.constants import Status
from smpp.pdu import ShortMessage, decode_short_message
from smpp.ratelimit import Backoff, ThrottlePolicy
from smpp.sim_connection import SimConnection
from smpp.simulator import SimulatorOptions, format_id
from tests.reliability.procs import RecordingSimulator

SMPP_PASSWORD = "pw"
WAIT = 10.0  # seconds any one awaited condition may take before the step fails
FIRST_ID = 1000  # the simulator's first message id, again after a restart
ENGINE_WINDOW = 8  # parts in flight at once: the bound on unknowns per crash


@dataclass(frozen=True)
class Written:
    """One submit_sm as the SMSC received it, stamped with the service's clock."""

    connection: int
    sequence: int
    at: datetime
    sm: ShortMessage
    epoch: int

    @property
    def udh(self) -> tuple[int, int, int] | None:
        """(reference, total, seq) of a concatenated part (8-bit reference UDH), else None."""
        data = self.sm.short_message
        if self.sm.esm_class & 0x40 and len(data) >= 6 and data[1] == 0x00:
            return data[3], data[4], data[5]
        return None

    @property
    def text(self) -> str:
        """The part's text (UCS-2 or an ASCII-compatible alphabet), UDH removed."""
        data = self.sm.short_message
        if self.udh is not None:
            data = data[data[0] + 1 :]
        if self.sm.data_coding == 0x08:
            return data.decode("utf-16-be", "replace")
        return data.decode("latin-1")


@dataclass(frozen=True)
class ReceiptPlan:
    """A receipt the SMSC scheduled: for which number and submit response id, its outcome
    and the exact deliver_sm body (to tell whether the ESME acknowledged it)."""

    destination: str
    response_id: str
    stat: str
    body: bytes
    epoch: int
    other_format: bool  # the receipt names the id in another form than the response
    reused: bool  # the SMSC had issued this id before (it restarted and renumbered)


class ModelSimulator(RecordingSimulator):
    """The recording simulator, also stamping each submit_sm with the service's clock,
    throttling the next ``throttle_next`` submits on demand, and keeping the receipts it
    scheduled (for the receipt-matching invariant)."""

    def __init__(self, options: SimulatorOptions, clock: ManualClock) -> None:
        super().__init__(options)
        self.service_clock = clock
        self.clock = clock.now  # the dates in its receipts: the service's time too
        self.written: list[Written] = []
        self.plans: list[ReceiptPlan] = []
        self.throttle_next = 0
        self.pending_receipts = 0
        # Ids from 1000 up: hex and decimal forms of an id differ (below 10 they are alike).
        self._next_id = FIRST_ID - 1
        self._issued: set[str] = set()
        self.epoch = 0  # bumped by an engine crash: earlier submits' fates are unknown

    def on_submit(self, conn: SimConnection, sequence: int, body: bytes) -> None:
        with contextlib.suppress(Exception):  # a malformed body is the simulator's to refuse
            sm = decode_short_message(body)
            self.written.append(
                Written(conn.number, sequence, self.service_clock.now(), sm, self.epoch)
            )
        super().on_submit(conn, sequence, body)

    def _admit(self, conn: SimConnection) -> int:
        if self.throttle_next > 0 and conn.can_send:
            self.throttle_next -= 1
            return int(Status.ESME_RTHROTTLED)
        return super()._admit(conn)

    def _schedule_receipt(self, conn: SimConnection, sm: ShortMessage, number: int) -> None:
        self.pending_receipts += 1
        loop = asyncio.get_running_loop()
        super()._schedule_receipt(conn, sm, number)
        # The receipt leaves at once or after receipt_delay (0 here): count it down when
        # it has left, so settle() knows when nothing is on its way.
        loop.call_later(self.options.receipt_delay, self._receipt_left)

    def _receipt_body(self, sm: ShortMessage, number: int, stat: str, submitted: datetime) -> bytes:
        body = super()._receipt_body(sm, number, stat, submitted)
        options = self.options
        response_id = format_id(number, options.response_id_style)
        other = format_id(number, options.receipt_id_style) != response_id
        reused = response_id in self._issued
        self._issued.add(response_id)
        plan = ReceiptPlan(sm.destination_addr, response_id, stat, body, self.epoch, other, reused)
        self.plans.append(plan)
        return body

    def _receipt_left(self) -> None:
        self.pending_receipts -= 1
        self._wake()

    def restart_numbering(self) -> None:
        """The SMSC numbers its ids from the start again (as after a restart; the simulator's
        own :meth:`restart` also drops the connections, which the model does in its
        disconnect rule). The model's ids start at FIRST_ID, not at 1."""
        self._next_id = FIRST_ID - 1

    def quiet(self) -> bool:
        """No receipt on its way and no request of ours awaiting the ESME's answer."""
        waiting = any(c._waiters for c in self.connections)
        return self.pending_receipts == 0 and not waiting

    def taken(self) -> list[Written]:  # type: ignore[override]
        """Submits the SMSC did not refuse: accepted, or never answered (it may deliver)."""
        return [w for w in self.written if (w.connection, w.sequence) not in self.refused]


@dataclass
class World:
    """What outlives one example: the event loop's pool on the test's database and the
    list of tables a reset empties."""

    url: str
    pool: asyncpg.Pool
    tables: list[str] = field(default_factory=list)

    @classmethod
    async def open(cls, url: str) -> World:
        pool = await create_pool(url, min_size=2, max_size=10)
        names = [
            r["relname"]
            for r in await pool.fetch(
                "SELECT relname FROM pg_stat_user_tables WHERE schemaname = 'public'"
            )
        ]
        empty = [n for n in names if not await pool.fetchval(f'SELECT EXISTS (TABLE "{n}")')]
        return cls(url, pool, sorted(empty))

    async def reset(self) -> None:
        """Empty every table the migrations left empty. The consent ledger refuses TRUNCATE
        by trigger (append-only): replica mode skips triggers for this test-only reset."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            quoted = ", ".join(f'"{t}"' for t in self.tables)
            await conn.execute(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")

    async def close(self) -> None:
        await self.pool.close()


async def start_engine(
    pool: asyncpg.Pool,
    settings: Settings,
    clock: ManualClock,
    program: Program,
    port: int,
) -> Engine:
    """An engine as serve builds it, bound to the simulator on ``port``. Submits are paced
    (200/s, one at a time) so the parts of one message leave a few milliseconds apart: a
    step can move the clock between two parts."""
    config = SessionConfig(
        host="127.0.0.1",
        port=port,
        system_id="smartd",
        password=SMPP_PASSWORD,
        reconnect=Backoff(base=0.01, cap=0.05),
        response_timeout=2.0,
        tps=200,
        burst=1,
        throttle=ThrottlePolicy(pause=0.01, max_pause=0.02, recovery_interval=0.05),
    )
    engine = build_engine(
        settings,
        clock,
        pool,
        program,
        session_config=config,
        engine_config=EngineConfig(window=ENGINE_WINDOW, chunk=4, batch_size=20),
    )
    await engine.start()
    async with asyncio.timeout(WAIT):
        await engine.session.wait_bound()
    return engine


def new_ledger(pool: asyncpg.Pool, settings: Settings, clock: ManualClock) -> BonusLedger:
    return BonusLedger(pool, settings, clock, charging_from_settings(settings))


async def wait_until(sim: ModelSimulator, predicate: Callable[[], bool]) -> None:
    """Wait for ``predicate`` (re-checked on every PDU the simulator sees), at most WAIT."""
    sim.wait_timeout = WAIT
    await sim.wait_for(predicate)
