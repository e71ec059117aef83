"""The database: an asyncpg pool on the configured server, or on an embedded one.

:func:`open_database` is the one way in: it starts the embedded server when no URL is
configured, opens the pool, optionally applies migrations, and closes everything on exit.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from dispatcher.embedded import EmbeddedPostgres
from dispatcher.migrate import migrate
from dispatcher.settings import Settings

log = structlog.get_logger(__name__)


@dataclass
class Database:
    """An open pool and, when embedded, the server it runs on."""

    pool: asyncpg.Pool
    url: str
    embedded: EmbeddedPostgres | None = None

    async def ping(self) -> bool:
        """Whether a query round trip succeeds now (for readiness)."""
        try:
            async with asyncio.timeout(2):
                return bool(await self.pool.fetchval("SELECT true"))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            return False


async def resolve_url(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    """The configured URL, or a started embedded server's (it runs ``initdb`` if needed)."""
    if settings.database_url:
        return settings.database_url, None
    embedded = EmbeddedPostgres(settings.data_dir)
    url = await asyncio.to_thread(embedded.start)
    log.info("embedded postgresql started", pgdata=str(embedded.pgdata))
    return url, embedded


def with_database(url: str, database: str) -> str:
    """``url`` pointing at ``database`` instead (keeps host, socket dir and credentials)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


async def recreate_database(admin_url: str, name: str) -> str:
    """Drop and create database ``name`` on ``admin_url``'s server, migrate it, return its
    URL (the demo and the benchmarks start from nothing each run)."""
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = with_database(admin_url, name)
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return url


def _json_dumps(value: object) -> str:
    # Kazakh and Russian texts stay readable (and shorter) on the wire and in json columns.
    return json.dumps(value, ensure_ascii=False)


async def init_connection(conn: asyncpg.Connection) -> None:
    """Prepare a new connection the one way the service expects: a UTC session, and
    ``json``/``jsonb`` as Python values both ways (a dict goes in, a dict comes out), so no
    caller encodes or decodes JSON by hand. Pass objects, never pre-serialised strings: a
    ``str`` parameter is stored as a JSON string."""
    # Every session works in UTC; local time is computed in Python from the tzdata package.
    await conn.execute("SET TIME ZONE 'UTC'")
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, schema="pg_catalog", encoder=_json_dumps, decoder=json.loads, format="text"
        )


class PoolBusy(TimeoutError):
    """No connection came free within the caller's acquire timeout (HTTP: 503 with
    ``Retry-After``). A :class:`TimeoutError`, so code that already treats a slow database
    as unavailable (readiness) keeps doing so."""

    def __init__(self, waited: float) -> None:
        super().__init__(f"no database connection came free within {waited:g} s")
        self.waited = waited
        self.retry_after = max(1, math.ceil(waited))


#: How long an acquire in this context may wait for a free connection (None: as long as it
#: takes). The HTTP layer sets it per request (``SMARTD_DB_ACQUIRE_TIMEOUT``); the engine
#: and the SMPP session leave it unset: they wait, as they always did.
_ACQUIRE_TIMEOUT: ContextVar[float | None] = ContextVar("acquire_timeout", default=None)


@contextmanager
def acquire_timeout(seconds: float | None) -> Iterator[None]:
    """Within the block (this task and tasks it starts), a pool acquire that waits longer
    than ``seconds`` raises :class:`PoolBusy` instead of waiting on."""
    token = _ACQUIRE_TIMEOUT.set(seconds)
    try:
        yield
    finally:
        _ACQUIRE_TIMEOUT.reset(token)


class _Pool(asyncpg.Pool):  # type: ignore[misc]  # asyncpg is untyped here
    """asyncpg's pool, whose acquires (``pool.acquire()`` and the pool's own ``fetch``,
    ``execute``, ...) wait at most the context's :func:`acquire_timeout`."""

    async def _acquire(self, timeout: float | None) -> Any:  # noqa: ASYNC109 - asyncpg API
        limit = _ACQUIRE_TIMEOUT.get()
        if timeout is not None or limit is None or self._connected_free():
            # A connected connection is free: taken without waiting, so no timer to arm
            # (issue 16: an armed and cancelled timer per request costs CPU under load).
            return await super()._acquire(timeout)
        # Not passed down as asyncpg's own timeout: that one would also bound the reset
        # when the connection goes back. Cancelling the wait returns nothing held.
        try:
            async with asyncio.timeout(limit):
                return await super()._acquire(None)
        except TimeoutError:
            raise PoolBusy(limit) from None

    async def release(
        self,
        connection: Any,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - asyncpg API
    ) -> None:
        """A connection back to the pool. On a pool without session state (no reset query),
        a connection that is idle and healthy goes back at once: what asyncpg's release
        does then (listeners checked, the holder freed, its idle timer armed) without the
        shielded task it starts for every release (issue 16: a task and a wake-up per
        statement run on the pool). Anything else takes asyncpg's own way."""
        holder = getattr(connection, "_holder", None)
        con = getattr(connection, "_con", None)
        if (
            self._reset is _keep_session
            and type(connection) is PoolConnectionProxy
            and holder is not None
            and holder._pool is self
            and con is not None
            and con._top_xact is None
            and not con.is_closed()
            and not con._listeners
            and not con._log_listeners
            and holder._generation == self._generation
        ):
            protocol = con._protocol
            if (
                not protocol.is_in_transaction()
                and not protocol._is_cancelling()
                and protocol.queries_count < holder._max_queries
            ):
                self._check_init()
                con._on_release()
                holder._timeout = None
                holder._release()
                holder._setup_inactive_callback()
                return
        await super().release(connection, timeout=timeout)

    def _connected_free(self) -> bool:
        """Whether the pool's queue holds a free, connected connection now (asyncpg's queue
        hands those out first, the last one freed first: looked for from that end, so the
        answer usually comes from the first holder looked at)."""
        queue = getattr(self, "_queue", None)
        holders = getattr(queue, "_queue", ())
        return any(holder.is_connected() for holder in reversed(holders))


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A release without the reset query: asyncpg has already rolled back a transaction
    left open (and dropped listeners); nothing else is undone."""


async def create_pool(
    url: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    command_timeout: float | None = None,
    session_state: bool = True,
) -> asyncpg.Pool:
    """A pool whose connections are prepared by :func:`init_connection`.

    ``command_timeout`` bounds every statement (and the reset when a connection goes back
    to the pool), so a connection left half-dead by a database restart raises instead of
    hanging its caller. Acquires wait at most the context's :func:`acquire_timeout`.

    ``session_state=False`` is for a pool on which no caller leaves session state behind
    (session advisory locks, ``SET`` without ``LOCAL``, ``LISTEN``, open cursors outside a
    transaction): a connection going back skips asyncpg's reset query (``pg_advisory_unlock_all``,
    ``CLOSE ALL``, ``UNLISTEN *``, ``RESET ALL``), one round trip per release saved (issue 16);
    a transaction left open is still rolled back. The service's main pool is such a pool
    (the HTTP side: its locks are transaction locks); the engine's pool, where the node locks
    are session locks, keeps the reset."""
    pool = _Pool(
        url,
        min_size=min_size,
        max_size=max_size,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        init=init_connection,
        reset=None if session_state else _keep_session,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        command_timeout=command_timeout,
    )
    await pool
    return pool


@asynccontextmanager
async def open_database(
    settings: Settings, *, run_migrations: bool = True
) -> AsyncIterator[Database]:
    """Open the database for the lifetime of the block; see the module docstring."""
    url, embedded = await resolve_url(settings)
    try:
        pool = await create_pool(
            url,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            session_state=False,
        )
        try:
            if run_migrations:
                async with pool.acquire() as conn:
                    await migrate(conn)
            yield Database(pool=pool, url=url, embedded=embedded)
        finally:
            await pool.close()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
