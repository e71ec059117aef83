"""Issue 16: the USSD desk's database round trips per request are few and counted. The
session and the subscriber's language (and membership) come in one statement; a member
dialling the join code is answered from it without a transaction."""

from __future__ import annotations

from typing import Any

from dispatcher.db import Database
from dispatcher.engine.build import Program
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Channel
from dispatcher.program.bonus import BonusLedger
from dispatcher.program.membership import Membership
from dispatcher.program.texts import text
from dispatcher.settings import Settings

MEMBER = "77071112233"


class CountingPool:
    """The desk's pool, counting the statements and transactions it is asked for (a
    transaction counts BEGIN and COMMIT too)."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self.trips = 0

    def _counted(self, name: str) -> Any:
        async def call(*args: Any) -> Any:
            self.trips += 1
            return await getattr(self._pool, name)(*args)

        return call

    def __getattr__(self, name: str) -> Any:
        if name in {"fetch", "fetchrow", "fetchval", "execute"}:
            return self._counted(name)
        if name == "acquire":
            self.trips += 3  # at least BEGIN, a statement and COMMIT
        return getattr(self._pool, name)


async def test_round_trips_per_request(
    database: Database,
    settings: Settings,
    clock: ManualClock,
    ledger: BonusLedger,
    membership: Membership,
) -> None:
    pool = CountingPool(database.pool)
    desk = Program.over(pool, settings, ledger).ussd  # type: ignore[arg-type]
    async with database.pool.acquire() as conn, conn.transaction():
        await membership.join(conn, MEMBER, Channel.USSD, {}, clock.now())
    now = clock.now()

    pool.trips = 0
    reply = await desk.handle(MEMBER, "s1", "*555#", now)
    assert not reply.end and pool.trips == 2  # the context, the session opened

    pool.trips = 0
    reply = await desk.handle(MEMBER, "s2", "*555*1#", now)
    assert reply.end and reply.text.startswith(text("already_member", settings.default_language))
    assert pool.trips == 1  # the context alone: nothing changes for a member

    pool.trips = 0
    reply = await desk.handle(MEMBER, "s3", "*111*3#", now)
    assert reply.end and pool.trips == 1  # the context; the balance is the ledger's own
