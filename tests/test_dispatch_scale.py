"""Cost per message independent of size (issue 16): a statement given a batch reads a number
of rows that does not grow with the rows around it — rows this node claimed, messages
waiting for receipts, receipts already applied, older campaigns' finished rows.

Counted as the rows every node of ``EXPLAIN ANALYZE`` (rolled back) produced or filtered
out, never as time (buffers would not do: an index scan over thousands of rows of a few
heap pages counts each page once). Each test measures the same statement on a small state
and again after the state grew by thousands of rows (with the statistics from before, as a
campaign in progress has them) and allows the larger one only a little more than the small
one: before this change, each of them read every such row.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from dispatcher.db import Database
from dispatcher.engine.repository import DispatchSQL
from tests import factories

NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
MONTH = date(2026, 11, 1)
NODE = "node-scale"
SMSC = "smsc-scale"


def _numbers(first: int, count: int) -> list[str]:
    return [str(77010000000 + first + n) for n in range(count)]


def _rows_read(node: dict[str, Any]) -> int:
    """Rows a plan node and those under it produced or threw away, over all their loops."""
    loops = int(node.get("Actual Loops", 1))
    own = node.get("Actual Rows", 0) + sum(
        node.get(key, 0)
        for key in (
            "Rows Removed by Filter",
            "Rows Removed by Join Filter",
            "Rows Removed by Index Recheck",
        )
    )
    return int(own * loops) + sum(_rows_read(child) for child in node.get("Plans", []))


async def _rows(conn: asyncpg.Connection, sql: str, *args: Any, before: str = "") -> int:
    """Rows the statement's execution read (see :func:`_rows_read`); rolled back."""
    tx = conn.transaction()
    await tx.start()
    try:
        if before:
            await conn.execute(before)
        raw = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, *args)
    finally:
        await tx.rollback()
    return _rows_read((json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"])


def _flat(small: int, large: int) -> bool:
    """The larger state may cost a little more (a deeper index, another page), not per row."""
    return large <= small * 1.5 + 40


async def _campaign(database: Database, audience: list[str], first_id: int | None = None) -> int:
    """A running info campaign to ``audience`` (members); deliveries numbered from
    ``first_id`` when given."""
    await factories.members(database, audience)
    campaign = await factories.campaign(database, [])
    if first_id is None:
        await factories.deliveries(database, campaign, audience)
    else:
        await database.pool.execute(
            "INSERT INTO deliveries (id, campaign_id, msisdn) "
            "SELECT $1 + n, $2, m FROM unnest($3::text[]) WITH ORDINALITY AS u (m, n)",
            first_id,
            campaign,
            audience,
        )
    return campaign


async def _claim(conn: asyncpg.Connection, campaign: int, limit: int) -> list[int]:
    async with conn.transaction():
        await conn.execute(DispatchSQL.plan_claim)
        rows = await conn.fetch(
            DispatchSQL.claim_campaign_batch, campaign, limit, NOW, NODE, MONTH, 100, 100
        )
    return sorted(r["id"] for r in rows)


async def test_marking_a_chunk_does_not_read_every_row_the_node_claimed(
    database: Database,
) -> None:
    campaign = await _campaign(database, _numbers(0, 4000))
    async with database.pool.acquire() as conn:
        await conn.execute("ANALYZE")  # as at the campaign's start: nothing claimed yet
        first = await _claim(conn, campaign, 16)
        small = await _rows(
            conn,
            DispatchSQL.mark_in_flight["deliveries"],
            first,
            NODE,
            [],
            NOW,
            [campaign] * len(first),
        )
        rest = await _claim(conn, campaign, 2000)
        large = await _rows(
            conn,
            DispatchSQL.mark_in_flight["deliveries"],
            rest[:16],
            NODE,
            [],
            NOW,
            [campaign] * 16,
        )
    assert _flat(small, large), (small, large)


async def _submitted(conn: asyncpg.Connection, ids: list[int]) -> None:
    """``ids`` submitted, one part each, waiting for their receipts."""
    await conn.execute(
        "UPDATE deliveries SET state = 'submitted', cap_month = $2, claimed_by = $3, "
        "claimed_at = $4, submitted_at = $4, parts = 1 WHERE id = ANY($1::bigint[])",
        ids,
        MONTH,
        NODE,
        NOW,
    )
    await conn.execute(
        "INSERT INTO submits (smsc, message_id, delivery_id, msisdn, part_no, parts, "
        "submitted_at, receipt) "
        "SELECT $2, 'm' || d.id, d.id, d.msisdn, 1, 1, $3, 'delivered' "
        "FROM deliveries d WHERE d.id = ANY($1::bigint[])",
        ids,
        SMSC,
        NOW,
    )


async def test_finishing_messages_does_not_read_every_message_waiting_for_receipts(
    database: Database,
) -> None:
    campaign = await _campaign(database, _numbers(0, 2016))
    async with database.pool.acquire() as conn:
        await conn.execute("ANALYZE")
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM deliveries ORDER BY id")]
        await _submitted(conn, ids[:16])
        small = await _rows(conn, DispatchSQL.finish_messages["deliveries"], ids[:16], NOW)
        await _submitted(conn, ids[16:])
        large = await _rows(conn, DispatchSQL.finish_messages["deliveries"], ids[16:32], NOW)
    assert campaign
    assert _flat(small, large), (small, large)


async def test_claiming_does_not_walk_older_campaigns_finished_rows(database: Database) -> None:
    # The campaign's deliveries get high ids; the older campaign's, inserted afterwards,
    # lower ones, as if it had been sent months before.
    campaign = await _campaign(database, _numbers(0, 60), first_id=1_000_000)
    async with database.pool.acquire() as conn:

        async def claim_rows() -> int:
            """Rows the claim of a batch of 20 reads."""
            return await _rows(
                conn,
                DispatchSQL.claim_campaign_batch,
                campaign,
                20,
                NOW,
                NODE,
                MONTH,
                100,
                100,
                before=DispatchSQL.plan_claim,
            )

        await conn.execute("ANALYZE")
        small = await claim_rows()
        old = await conn.fetchval(
            "INSERT INTO campaigns (name, kind, scope, texts, state) "
            "VALUES ('old', 'info', 'smart', '{\"ru\": \"old\"}', 'completed') RETURNING id"
        )
        await conn.execute(
            "INSERT INTO deliveries (id, campaign_id, msisdn, state, cap_month, claimed_at, "
            "submitted_at, finished_at, parts, parts_done) "
            "SELECT g, $1, (77020000000 + g)::text, 'delivered', $2, $3, $3, $3, 1, 1 "
            "FROM generate_series(1, 3000) AS g",
            old,
            MONTH,
            NOW - timedelta(days=60),
        )
        await conn.execute("ANALYZE")
        large = await claim_rows()
    assert _flat(small, large), (small, large)


async def test_applying_receipts_does_not_read_the_receipts_already_applied(
    database: Database,
) -> None:
    campaign = await _campaign(database, _numbers(0, 3008))
    async with database.pool.acquire() as conn:
        await conn.execute("ANALYZE")  # receipts and submits empty, as at a campaign's start
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM deliveries ORDER BY id")]
        await conn.execute("INSERT INTO smsc_id_formats (smsc, setting) VALUES ($1, 'as-is')", SMSC)
        args = (1000, NOW, NOW + timedelta(seconds=5), NOW - timedelta(days=3), False)

        async def receipts(batch: list[int], applied: bool) -> None:
            await _submitted(conn, batch)
            await conn.execute(
                "INSERT INTO receipts (smsc, message_id, state, received_at, applied_at, "
                "matched, msisdn) "
                "SELECT $2, 'm' || d.id, 'delivered', $3, "
                "CASE WHEN $4 THEN $3::timestamptz END, CASE WHEN $4 THEN true END, d.msisdn "
                "FROM deliveries d WHERE d.id = ANY($1::bigint[])",
                batch,
                SMSC,
                NOW,
                applied,
            )
            if applied:  # their parts hold their receipts
                await conn.execute(
                    "UPDATE submits SET receipt = 'delivered', receipt_at = $2 "
                    "WHERE delivery_id = ANY($1::bigint[])",
                    batch,
                    NOW,
                )

        await receipts(ids[:8], applied=False)
        await conn.execute("UPDATE submits SET receipt = NULL")
        plan = DispatchSQL.plan_each_batch
        small = await _rows(conn, DispatchSQL.apply_receipts, *args, before=plan)
        await receipts(ids[8:], applied=True)
        large = await _rows(conn, DispatchSQL.apply_receipts, *args, before=plan)
    assert campaign
    assert _flat(small, large), (small, large)
