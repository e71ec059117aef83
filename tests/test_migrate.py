"""Migrations: applied once, in order, safely from concurrent processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from dispatcher.db import with_database
from dispatcher.migrate import MIGRATIONS_DIR, MigrationError, discover, migrate


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


async def test_outbound_migration_repairs_finish_times(
    empty_database_url: str, tmp_path: Path
) -> None:
    """0007 repairs rows written before its CHECK: a final row gets a finish time (its last
    receipt's), a service message finished by one part's receipt while still submitted loses
    its own; then the CHECK holds."""
    for path in sorted(MIGRATIONS_DIR.glob("000[1-6]_*.sql")):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    conn = await asyncpg.connect(empty_database_url)
    try:
        await migrate(conn, tmp_path)
        campaign = await conn.fetchval(
            "INSERT INTO campaigns (name, kind, scope, texts) "
            "VALUES ('c', 'info', 'smart', '{}') RETURNING id"
        )
        delivered = await conn.fetchval(
            "INSERT INTO deliveries (campaign_id, msisdn, state, submitted_at) "
            "VALUES ($1, '77010000001', 'delivered', '2026-11-23 10:00+00') RETURNING id",
            campaign,
        )
        await conn.execute(
            "INSERT INTO submits (smsc, message_id, delivery_id, msisdn, submitted_at, receipt, "
            "receipt_at) VALUES ('s', 'm1', $1, '77010000001', '2026-11-23 10:00+00', "
            "'delivered', '2026-11-23 10:05+00')",
            delivered,
        )
        await conn.execute(
            "INSERT INTO service_messages (msisdn, kind, body, in_window, state, finished_at) "
            "VALUES ('77010000002', 'help', 'x', false, 'submitted', '2026-11-23 10:00+00')"
        )
        assert "0007_outbound.sql" in await migrate(conn)
        finished = await conn.fetchval("SELECT finished_at FROM deliveries")
        assert finished.isoformat() == "2026-11-23T10:05:00+00:00"
        assert await conn.fetchval("SELECT finished_at FROM service_messages") is None
        with pytest.raises(asyncpg.CheckViolationError, match="deliveries_finished_when_final"):
            await conn.execute("UPDATE deliveries SET finished_at = NULL")
    finally:
        await conn.close()


async def test_owners_migration_gives_recycled_numbers_their_new_owner(
    empty_database_url: str, tmp_path: Path
) -> None:
    """0014 counts the recyclings the consent ledger records: the recycled number's current
    owner gets the grants and later months' counters made since the recycling; a number that
    an import created (owner_since set, never recycled) stays on its first owner."""
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if int(path.name[:4]) < 14:
            (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), "utf-8")
    recycled, imported = "77010000001", "77010000002"
    since = datetime(2026, 10, 15, 10, tzinfo=UTC)
    conn = await asyncpg.connect(empty_database_url)
    try:
        await migrate(conn, tmp_path)
        await conn.execute(
            "INSERT INTO subscribers (msisdn, owner_since) VALUES ($1, $3), ($2, $3)",
            recycled,
            imported,
            since,
        )
        await conn.execute(
            "INSERT INTO consent_ledger (msisdn, event, channel, occurred_at) "
            "VALUES ($1, 'recycled', 'crm', $2)",
            recycled,
            since,
        )
        for msisdn in (recycled, imported):
            await conn.execute(
                "INSERT INTO bonus_grants (msisdn, month, units, granted_at, deadline_at) VALUES "
                "($1, '2026-10-01', 500, '2026-10-01 00:05+05', '2026-10-31 00:05+05'), "
                "($1, '2026-11-01', 500, '2026-11-01 00:05+05', '2026-12-01 00:05+05')",
                msisdn,
            )
            await conn.execute(
                "INSERT INTO contact_counters (msisdn, month, info_count, info_cap, survey_cap) "
                "VALUES ($1, '2026-10-01', 3, 10, 2), ($1, '2026-11-01', 4, 10, 2)",
                msisdn,
            )
        applied = await migrate(conn)
        assert applied[0] == "0014_owners.sql"
        epochs = await conn.fetch("SELECT msisdn, owner_epoch FROM subscribers ORDER BY 1")
        assert [tuple(r) for r in epochs] == [(recycled, 1), (imported, 0)]
        for table in ("bonus_grants", "contact_counters"):
            rows = await conn.fetch(
                f"SELECT msisdn, month::text, owner_epoch FROM {table} ORDER BY 1, 2"
            )
            assert [tuple(r) for r in rows] == [
                (recycled, "2026-10-01", 0),
                (recycled, "2026-11-01", 1),
                (imported, "2026-10-01", 0),
                (imported, "2026-11-01", 0),
            ], table
    finally:
        await conn.close()


async def test_distributable_keys_migration_keeps_rows(
    empty_database_url: str, tmp_path: Path
) -> None:
    """0024 fills the numbers its keys need (a receipt without one and an erased survey
    session get ''), keeps every row, and its foreign keys pair the number: a submit naming
    another number's delivery is refused."""
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if int(path.name[:4]) < 24:
            (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), "utf-8")
    number = "77010000001"
    conn = await asyncpg.connect(empty_database_url)
    try:
        await migrate(conn, tmp_path)
        campaign = await conn.fetchval(
            "INSERT INTO campaigns (name, kind, scope, texts) "
            "VALUES ('c', 'survey', 'smart', '{}') RETURNING id"
        )
        delivery = await conn.fetchval(
            "INSERT INTO deliveries (campaign_id, msisdn) VALUES ($1, $2) RETURNING id",
            campaign,
            number,
        )
        await conn.execute(
            "INSERT INTO submits (smsc, message_id, delivery_id, msisdn, submitted_at) "
            "VALUES ('s', 'm1', $1, $2, '2026-11-23 10:00+00')",
            delivery,
            number,
        )
        await conn.execute(
            "INSERT INTO receipts (smsc, message_id, state, received_at, msisdn) VALUES "
            "('s', 'm1', 'delivered', '2026-11-23 10:01+00', NULL), "
            "('s', 'm1', 'delivered', '2026-11-23 10:02+00', $1)",
            number,
        )
        survey = await conn.fetchval(
            "INSERT INTO surveys (campaign_id, questions, thanks) VALUES ($1, '[]', '{}') "
            "RETURNING id",
            campaign,
        )
        await conn.execute(
            "INSERT INTO survey_sessions (survey_id, msisdn, state, opened_at, closed_at) "
            "VALUES ($1, NULL, 'completed', '2026-11-01', '2026-11-02'), "
            "($1, NULL, 'timed_out', '2026-11-01', '2026-11-02')",
            survey,
        )
        assert (await migrate(conn))[0] == "0024_distributable_keys.sql"  # later ones follow
        receipts = await conn.fetch("SELECT msisdn FROM receipts ORDER BY received_at")
        assert [r["msisdn"] for r in receipts] == ["", number]
        sessions = await conn.fetch("SELECT msisdn FROM survey_sessions")
        assert [r["msisdn"] for r in sessions] == ["", ""]
        assert await conn.fetchval("SELECT count(*) FROM submits") == 1
        with pytest.raises(asyncpg.ForeignKeyViolationError, match="submits_delivery_id_fkey"):
            await conn.execute(
                "INSERT INTO submits (smsc, message_id, delivery_id, msisdn, submitted_at) "
                "VALUES ('s', 'm2', $1, '77010000002', '2026-11-23 10:00+00')",
                delivery,
            )
    finally:
        await conn.close()


async def test_grant_cursor_migration_starts_each_months_walk_below_its_first_grant(
    empty_database_url: str, tmp_path: Path
) -> None:
    """0026: a month granted before it gets its sweep cursor just below the month's first
    job grant (its pending grants leave bonus_grants_pending, so the walk must cover them);
    a month whose job granted nothing starts at its end."""
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if int(path.name[:4]) < 26:
            (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), "utf-8")
    conn = await asyncpg.connect(empty_database_url)
    try:
        await migrate(conn, tmp_path)
        ids = await conn.fetch(
            "INSERT INTO bonus_grants (msisdn, month, units, granted_at, deadline_at, "
            "  month_notice) "
            "SELECT n, '2026-12-01', 500, '2026-11-30 19:05+00', '2026-12-30 19:05+00', n <> 'a' "
            "FROM unnest(ARRAY['a', 'b', 'c']) AS n RETURNING id"
        )
        await conn.execute(
            "INSERT INTO job_runs (job, period, started_at, finished_at, notices_cursor, "
            "  notices_upto) VALUES "
            "('bonus_grant_month', '2026-12', now(), now(), $1, $1), "
            "('bonus_grant_month', '2027-01', now(), now(), NULL, 7)",
            ids[-1]["id"],
        )
        assert (await migrate(conn))[0] == "0026_grant_cursor.sql"
        cursors = await conn.fetch("SELECT period, cancel_cursor FROM job_runs ORDER BY 1")
        assert [(r["period"], r["cancel_cursor"]) for r in cursors] == [
            ("2026-12", ids[1]["id"] - 1),
            ("2027-01", 7),
        ]
    finally:
        await conn.close()
