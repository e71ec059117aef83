"""Migrations: applied once, in order, safely from concurrent processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

from dispatcher.db import with_database
from dispatcher.migrate import MigrationError, discover, migrate


@pytest.fixture
async def empty_database_url(pg_server_url: str) -> str:
    name = f"e_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return with_database(pg_server_url, name)


async def test_second_migrate_is_noop(empty_database_url: str) -> None:
    """A second run applies nothing and leaves one record per migration."""
    conn = await asyncpg.connect(empty_database_url)
    try:
        first = await migrate(conn)
        assert first == [m.name for m in discover()]
        assert await migrate(conn) == []
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(first)
    finally:
        await conn.close()


async def test_concurrent_migrations_apply_once(empty_database_url: str) -> None:
    """Four connections migrating at once all succeed; each migration is applied once."""
    conns = [await asyncpg.connect(empty_database_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        applied = [name for result in results for name in result]
        assert sorted(applied) == sorted(m.name for m in discover())
    finally:
        for c in conns:
            await c.close()


def test_two_migrate_processes_at_once(empty_database_url: str) -> None:
    """Two `smartd migrate` processes started together both exit 0 and apply each file once."""
    env = {**os.environ, "SMARTD_DATABASE_URL": empty_database_url, "SMARTD_LOG_FORMAT": "json"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "dispatcher.cli", "migrate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    stdouts = sorted(out for out, _ in outputs)
    assert stdouts[0].startswith("applied 0001_")
    assert stdouts[1] == "database is up to date\n"


async def test_changed_migration_is_an_error(empty_database_url: str, tmp_path: Path) -> None:
    """A migration file edited after it was applied stops the run."""
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE a (x int);")
    conn = await asyncpg.connect(empty_database_url)
    try:
        assert await migrate(conn, tmp_path) == ["0001_first.sql"]
        (tmp_path / "0001_first.sql").write_text("CREATE TABLE a (x bigint);")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn, tmp_path)
    finally:
        await conn.close()


async def test_failed_migration_rolls_back(empty_database_url: str, tmp_path: Path) -> None:
    """A failing migration leaves neither its changes nor a record behind."""
    (tmp_path / "0001_bad.sql").write_text("CREATE TABLE b (x int); SELECT 1/0;")
    conn = await asyncpg.connect(empty_database_url)
    try:
        with pytest.raises(asyncpg.DivisionByZeroError):
            await migrate(conn, tmp_path)
        assert await conn.fetchval("SELECT to_regclass('b')") is None
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 0
    finally:
        await conn.close()
