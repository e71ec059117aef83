"""Caps cannot be switched off (R7, invariant 1; issue 12): no role, option or statement
lets a campaign message leave without a cap slot — the API refuses ``apply_caps: false``
and the database refuses an uncapped campaign and a slotless delivery in flight."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import asyncpg
import pytest

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Role
from dispatcher.migrate import MIGRATIONS_DIR, migrate
from dispatcher.settings import Settings
from tests.dispatch_helpers import dispatch_rig
from tests.factories import campaign, members
from tests.test_campaign_support import BASE, action, info_payload, upload
from tests.test_migrate import empty_database_url as empty_database_url  # the fixture
from tests.web_helpers import running_api

FULL, FRESH = "77017770001", "77017770002"
NOVEMBER = date(2026, 11, 1)
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


async def _at_info_cap(database: Database, msisdn: str) -> None:
    """``msisdn`` has had its 10 partner info messages this month (the test clock's)."""
    await database.pool.execute(
        "INSERT INTO contact_counters (msisdn, month, info_count, survey_count, info_cap, "
        "survey_cap) VALUES ($1, $2, 10, 0, 10, 2)",
        msisdn,
        NOVEMBER,
    )


@pytest.mark.parametrize("role", [Role.MARKETER, Role.ADMIN])
@pytest.mark.parametrize("scope", ["smart", "operator"])
async def test_api_refuses_a_campaign_without_caps(
    settings: Settings, clock: ManualClock, database: Database, role: Role, scope: str
) -> None:
    """`"apply_caps": false` is a 400 naming the field for every role and scope, and creates
    nothing; `true` (the only value left) is still accepted."""
    async with running_api(settings, clock, database) as api:
        payload = info_payload(scope=scope, apply_caps=False)
        response = await api.client.post(BASE, json=payload, headers=api.auth(role))
        body = await response.json()
        assert response.status == 400, body
        assert body["error"]["code"] == "invalid_campaign"
        assert "R7" in body["error"]["details"]["apply_caps"]
        assert await database.pool.fetchval("SELECT count(*) FROM campaigns") == 0
        payload["apply_caps"] = True
        response = await api.client.post(BASE, json=payload, headers=api.auth(role))
        assert response.status == 201 and (await response.json())["apply_caps"] is True


async def test_database_refuses_an_uncapped_campaign(database: Database) -> None:
    """Invariant 1 held by the database: neither an insert nor an update can make a
    campaign uncapped, whatever code path tries."""
    with pytest.raises(asyncpg.CheckViolationError, match="campaigns_always_capped"):
        await database.pool.execute(
            "INSERT INTO campaigns (name, kind, scope, texts, apply_caps) "
            "VALUES ('x', 'info', 'smart', '{\"kk\": \"x\"}', false)"
        )
    campaign_id = await campaign(database, [FRESH])
    with pytest.raises(asyncpg.CheckViolationError, match="campaigns_always_capped"):
        await database.pool.execute(
            "UPDATE campaigns SET apply_caps = false WHERE id = $1", campaign_id
        )


async def test_database_refuses_a_slotless_delivery_in_flight(database: Database) -> None:
    """A delivery is written to the SMSC only in flight, and cannot be in flight without
    its month's cap slot (cap_month); with the slot it can."""
    await members(database, [FRESH])
    campaign_id = await campaign(database, [FRESH])
    in_flight = "UPDATE deliveries SET state = 'in_flight', cap_month = $2 WHERE campaign_id = $1"
    with pytest.raises(asyncpg.CheckViolationError, match="deliveries_in_flight_holds_cap_slot"):
        await database.pool.execute(in_flight, campaign_id, None)
    await database.pool.execute(in_flight, campaign_id, NOVEMBER)


async def test_no_eleventh_partner_message_for_a_smart_info_campaign(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """The issue's case end to end: a SMART info campaign created, uploaded and started
    through the API reaches the fresh member and not the one at the cap, whose counter stays
    at 10; asking for no caps was refused, so there is no other way to create it."""
    await members(database, [FULL, FRESH])
    await _at_info_cap(database, FULL)
    async with running_api(settings, clock, database) as api:
        refused = await api.client.post(
            BASE, json=info_payload(apply_caps=False), headers=api.auth(Role.MARKETER)
        )
        assert refused.status == 400
        created = await api.client.post(BASE, json=info_payload(), headers=api.auth(Role.MARKETER))
        campaign_id = (await created.json())["id"]
        status, _ = await upload(api, campaign_id, f"msisdn,name\n{FULL},A\n{FRESH},B\n".encode())
        assert status == 200
        assert (await action(api, campaign_id, "start"))[0] == 200
        async with dispatch_rig(database, settings, clock) as rig:
            await rig.drain()
            assert [sm.destination_addr for _, sm in rig.sim.submits()] == [FRESH]
            assert await rig.states(campaign_id) == {"submitted": 1, "cap_info": 1}
    counts = dict(await database.pool.fetch("SELECT msisdn, info_count FROM contact_counters"))
    assert counts == {FULL: 10, FRESH: 1}


async def test_migration_caps_campaigns_created_uncapped(
    empty_database_url: str, tmp_path: Path
) -> None:
    """0015 on a database with an uncapped campaign: the campaign is capped from then on, its
    slotless claimed row goes back to the queue (its next claim takes a slot), what it sent
    stays as it was, and a row an older process has in flight can still move on."""
    for path in MIGRATIONS_DIR.glob("*.sql"):
        if path.name < "0015":
            (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    conn = await asyncpg.connect(empty_database_url)
    try:
        await migrate(conn, tmp_path)
        campaign_id = await conn.fetchval(
            "INSERT INTO campaigns (name, kind, scope, texts, state, apply_caps) "
            "VALUES ('old', 'info', 'smart', '{\"ru\": \"x\"}', 'running', false) RETURNING id"
        )
        await conn.execute(
            "INSERT INTO deliveries (campaign_id, msisdn, state, claimed_by, submitted_at, "
            "finished_at) VALUES ($1, '77010000001', 'claimed', 'old-node', NULL, NULL), "
            "($1, '77010000002', 'in_flight', 'old-node', NULL, NULL), "
            "($1, '77010000003', 'delivered', 'old-node', $2, $2)",
            campaign_id,
            NOW,
        )
        assert "0015_limits.sql" in await migrate(conn)
        assert await conn.fetchval("SELECT apply_caps FROM campaigns") is True
        rows = await conn.fetch(
            "SELECT msisdn, state::text, claimed_by FROM deliveries ORDER BY msisdn"
        )
        assert [tuple(r) for r in rows] == [
            ("77010000001", "queued", None),
            ("77010000002", "in_flight", "old-node"),
            ("77010000003", "delivered", "old-node"),
        ]
        await conn.execute(
            "UPDATE deliveries SET state = 'unknown', finished_at = $1 WHERE state = 'in_flight'",
            NOW,
        )
    finally:
        await conn.close()
