"""``python -m bench program``: the monthly bonus grant at scale, and USSD under load.

(a) The monthly grant (R3) for ``--members`` members (default 1,000,000) on an embedded
    PostgreSQL in a temporary data directory, seeded with generate_series. Prints the time of
    ``BonusLedger.grant_month`` (goal <= 10 s), two baselines measured in the same run — the
    statement as it was before migration 0023 (a notice row per member as well), and a naive
    per-member executemany on a sample, scaled — where the time goes (EXPLAIN ANALYZE of both,
    rolled back), and the deferred cost: the engine queueing the notices from the grant rows.
    ``--grant-runs`` months are granted (median and spread). A third baseline is the
    statement on the schema as it was before migration 0026 (restored in the rolled-back
    profile's transaction), and the deferred cost of the sweep's walk 30 days later.
(b) ``POST /gateway/ussd`` at a fixed arrival rate (default 500 req/s for 10 s) against the
    real service (``smartd serve`` in a child process, same database), a mix of ``*555#``,
    ``*555*1#`` and ``*111*3#``: achieved rate, p50/p99/max latency, errors (goal p99 <= 50 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bench import _program_ussd as ussd_load
from bench._procs import cpu_seconds
from dispatcher.db import create_pool
from dispatcher.embedded import EmbeddedPostgres
from dispatcher.engine.repository import DispatchSQL
from dispatcher.kernel.clock import ManualClock
from dispatcher.migrate import migrate
from dispatcher.program.bonus import DEADLINE, BonusLedger, BonusSQL
from dispatcher.program.charging import LedgerCharging
from dispatcher.settings import load_settings

GRANT_AT = datetime(2026, 11, 30, 19, 5, tzinfo=UTC)  # 00:05 on 1 December, Astana time
PROFILE_AT = datetime(2026, 12, 31, 19, 5, tzinfo=UTC)  # 1 January: the rolled-back profile
FIRST_MSISDN = 77010000000
ASTANA = timedelta(hours=5)

# Bench-only SQL (the service's own statements stay in dispatcher/sql/bonus.sql).
SEED_SUBSCRIBERS = """
INSERT INTO subscribers (msisdn, language)
SELECT ($1::bigint + g)::text, (ARRAY['ru', 'kk', 'en'])[1 + g % 3]::language
FROM generate_series(0, $2 - 1) AS g
"""
# The first $2 subscribers are members; the rest (one in twenty) are not, and the grant
# must skip them.
SEED_MEMBERS = """
INSERT INTO memberships (msisdn, joined_at, join_channel)
SELECT ($1::bigint + g)::text, $3, 'ussd'
FROM generate_series(0, $2 - 1) AS g
"""
# Last month's grants, closed: the tables and indexes hold a month of history, as in service.
SEED_HISTORY = """
INSERT INTO bonus_grants (msisdn, month, units, state, granted_at, deadline_at, closed_at)
SELECT ($1::bigint + g)::text, '2026-11-01', 500, 'cancelled', $3::timestamptz,
       $3::timestamptz + interval '30 days', $3::timestamptz
FROM generate_series(0, $2 - 1) AS g
"""
NAIVE_GRANT = """
INSERT INTO bonus_grants (msisdn, month, units, granted_at, deadline_at)
VALUES ($1, $2, $3, $4::timestamptz, $4::timestamptz + interval '30 days')
ON CONFLICT ON CONSTRAINT one_grant_per_month DO NOTHING
"""
NAIVE_NOTICE = """
INSERT INTO service_messages (msisdn, kind, body, in_window, dedupe_key)
SELECT $1, 'bonus_notice', $2, true, 'bonus_notice:' || id
FROM bonus_grants WHERE msisdn = $1 AND month = $3
ON CONFLICT (dedupe_key, msisdn) DO NOTHING
"""


# Baseline: the monthly grant as it was before migration 0023 (bonus.sql at eb24200, one
# slice): a grant row and a service_messages notice row per member, in one statement.
TWO_ROWS_PER_MEMBER = """
WITH granted AS (
    INSERT INTO bonus_grants (msisdn, owner_epoch, month, units, granted_at, deadline_at)
    SELECT m.msisdn, s.owner_epoch, $1, $2, $3, $4
    FROM memberships m
    JOIN subscribers s ON s.msisdn = m.msisdn
    WHERE m.left_at IS NULL AND m.joined_at <= $3 AND s.status IN ('active', 'outgoing_blocked')
      AND NOT EXISTS (
          SELECT 1 FROM bonus_grants g
          WHERE g.msisdn = m.msisdn AND g.owner_epoch = s.owner_epoch AND g.month = $1
      )
    RETURNING id, msisdn, owner_epoch
), notices AS (
    INSERT INTO service_messages (msisdn, kind, body, in_window, dedupe_key)
    SELECT g.msisdn, 'bonus_notice',
           CASE WHEN EXISTS (
                    SELECT 1 FROM bonus_grants a
                    WHERE a.msisdn = g.msisdn AND a.owner_epoch = g.owner_epoch
                      AND a.activated_month = $1
                ) THEN
                    CASE pick_language('{ru,kk,en}', s.language, $5::language)
                        WHEN 'kk' THEN $11 WHEN 'en' THEN $12 ELSE $10 END
                WHEN s.status <> 'active' THEN
                    CASE pick_language('{ru,kk,en}', s.language, $5::language)
                        WHEN 'kk' THEN $14 WHEN 'en' THEN $15 ELSE $13 END
                ELSE
                    CASE pick_language('{ru,kk,en}', s.language, $5::language)
                        WHEN 'kk' THEN $7 WHEN 'en' THEN $8 ELSE $6 END
           END,
           $9, 'bonus_notice:' || g.id
    FROM granted g JOIN subscribers s ON s.msisdn = g.msisdn
    RETURNING 1
)
SELECT (SELECT count(*) FROM granted) AS granted, (SELECT count(*) FROM notices) AS notices
"""


# Baseline: the schema as it was before migration 0026, restored inside the rolled-back
# profile's transaction — every grant also an entry of bonus_grants_pending, the month's CHECK
# in numeric arithmetic.
BEFORE_0026 = (
    "DROP INDEX bonus_grants_pending",
    "CREATE INDEX bonus_grants_pending ON bonus_grants (deadline_at) WHERE state = 'pending'",
    "ALTER TABLE bonus_grants DROP CONSTRAINT bonus_grants_month_check, "
    "ADD CONSTRAINT bonus_grants_month_check CHECK (extract(day FROM month) = 1)",
)


# The server's client backends (the pool's connections, where the grant runs): their CPU
# time is the grant's cost less the waits for other processes on a shared host.
BACKENDS = """
SELECT pid FROM pg_stat_activity
WHERE backend_type = 'client backend' AND datname = current_database()
"""


# Baseline of the sweep: cancel_overdue as it was before migration 0026 — every pending grant
# found through bonus_grants_pending (restored as BEFORE_0026 has it), 10,000 a batch: today's
# statement without the filter 0026 added (derived, so it cannot drift from the statement).
assert " AND NOT month_notice" in BonusSQL.cancel_overdue, "cancel_overdue lost 0026's filter"
CANCEL_BEFORE_0026 = BonusSQL.cancel_overdue.replace(" AND NOT month_notice", "")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench program")
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--naive-sample", type=int, default=50_000)
    parser.add_argument("--rate", type=int, default=500, help="USSD requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="USSD load duration")
    parser.add_argument("--grant-runs", type=int, default=3, help="monthly grants timed")
    parser.add_argument("--queue-sample", type=int, default=50_000, help="notices queued")
    parser.add_argument(
        "--grant-workers", help="SMARTD_BONUS_GRANT_WORKERS for the timed grants (parallel slices)"
    )
    parser.add_argument("--skip-grant", action="store_true")
    parser.add_argument("--skip-ussd", action="store_true")
    return parser.parse_args(argv)


#: Server settings of the run: what an operator's database server would have for a table
#: of millions of rows (the initdb defaults are 128MB of buffers, 1GB of WAL between
#: checkpoints). Durability settings stay at their defaults.
SERVER_SETTINGS = {"shared_buffers": "2GB", "max_wal_size": "8GB", "checkpoint_timeout": "30min"}


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-program-") as tmp:
        os.chmod(tmp, 0o711)  # as root the embedded server runs as its own user
        server = EmbeddedPostgres(Path(tmp))
        server.start()
        for name, value in SERVER_SETTINGS.items():
            server.psql_command(f"ALTER SYSTEM SET {name} = '{value}'")
        server.stop()  # shared_buffers needs a restart
        url = server.start()
        print("server settings: " + ", ".join(f"{k}={v}" for k, v in SERVER_SETTINGS.items()))
        try:
            return asyncio.run(_run(url, args))
        finally:
            server.stop()


async def _run(url: str, args: argparse.Namespace) -> int:
    pool = await create_pool(url, min_size=1, max_size=4)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        subscribers = await _seed(pool, args.members)
        if not args.skip_grant:
            await _bench_grant(pool, url, args)
    finally:
        await pool.close()
    if args.skip_ussd:
        return 0
    report = await ussd_load.run(url, subscribers, args.rate, args.seconds)
    return 0 if report.errors == 0 else 1


async def _seed(pool: asyncpg.Pool, members: int) -> int:
    """``members`` members among ``members * 20 / 19`` subscribers; returns the subscriber count."""
    subscribers = members + members // 19
    started = time.perf_counter()
    await pool.execute(SEED_SUBSCRIBERS, FIRST_MSISDN, subscribers)
    await pool.execute(SEED_MEMBERS, FIRST_MSISDN, members, datetime(2026, 10, 1, tzinfo=UTC))
    await pool.execute(SEED_HISTORY, FIRST_MSISDN, members, datetime(2026, 10, 31, 19, tzinfo=UTC))
    for table in ("subscribers", "memberships", "bonus_grants"):
        await pool.execute(f"VACUUM ANALYZE {table}")
    count = await pool.fetchval("SELECT count(*) FROM memberships WHERE left_at IS NULL")
    print(
        f"seeded {subscribers:,} subscribers, {count:,} members "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return subscribers


async def _bench_grant(pool: asyncpg.Pool, url: str, args: argparse.Namespace) -> None:
    env = {} if args.grant_workers is None else {"SMARTD_BONUS_GRANT_WORKERS": args.grant_workers}
    settings = load_settings(env, database_url=url)
    ledger = BonusLedger(pool, settings, ManualClock(GRANT_AT), LedgerCharging())
    # Profiles first (January, rolled back), then the timed runs (December, February, …).
    plan = await _explain(pool, BonusSQL.grant_month, ledger.grant_month_params)
    before_0026 = await _explain(pool, BonusSQL.grant_month, ledger.grant_month_params, BEFORE_0026)
    before = await _explain(pool, TWO_ROWS_PER_MEMBER, _two_rows_params(ledger))
    naive = await _naive(pool, args.naive_sample, settings.bonus_units)
    # The rolled-back profiles left a million dead grant rows each, and their dead index
    # entries: gone before the timed runs, as autovacuum would have them in service.
    await pool.execute("VACUUM ANALYZE bonus_grants")
    times: list[float] = []
    cpus: list[float] = []
    granted = 0
    for run in range(args.grant_runs):
        at = _months_later(GRANT_AT, 0 if run == 0 else run + 1)
        wal_before = await pool.fetchval("SELECT pg_current_wal_lsn()")
        cpu_before = {r["pid"]: cpu_seconds([r["pid"]]) for r in await pool.fetch(BACKENDS)}
        started = time.perf_counter()
        granted = await ledger.grant_month(at)
        elapsed = time.perf_counter() - started
        cpu = sum(  # a connection the pool opened for the run counts from its start
            cpu_seconds([r["pid"]]) - cpu_before.get(r["pid"], 0.0)
            for r in await pool.fetch(BACKENDS)
        )
        times.append(elapsed)
        cpus.append(cpu)
        wal = await pool.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)", wal_before)
        due = await pool.fetchval(
            "SELECT coalesce(sum(notices_upto - notices_cursor), 0)::bigint FROM job_runs "
            "WHERE job = 'bonus_grant_month'"
        )
        print(
            f"\n(a) monthly grant {at + ASTANA:%Y-%m} (run {run + 1}): {granted:,} grants, "
            f"each carrying its notice (grant ids ahead of the notice cursors: {due:,}), "
            f"in {elapsed:.2f} s "
            f"({granted / elapsed:,.0f} members/s; goal <= 10 s); "
            f"{settings.bonus_grant_workers} slice(s), {wal / 2**20:,.0f} MiB of WAL; "
            f"PostgreSQL backends {cpu:.2f} s CPU; load {os.getloadavg()[0]:.2f}"
        )
    print(
        f"monthly grant, {len(times)} run(s): median {statistics.median(times):.2f} s, "
        f"min {min(times):.2f}, max {max(times):.2f} (goal <= 10 s); backend CPU median "
        f"{statistics.median(cpus):.2f} s"
    )
    queue_s, queued = await _queue_notices(pool, args.queue_sample)
    sweep_s, walked, cancelled = await _sweep_month(pool, GRANT_AT + DEADLINE)
    old_sweep_s, old_cancelled = await _sweep_before_0026(pool, GRANT_AT + DEADLINE)
    print("  baselines (same run, EXPLAIN ANALYZE, rolled back):")
    print(f"    this statement (grant rows only): {plan['Execution Time'] / 1000:.2f} s")
    print(
        "    before migration 0026 (each grant in bonus_grants_pending, numeric month CHECK): "
        f"{before_0026['Execution Time'] / 1000:.2f} s"
    )
    print(
        "    before migration 0023 (a grant and a service_messages notice per member): "
        f"{before['Execution Time'] / 1000:.2f} s"
    )
    print(
        f"    naive executemany per member ({args.naive_sample:,} sampled, scaled): "
        f"{naive * granted / args.naive_sample:.1f} s"
    )
    print(
        f"  deferred cost: queue_bonus_notices queued {queued:,} notices in batches of 500 in "
        f"{queue_s:.2f} s ({queue_s / max(queued, 1) * 1e6:.0f} µs a notice, paid at send time)"
    )
    print(
        f"  deferred cost: 30 days later the sweep walks the month's grants (cancel_cursor, "
        f"migration 0026): {walked:,} passed, {cancelled:,} cancelled in {sweep_s:.2f} s "
        f"(rolled back); before migration 0026, through bonus_grants_pending: "
        f"{old_cancelled:,} cancelled in {old_sweep_s:.2f} s"
    )
    print("  where the time goes (EXPLAIN ANALYZE, January, rolled back):")
    for line in _profile(plan):
        print("    " + line)
    print("  before migration 0026, the same month:")
    for line in _profile(before_0026):
        print("    " + line)
    print("  before migration 0023, the same month:")
    for line in _profile(before):
        print("    " + line)


def _months_later(at: datetime, months: int) -> datetime:
    """00:05 Astana (UTC+5) on the first day of the month ``months`` after ``at``'s (Astana)."""
    local = at + ASTANA
    index = local.year * 12 + local.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, 0, 5, tzinfo=UTC) - ASTANA


async def _queue_notices(pool: asyncpg.Pool, sample: int) -> tuple[float, int]:
    """Time the engine's queueing of due notices (dispatch.sql queue_bonus_notices) for
    ``sample`` of them, 500 at a time, window open (rolled back)."""
    queued = 0
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            started = time.perf_counter()
            while queued < sample:
                n = await conn.fetchval(DispatchSQL.queue_bonus_notices, 500, True)
                queued += n
                if n == 0:
                    break
            elapsed = time.perf_counter() - started
            plan = await conn.fetch(
                "EXPLAIN (ANALYZE, BUFFERS) " + DispatchSQL.queue_bonus_notices, 500, True
            )
            print("  queue_bonus_notices, one more batch of 500 (EXPLAIN ANALYZE):")
            for row in plan:
                if "actual" in row[0] or "Execution" in row[0]:
                    print("      " + row[0])
            return elapsed, queued
        finally:
            await tx.rollback()


def _two_rows_params(ledger: BonusLedger) -> Any:
    def params(month: date, now: datetime) -> tuple[object, ...]:
        texts = ledger.notice_texts(month, now)
        variants = texts[str(int((now + DEADLINE).timestamp()))]
        assert isinstance(variants, dict)
        plain, used, topup = (variants[k] for k in ("plain", "used", "topup"))
        assert isinstance(plain, dict) and isinstance(used, dict) and isinstance(topup, dict)
        head = ledger.grant_month_params(month, now)[:4]
        langs = ("ru", "kk", "en")
        return (
            *head,
            texts["default"],
            *(plain[x] for x in langs),
            texts["in_window"],
            *(used[x] for x in langs),
            *(topup[x] for x in langs),
        )

    return params


async def _sweep_before_0026(pool: asyncpg.Pool, at: datetime) -> tuple[float, int]:
    """The same month's cancellations as the sweep made them before migration 0026, through
    the old bonus_grants_pending (rebuilt first, not timed), rolled back: seconds, grants
    cancelled."""
    cancelled = 0
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            for statement in BEFORE_0026[:2]:
                await conn.execute(statement)
            started = time.perf_counter()
            while n := await conn.fetchval(CANCEL_BEFORE_0026, at + timedelta(minutes=1), 10_000):
                cancelled += n
            return time.perf_counter() - started, cancelled
        finally:
            await tx.rollback()


async def _sweep_month(pool: asyncpg.Pool, at: datetime) -> tuple[float, int, int]:
    """The sweep's walk of the first timed month's grants (bonus.sql cancel_month_overdue,
    10,000 a batch as the ledger does) just after their deadline, rolled back: seconds, grants
    passed, grants cancelled."""
    walked = cancelled = 0
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            started = time.perf_counter()
            while True:
                row = await conn.fetchrow(
                    BonusSQL.cancel_month_overdue, at + timedelta(minutes=1), 10_000
                )
                walked += row["passed"]
                cancelled += row["cancelled"]
                if row["passed"] == 0:
                    break
            return time.perf_counter() - started, walked, cancelled
        finally:
            await tx.rollback()


async def _explain(
    pool: asyncpg.Pool, sql: str, args_of: Any, setup: tuple[str, ...] = ()
) -> dict[str, Any]:
    """EXPLAIN ANALYZE of a grant statement for January, after ``setup``, rolled back."""
    month = date(2027, 1, 1)
    args = args_of(month, PROFILE_AT)  # one slice: the whole statement's profile
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            for statement in setup:
                await conn.execute(statement)
            raw = await conn.fetchval("EXPLAIN (ANALYZE, BUFFERS, WAL, FORMAT JSON) " + sql, *args)
        finally:
            await tx.rollback()
    # The pool's JSON codec (dispatcher/db.py) already decodes EXPLAIN's json; a plain
    # connection would hand back text.
    decoded = json.loads(raw) if isinstance(raw, str) else raw
    plan: dict[str, Any] = decoded[0]
    return plan


def _io(node: dict[str, Any]) -> str:
    """A node's buffers and WAL (inclusive of its children), from EXPLAIN's BUFFERS and WAL."""
    return (
        f"; buffers hit {node.get('Shared Hit Blocks', 0):,}, read "
        f"{node.get('Shared Read Blocks', 0):,}, dirtied {node.get('Shared Dirtied Blocks', 0):,}"
        f", written {node.get('Shared Written Blocks', 0):,}, temp written "
        f"{node.get('Temp Written Blocks', 0):,}; WAL {node.get('WAL Records', 0):,} records, "
        f"{node.get('WAL FPI', 0):,} full pages, {node.get('WAL Bytes', 0) / 2**20:,.0f} MiB"
    )


def _profile(plan: dict[str, Any]) -> list[str]:
    """Self time of the plan's main nodes, and the trigger time, in ms."""
    lines: list[str] = []

    def walk(node: dict[str, Any], depth: int) -> None:
        children = node.get("Plans", [])
        inclusive = node["Actual Total Time"] * node.get("Actual Loops", 1)
        below = sum(c["Actual Total Time"] * c.get("Actual Loops", 1) for c in children)
        name = node["Node Type"] + (
            f" on {node['Relation Name']}" if "Relation Name" in node else ""
        )
        if node.get("Subplan Name") or node.get("CTE Name"):
            name += f" [{node.get('Subplan Name') or node.get('CTE Name')}]"
        self_ms = max(inclusive - below, 0.0)
        # A CTE Scan's time is the CTE's own nodes, shown where they are; not printed twice.
        shown = node["Node Type"] not in ("CTE Scan", "Aggregate", "Result")
        if shown and self_ms >= 50:
            lines.append(
                f"{'  ' * depth}{name}: {self_ms:,.0f} ms self, rows={node['Actual Rows']:,}"
                + (_io(node) if node["Node Type"] == "ModifyTable" else "")
            )
        for child in children:
            walk(child, depth + 1)

    walk(plan["Plan"], 0)
    for trigger in plan.get("Triggers", []):
        lines.append(
            f"trigger {trigger['Trigger Name']}: {trigger['Time']:,.0f} ms "
            f"({trigger['Calls']:,} calls)"
        )
    lines.append(f"total execution: {plan['Execution Time']:,.0f} ms")
    return lines


async def _naive(pool: asyncpg.Pool, sample: int, units: int) -> float:
    """A grant and a notice per member, one executemany each, on ``sample`` members (seconds)."""
    month = date(2027, 2, 1)
    at = datetime(2027, 1, 31, 19, 5, tzinfo=UTC)
    numbers = [str(FIRST_MSISDN + g) for g in range(sample)]
    started = time.perf_counter()
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.executemany(NAIVE_GRANT, [(m, month, units, at) for m in numbers])
            await conn.executemany(NAIVE_NOTICE, [(m, "notice", month) for m in numbers])
        finally:
            await tx.rollback()
    return time.perf_counter() - started
