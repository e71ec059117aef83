"""The service's main pool skips asyncpg's reset query on release (issue 16: one round trip
per release), which must cost nothing: a transaction left open is still rolled back, and the
session the connection was prepared with (UTC) is kept; the engine's pool keeps the reset."""

from __future__ import annotations

from pathlib import Path

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
