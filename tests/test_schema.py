"""The database itself refuses what the rules forbid (DESIGN.md invariants 1, 2, 5)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from dispatcher.db import Database
from dispatcher.kernel.states import SCHEMA_ENUMS

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
MSISDN = "77011234567"


async def test_python_enums_mirror_schema_types(database: Database) -> None:
    """Every state enum in Python has exactly the labels of its PostgreSQL type."""
    rows = await database.pool.fetch(
        "SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder) AS labels "
        "FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY t.typname"
    )
    in_db = {r["typname"]: list(r["labels"]) for r in rows}
    for type_name, enum_cls in SCHEMA_ENUMS.items():
        assert in_db.pop(type_name) == [m.value for m in enum_cls], type_name
    assert in_db == {}, "schema enum types without a Python mirror"


async def _grant(conn: asyncpg.Connection, msisdn: str, month: date) -> None:
    await conn.execute(
        "INSERT INTO bonus_grants (msisdn, month, units, granted_at, deadline_at) "
        "VALUES ($1, $2, 500, $3::timestamptz, $3::timestamptz + interval '30 days')",
        msisdn,
        month,
        NOW,
    )


async def test_second_grant_same_month_refused(database: Database) -> None:
    """R3: a second bonus grant for the same number and month violates a unique key."""
    async with database.pool.acquire() as conn:
        await _grant(conn, MSISDN, date(2026, 11, 1))
        await _grant(conn, MSISDN, date(2026, 12, 1))
        with pytest.raises(asyncpg.UniqueViolationError, match="one_grant_per_month"):
            await _grant(conn, MSISDN, date(2026, 11, 1))


async def test_second_activation_same_month_refused(database: Database) -> None:
    """R4: two activations in one calendar month violate a unique key."""
    async with database.pool.acquire() as conn:
        await _grant(conn, MSISDN, date(2026, 10, 1))
        await _grant(conn, MSISDN, date(2026, 11, 1))
        activate = (
            "UPDATE bonus_grants SET state = 'active', activated_at = $2, "
            "activated_month = date '2026-11-01', expires_at = $2::timestamptz + interval '7 days' "
            "WHERE msisdn = $1 AND month = $3"
        )
        await conn.execute(activate, MSISDN, NOW, date(2026, 10, 1))
        with pytest.raises(asyncpg.UniqueViolationError, match="one_activation_per_month"):
            await conn.execute(activate, MSISDN, NOW, date(2026, 11, 1))


async def test_duplicate_delivery_refused(database: Database) -> None:
    """Invariant 2: one delivery row per campaign and msisdn."""
    async with database.pool.acquire() as conn:
        campaign = await conn.fetchval(
            "INSERT INTO campaigns (name, kind, scope, texts) "
            "VALUES ('c', 'info', 'smart', '{\"ru\": \"x\"}') RETURNING id"
        )
        insert = "INSERT INTO deliveries (campaign_id, msisdn) VALUES ($1, $2)"
        await conn.execute(insert, campaign, MSISDN)
        with pytest.raises(asyncpg.UniqueViolationError, match="deliveries_one_per_recipient"):
            await conn.execute(insert, campaign, MSISDN)


@pytest.mark.parametrize(
    ("column", "cap", "constraint"),
    [
        ("info_count", 10, "info_within_cap"),
        ("survey_count", 2, "survey_within_cap"),
    ],
)
async def test_counter_past_cap_refused(
    database: Database, column: str, cap: int, constraint: str
) -> None:
    """Invariant 1 / R7: a contact counter cannot be committed past its cap."""
    async with database.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO contact_counters (msisdn, month, info_cap, survey_cap) "
            "VALUES ($1, date '2026-11-01', 10, 2)",
            MSISDN,
        )
        bump = f"UPDATE contact_counters SET {column} = {column} + 1 WHERE msisdn = $1"
        for _ in range(cap):
            await conn.execute(bump, MSISDN)
        with pytest.raises(asyncpg.CheckViolationError, match=constraint):
            await conn.execute(bump, MSISDN)
        assert await conn.fetchval(f"SELECT {column} FROM contact_counters") == cap


async def test_consent_ledger_refuses_update_and_delete(database: Database) -> None:
    """The consent ledger is append-only: UPDATE, DELETE and TRUNCATE are refused."""
    async with database.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO consent_ledger (msisdn, event, channel, occurred_at) "
            "VALUES ($1, 'joined', 'ussd', $2)",
            MSISDN,
            NOW,
        )
        for statement in (
            "UPDATE consent_ledger SET event = 'left'",
            "DELETE FROM consent_ledger",
            "TRUNCATE consent_ledger",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(statement)
        assert await conn.fetchval("SELECT count(*) FROM consent_ledger") == 1


async def test_one_open_membership_per_number(database: Database) -> None:
    """R1: a number has at most one open membership period."""
    async with database.pool.acquire() as conn:
        await conn.execute("INSERT INTO subscribers (msisdn) VALUES ($1)", MSISDN)
        join = "INSERT INTO memberships (msisdn, joined_at, join_channel) VALUES ($1, $2, 'ussd')"
        await conn.execute(join, MSISDN, NOW)
        with pytest.raises(asyncpg.UniqueViolationError, match="memberships_one_open"):
            await conn.execute(join, MSISDN, NOW + timedelta(minutes=1))


async def test_one_open_survey_per_number(database: Database) -> None:
    """R13: a reply goes to the number's single open survey session."""
    async with database.pool.acquire() as conn:
        surveys = []
        for name in ("a", "b"):
            campaign = await conn.fetchval(
                "INSERT INTO campaigns (name, kind, scope, texts) "
                "VALUES ($1, 'survey', 'smart', '{}') RETURNING id",
                name,
            )
            surveys.append(
                await conn.fetchval(
                    "INSERT INTO surveys (campaign_id, questions, thanks) "
                    "VALUES ($1, '[]', '{}') RETURNING id",
                    campaign,
                )
            )
        open_session = (
            "INSERT INTO survey_sessions (survey_id, msisdn, opened_at, expires_at) "
            "VALUES ($1, $2, $3::timestamptz, $3::timestamptz + interval '1 day')"
        )
        await conn.execute(open_session, surveys[0], MSISDN, NOW)
        with pytest.raises(asyncpg.UniqueViolationError, match="survey_sessions_one_open"):
            await conn.execute(open_session, surveys[1], MSISDN, NOW)


async def test_msisdn_format_checked(database: Database) -> None:
    """Subscribers hold normalised E.164 digits only."""
    with pytest.raises(asyncpg.CheckViolationError):
        await database.pool.execute("INSERT INTO subscribers (msisdn) VALUES ('+7 701')")


@pytest.mark.parametrize("table", ["deliveries", "service_messages"])
async def test_finish_time_only_in_final_states(database: Database, table: str) -> None:
    """An outbound message has finished_at exactly when its state is final: a final row
    without one and an open row with one are both refused."""
    async with database.pool.acquire() as conn:
        campaign = await conn.fetchval(
            "INSERT INTO campaigns (name, kind, scope, texts) "
            "VALUES ('c', 'info', 'smart', '{\"ru\": \"x\"}') RETURNING id"
        )
        insert = {
            "deliveries": "INSERT INTO deliveries (campaign_id, msisdn) VALUES ($1, $2)",
            "service_messages": "INSERT INTO service_messages (campaign_id, msisdn, kind, body, "
            "in_window) VALUES ($1, $2, 'help', 'x', false)",
        }[table]
        await conn.execute(insert, campaign, MSISDN)
        constraint = f"{table}_finished_when_final"
        for state in ("delivered", "undelivered", "expired", "failed", "unknown"):
            with pytest.raises(asyncpg.CheckViolationError, match=constraint):
                await conn.execute(f"UPDATE {table} SET state = $1", state)
        with pytest.raises(asyncpg.CheckViolationError, match=constraint):
            await conn.execute(f"UPDATE {table} SET state = 'suppressed', suppressed = 'dnc'")
        for state in ("queued", "claimed", "in_flight", "submitted"):
            with pytest.raises(asyncpg.CheckViolationError, match=constraint):
                await conn.execute(f"UPDATE {table} SET state = $1, finished_at = $2", state, NOW)
        await conn.execute(f"UPDATE {table} SET state = 'delivered', finished_at = $1", NOW)
        assert await conn.fetchval(f"SELECT state::text FROM {table}") == "delivered"
