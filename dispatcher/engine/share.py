"""This replica's part of its SMSC account's grant, agreed with the other live replicas
through PostgreSQL (the rules: :mod:`dispatcher.policy.grant`).

Every ``SMARTD_SMPP_SHARE_INTERVAL`` seconds the replica *beats*: under the account's lock it
forgets replicas whose node lock is free (dead: ``kill -9`` drops the lock with the
connection), announces itself, reads what the others publish and publishes its next rate.
A lower rate is applied to the session before it is published; a higher one only after it is
committed. So the rates the live replicas send at never sum past the grant, and a death or a
join is re-divided within two beats. A beat that fails sets the rate to 0: a replica that
cannot reach the database cannot know whether the others took its part.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from dispatcher.kernel.sql import SqlFile
from dispatcher.policy.grant import Member, fair_share, next_share

#: While a replica sends less than its fair share (others have not yet made room), it beats
#: this many times per interval, so it takes the room as soon as it is made.
CATCH_UP = 10


class SmscSQL(SqlFile, domain="smsc"):
    lock_account: str
    forget_dead: str
    join: str
    members: str
    publish: str
    leave: str


class GrantShare:
    """This replica's rate: ``rate`` (submits/s), pushed to ``apply`` (the session's
    ``set_tps``) in the safe order on each :meth:`beat`. ``node`` gives the current node id
    (the dispatcher renews it after losing its lock); ``live`` whether its lock is held;
    ``ready`` whether it can send (its SMPP session is bound): a replica that cannot leaves
    the account, so its part goes to those that can, and joins again (last) when it can."""

    name = "grant share"

    def __init__(
        self,
        pool: asyncpg.Pool,
        account: str,
        grant: float,
        binds: int,
        *,
        node: Callable[[], str],
        live: Callable[[], bool],
        apply: Callable[[float], None],
        ready: Callable[[], bool] = lambda: True,
        interval: float = 1.0,
    ) -> None:
        self.account = account
        self.grant = grant
        self.binds = binds
        self._interval = interval
        self.rate = 0.0
        self.fair = 0.0  # the share this replica would have once the others made room
        self.members = 0  # live replicas seen at the last beat
        self._pool = pool
        self._node = node
        self._live = live
        self._ready = ready
        self._apply = apply
        apply(0.0)  # nothing until the first beat says what is ours

    @property
    def interval(self) -> float:
        """Seconds to the next beat: shorter while the others are still making room."""
        return self._interval / CATCH_UP if self.rate < self.fair else self._interval

    def _set(self, rate: float) -> None:
        self.rate = rate
        self._apply(rate)

    async def beat(self) -> float:
        """Agree this replica's next rate with the others; returns it."""
        if not self._live():
            self._set(0.0)  # others may already count this node dead and use its part
            return 0.0
        node = self._node()
        if not self._ready():
            await self.leave()
            return 0.0
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(SmscSQL.lock_account, self.account)
                await conn.execute(SmscSQL.forget_dead, self.account)
                await conn.execute(SmscSQL.join, self.account, node)
                members = [
                    Member(r["node"], r["joined"], r["share"])
                    for r in await conn.fetch(SmscSQL.members, self.account)
                ]
                rate = next_share(self.grant, self.binds, members, node)
                fair = fair_share(self.grant, self.binds, members, node)
                if rate < self.rate:
                    self._set(rate)  # lower first, then tell the others
                await conn.execute(SmscSQL.publish, self.account, node, rate)
        except BaseException:
            self._set(0.0)
            raise
        self.members, self.fair = len(members), fair
        if rate > self.rate:
            self._set(rate)  # committed: the others have made room
        return rate

    async def run_once(self) -> int:
        """One beat (a background service: always idle until the next interval)."""
        await self.beat()
        return 0

    async def leave(self) -> None:
        """Give this replica's part back at once (a clean stop, or no bind to send on)."""
        self._set(0.0)
        self.fair = 0.0
        async with self._pool.acquire() as conn:
            await conn.execute(SmscSQL.leave, self.account, self._node())
