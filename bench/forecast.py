"""Forecast benchmark: ``python -m bench forecast [--rows N] [--runs R]``.

The forecast before a start (dispatcher/engine/forecast.py, issue 15: "a 1M audience in
seconds") over a campaign of N queued recipients, on an embedded PostgreSQL with the program
benchmark's settings (bench/program.py). The data: N subscribers (1 % blocked, 1 % recycled,
the rest active; kk / ru / en), 80 % SMART members, 3 % who joined and left, 2 % with a 1204,
5 % whose info cap of the month is used; the audience's ``name`` values are Latin for 70 % and
Cyrillic for 30 % (about 1,500 distinct values: people's names repeat).

Prints each run and the median of ``--runs`` runs of the forecast (the one statement and the
parts counted per distinct (language, values)), and in the same run: the floor (one
``count(*)`` over the campaign's deliveries: the scan no forecast can skip), the worst case
for the parts (every recipient's value distinct: one render and count per recipient), and the
baseline — the same answer row by row in Python (every recipient fetched with its facts and
its counter, rendered and counted one by one).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from bench.audience import _positive, start_server
from campaigns.models import Campaign
from campaigns.repository import CampaignRepository
from campaigns.templates import message_text
from dispatcher.db import create_pool
from dispatcher.engine.forecast import campaign_forecast, message_parts
from dispatcher.migrate import migrate
from dispatcher.settings import Settings, load_settings

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # 17:00 Astana, inside the window
TEXTS = {
    "kk": "{name}, SMART бонусыңыз дайын: *111*3# теріңіз",
    "ru": "{name}, ваш бонус SMART ждёт: наберите *111*3#",
    "en": "{name}, your SMART bonus of 500 tenge is waiting: dial *111*3# today to use it",
}

SETUP = [
    """INSERT INTO subscribers (msisdn, status, language)
       SELECT '7701' || lpad(i::text, 7, '0'),
              (CASE WHEN i % 100 = 1 THEN 'blocked' WHEN i % 100 = 2 THEN 'recycled'
                    ELSE 'active' END)::subscriber_status,
              (ARRAY['kk', 'ru', 'en'])[1 + i % 3]::language
       FROM generate_series(1, $1::int) AS i""",
    """INSERT INTO memberships (msisdn, joined_at, join_channel)
       SELECT '7701' || lpad(i::text, 7, '0'), timestamptz '2026-10-01', 'ussd'
       FROM generate_series(1, $1::int) AS i WHERE i % 10 < 8""",
    """INSERT INTO memberships (msisdn, joined_at, join_channel, left_at, leave_channel)
       SELECT '7701' || lpad(i::text, 7, '0'), timestamptz '2026-09-01', 'ussd',
              timestamptz '2026-10-01', 'sms'
       FROM generate_series(1, $1::int) AS i WHERE i % 100 BETWEEN 80 AND 82""",
    """INSERT INTO dnc_blocks (msisdn, blocked_at, channel)
       SELECT '7701' || lpad(i::text, 7, '0'), timestamptz '2026-10-02', 'sms'
       FROM generate_series(1, $1::int) AS i WHERE i % 100 BETWEEN 90 AND 91""",
    """INSERT INTO contact_counters (msisdn, owner_epoch, month, info_count, survey_count,
                                     info_cap, survey_cap)
       SELECT '7701' || lpad(i::text, 7, '0'), 0, date '2026-11-01', 10, 0, 10, 2
       FROM generate_series(1, $1::int) AS i WHERE i % 20 = 3""",
]
AUDIENCE = """
INSERT INTO deliveries (campaign_id, msisdn, variables)
SELECT $2, '7701' || lpad(i::text, 7, '0'),
       jsonb_build_object('name', CASE WHEN i % 10 < 7 THEN 'Name' || (i % 997)
                                       ELSE 'Айгерим' || (i % 503) END)
FROM generate_series(1, $1::int) AS i
"""
DISTINCT_AUDIENCE = """
INSERT INTO deliveries (campaign_id, msisdn, variables)
SELECT $2, '7701' || lpad(i::text, 7, '0'),
       jsonb_build_object('name', CASE WHEN i % 10 < 7 THEN 'Name' || i ELSE 'Айгерим' || i END)
FROM generate_series(1, $1::int) AS i
"""
ROW_BY_ROW = """
SELECT d.msisdn, d.variables, f.status, f.dnc_since, f.member_since, f.language,
       cc.info_count, cc.survey_count, cc.info_cap, cc.survey_cap
FROM deliveries d
LEFT JOIN subscriber_facts f ON f.msisdn = d.msisdn
LEFT JOIN contact_counters cc
    ON cc.msisdn = d.msisdn AND cc.owner_epoch = f.owner_epoch AND cc.month = $2
WHERE d.campaign_id = $1 AND d.state = 'queued'
"""


async def _campaign(pool: asyncpg.Pool, name: str) -> Campaign:
    row = await pool.fetchrow(
        "INSERT INTO campaigns (name, kind, scope, texts, variables) "
        "VALUES ($1, 'info', 'smart', $2, '{name}') RETURNING id",
        name,
        TEXTS,
    )
    assert row is not None
    campaign = await CampaignRepository(pool).get(int(row["id"]))
    assert campaign is not None
    return campaign


async def _timed_forecast(pool: asyncpg.Pool, campaign: Campaign, settings: Settings) -> float:
    started = time.perf_counter()
    forecast = await campaign_forecast(pool, campaign, settings, NOW)
    seconds = time.perf_counter() - started
    reasons = {r.value: n for r, n in forecast.suppressed.items() if n}
    print(
        f"  {seconds:6.2f} s  eligible {forecast.eligible:,}, suppressed {reasons}, "
        f"parts {forecast.total_parts:,} {forecast.distribution}, "
        f"finish {forecast.finishes_at:%Y-%m-%d %H:%M} UTC"
    )
    return seconds


async def _row_by_row(pool: asyncpg.Pool, campaign: Campaign, settings: Settings) -> float:
    """The baseline: every recipient fetched and judged and counted in Python, one by one
    (the rule asked per row: the same answer, none of it set-based)."""
    started = time.perf_counter()
    eligible = parts = 0
    async with pool.acquire() as conn, conn.transaction():
        async for row in conn.cursor(ROW_BY_ROW, campaign.id, NOW.date().replace(day=1)):
            if row["status"] != "active" or row["dnc_since"] or row["member_since"] is None:
                continue
            if row["info_count"] is not None and row["info_count"] + 1 > row["info_cap"]:
                continue
            eligible += 1
            _, text = message_text(
                campaign.texts, row["language"], row["variables"], settings.default_language
            )
            counted = message_parts(text)
            parts += counted[1] if counted else 0
    seconds = time.perf_counter() - started
    print(f"  {seconds:6.2f} s  eligible {eligible:,}, parts {parts:,}")
    return seconds


async def run(rows: int, runs: int, workdir: Path) -> int:
    server, url = start_server(workdir)
    try:
        pool = await create_pool(url, min_size=2, max_size=4)
        async with pool.acquire() as conn:
            await migrate(conn)
        settings = load_settings({}, data_dir=workdir, database_url=url)
        started = time.perf_counter()
        for statement in SETUP:
            await pool.execute(statement, rows)
        campaign = await _campaign(pool, "bench")
        await pool.execute(AUDIENCE, rows, campaign.id)
        distinct = await _campaign(pool, "bench-distinct")
        await pool.execute(DISTINCT_AUDIENCE, rows, distinct.id)
        await pool.execute("VACUUM ANALYZE")
        print(
            f"set-up: {rows:,} subscribers and 2 × {rows:,} deliveries in "
            f"{time.perf_counter() - started:.1f} s"
        )
        print(f"forecast of {rows:,} queued recipients ({runs} runs):")
        times = [await _timed_forecast(pool, campaign, settings) for _ in range(runs)]
        print(
            f"{rows:,} recipients, {runs} run(s): median {statistics.median(times):.2f} s, "
            f"min {min(times):.2f}, max {max(times):.2f} (goal: seconds)"
        )
        print("worst case for the parts, every value distinct (one render per recipient):")
        await _timed_forecast(pool, distinct, settings)
        started = time.perf_counter()
        await pool.fetchval(
            "SELECT count(*) FROM deliveries WHERE campaign_id = $1 AND state = 'queued'",
            campaign.id,
        )
        print(f"floor, count(*) of the queued deliveries: {time.perf_counter() - started:.2f} s")
        print("baseline, row by row in Python (same run):")
        await _row_by_row(pool, campaign, settings)
        await pool.close()
    finally:
        server.stop()
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench forecast")
    parser.add_argument("--rows", type=_positive, default=1_000_000)
    parser.add_argument("--runs", type=_positive, default=3, help="forecasts of --rows")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-forecast-") as tmp:
        os.chmod(tmp, 0o711)  # as root the embedded server runs as its own user
        return asyncio.run(run(args.rows, args.runs, Path(tmp)))
