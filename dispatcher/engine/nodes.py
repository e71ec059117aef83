"""Which dispatcher nodes are alive, and recovery of what dead ones held.

Every engine holds a PostgreSQL *session* advisory lock keyed by its node id for as long as it
runs. PostgreSQL drops a session's locks with its connection — ``kill -9``, a host gone, a
database restart — so "can I take node X's lock?" answers "is node X dead?" without clocks,
heartbeats or leases.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from datetime import datetime

import asyncpg

from dispatcher.engine.repository import DispatchRepository, DispatchSQL


def new_node_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class NodeLock:
    """This node's liveness lock, held on a connection of its own."""

    def __init__(self, pool: asyncpg.Pool, node: str) -> None:
        self._pool = pool
        self.node = node
        self.conn: asyncpg.pool.PoolConnectionProxy | None = None

    async def hold(self) -> None:
        self.conn = await self._pool.acquire()
        await self.conn.execute(DispatchSQL.node_lock, self.node)

    async def release(self) -> None:
        if self.conn is None:
            return
        with contextlib.suppress(Exception):
            await self.conn.execute(DispatchSQL.node_unlock, self.node)
        with contextlib.suppress(Exception):
            await self._pool.release(self.conn)
        self.conn = None

    def alive(self) -> bool:
        """Whether the lock is still held (its connection open)."""
        try:
            return self.conn is not None and not self.conn.is_closed()
        except asyncpg.InterfaceError:  # the proxy lost its connection
            return False


async def node_dead(conn: asyncpg.Connection, node: str) -> bool:
    """Whether ``node`` is dead (its lock is free), asked inside ``conn``'s transaction."""
    return bool(await conn.fetchval(DispatchSQL.node_dead, node))


async def recover_dead(
    pool: asyncpg.Pool, repo: DispatchRepository, claimers: list[str], me: str, now: datetime
) -> dict[str, int]:
    """For each node in ``claimers`` whose lock is free (it is dead): its claimed rows go back
    to the queue, its in-flight rows become unknown (they may have reached the SMSC: never
    resent, still counted against the cap). Returns the totals."""
    totals = {"requeued": 0, "unknown": 0}
    for node in claimers:
        if node == me:
            continue
        async with pool.acquire() as conn:
            if not await conn.fetchval(DispatchSQL.node_try_lock, node):
                continue  # alive
            try:
                async with conn.transaction():
                    recovered = await repo.recover_node(conn, node, now)
                totals["requeued"] += recovered.requeued
                totals["unknown"] += recovered.unknown
            finally:
                await conn.execute(DispatchSQL.node_unlock, node)
    return totals
