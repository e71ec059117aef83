"""The service's main pool skips asyncpg's reset query on release (issue 16: one round trip
per release), which must cost nothing: a transaction left open is still rolled back, and the
session the connection was prepared with (UTC) is kept; the engine's pool keeps the reset."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg

from dispatcher.db import open_database
from dispatcher.settings import load_settings


async def _pids_with(pool: asyncpg.Pool, query: str) -> dict[int, object]:
    """``query`` on every connection of the pool at once, by backend pid."""
    conns = [await pool.acquire() for _ in range(pool.get_max_size())]
    try:
        return {await c.fetchval("SELECT pg_backend_pid()"): await c.fetchval(query) for c in conns}
    finally:
        for c in conns:
            await pool.release(c)


async def test_main_pool_releases_without_reset_query(tmp_path: Path, database_url: str) -> None:
    settings = load_settings({}, data_dir=tmp_path, database_url=database_url)
    async with open_database(settings, run_migrations=False) as db:
        async with db.pool.acquire() as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            await conn.execute("SET application_name = 'kept'")  # no RESET ALL on release
        names = await _pids_with(db.pool, "SELECT current_setting('application_name')")
        assert names[pid] == "kept"
        zones = await _pids_with(db.pool, "SELECT current_setting('TimeZone')")
        assert set(zones.values()) == {"UTC"}
        conn = await db.pool.acquire()
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        await conn.execute("BEGIN; CREATE TEMP TABLE left_open (x int)")
        await db.pool.release(conn)  # a transaction left open is still rolled back
        open_ = await _pids_with(db.pool, "SELECT to_regclass('pg_temp.left_open') IS NOT NULL")
        assert open_[pid] is False


async def test_idle_release_starts_no_task(tmp_path: Path, database_url: str) -> None:
    """Issue 16: an idle, healthy connection goes back to the main pool without the shielded
    task asyncpg starts for every release (a task and a wake-up per statement); the pool
    hands it out again as before, and a connection left in a transaction still takes
    asyncpg's way (rolled back above)."""
    settings = load_settings({}, data_dir=tmp_path, database_url=database_url)
    loop = asyncio.get_running_loop()
    started: list[object] = []
    factory = loop.get_task_factory()

    def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        started.append(coro)
        if factory is not None:
            return factory(loop, coro, **kwargs)
        return asyncio.Task(coro, loop=loop, **kwargs)

    async with open_database(settings, run_migrations=False) as db:
        conn = await db.pool.acquire()
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        loop.set_task_factory(counting)
        try:
            await db.pool.release(conn)
            assert await db.pool.fetchval("SELECT pg_backend_pid()") == pid  # the same one
        finally:
            loop.set_task_factory(factory)
        assert started == []
        async with db.pool.acquire() as again:
            assert await again.fetchval("SELECT 1") == 1
