"""``python -m bench dispatch``: the dispatch engine end to end against a loopback SMSC.

Measures, in one run on an embedded PostgreSQL:

* **throughput** — a campaign of N recipients (default 200,000) claimed, capped, submitted,
  answered and its receipts applied, against the simulator in its own process with no
  throttling; goal ≥ 5,000 messages/s. The **baseline** of the same run is the naive
  per-message path (claim one, mark, submit, record: a round trip each) on a sample,
  the design the engine's set-based batches replace.
* **TPS use** — the same against an SMSC granting 200 TPS, the session paced at 200:
  share of the granted rate used (goal ≥ 97 %) and throttling responses provoked (goal 0).
* **memory** — peak RSS of a child process dispatching 100,000 and then 1,000,000 recipients
  (``--rss``; takes a few minutes): it must not grow with the audience.

Each run reports when the last submit was accepted, when the last receipt was applied (no
receipt left unapplied, every delivery of the campaign final), the lag between the two, and
messages/s end to end (claim → submit → receipt applied). ``--recipients`` takes a
comma-separated list of sizes, each run ``--runs`` times (median and spread printed);
``--history N`` first loads N finished deliveries of older campaigns with their submits and
applied receipts (a service that has run for months; generated in the database, then VACUUM
ANALYZE), once, into a template every run's database is copied from. ``--stats`` loads
pg_stat_statements and prints each run's costliest statements, with the HOT share of the
updates of deliveries, submits and receipts; ``--profile`` the engine process's cProfile.
The server runs with bench program's settings (an operator's server, not initdb's).

Options: ``--recipients N[,N…]``, ``--runs K``, ``--history N``, ``--stats``, ``--skip-tps``,
``--rss``, ``--profile``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench._net import free_port
from bench._procs import cpu_seconds, server_pids
from dispatcher.cli_common import run_loop
from dispatcher.db import create_pool, recreate_database, with_database
from dispatcher.embedded import EmbeddedPostgres
from dispatcher.engine.build import Program, build_engine
from dispatcher.engine.engine import EngineConfig
from dispatcher.kernel.clock import OffsetClock
from dispatcher.program.bonus import BonusLedger
from dispatcher.program.charging import charging_from_settings
from dispatcher.settings import load_settings
from smpp.config import Address, SessionConfig
from smpp.outcome import Accepted
from smpp.session import Session
from smpp.text import encode_message

NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # 11:00 Astana: ten hours of window ahead
RECEIPT_POLL = 0.02  # seconds
#: Subscriber numbers of the run (valid Kazakh mobile numbers: receipts name their subscriber).
FIRST_MSISDN = 77010000000
#: Server settings: bench program's (an operator's server for tables of millions of rows).
SERVER_SETTINGS = {"shared_buffers": "2GB", "max_wal_size": "8GB", "checkpoint_timeout": "30min"}
#: Older campaigns of the history (--history) have this many recipients each.
HISTORY_CAMPAIGN = 200_000
HISTORY_AT = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
#: The SMSC name the engine keeps message ids under (its host).
SMSC = "127.0.0.1"
#: Where --explain-slow leaves the server log with auto_explain's plans.
EXPLAIN_LOG = Path(tempfile.gettempdir()) / "bench-dispatch-plans.log"
#: Where --profile leaves the engine's cProfile data.
PROFILE_DUMP = Path(tempfile.gettempdir()) / "bench-dispatch-engine.prof"

# Bench-only SQL: the service's own statements stay in dispatcher/sql.
HISTORY_CAMPAIGNS = """
INSERT INTO campaigns (name, kind, scope, texts, state, started_at, finished_at)
SELECT 'history ' || g, 'info', 'smart', '{"ru": "old"}'::jsonb, 'completed',
       $2::timestamptz + g * interval '1 day', $2::timestamptz + g * interval '1 day'
FROM generate_series(1, $1) AS g
"""
# Finished deliveries, one part each, delivered (one in twenty undelivered), in id order.
HISTORY_DELIVERIES = """
INSERT INTO deliveries (campaign_id, msisdn, state, cap_month, attempts, claimed_at,
                        submitted_at, finished_at, parts, parts_done, last_status, language)
SELECT c.id, ($1::bigint + g)::text,
       CASE WHEN g % 20 = 0 THEN 'undelivered' ELSE 'delivered' END::delivery_state,
       date_trunc('month', c.started_at)::date, 1, c.started_at, c.started_at,
       c.started_at + interval '1 minute', 1, CASE WHEN g % 20 = 0 THEN 0 ELSE 1 END, 0, 'ru'
FROM campaigns c
CROSS JOIN LATERAL generate_series(1, least($3, $2 - $3 * (c.id - $4))) AS g
WHERE c.name LIKE 'history %'
ORDER BY c.id, g
"""
# Their accepted parts (ids from 10^12 on: the same SMSC's counter, months earlier) and
# receipts, all applied.
HISTORY_SUBMITS = """
INSERT INTO submits (smsc, message_id, delivery_id, msisdn, part_no, parts, submitted_at,
                     receipt, receipt_at)
SELECT $1, (1000000000000 + d.id)::text, d.id, d.msisdn, 1, 1, d.submitted_at,
       CASE WHEN d.state = 'delivered' THEN 'delivered' ELSE 'undelivered' END::receipt_state,
       d.finished_at
FROM deliveries d ORDER BY d.id
"""
HISTORY_RECEIPTS = """
INSERT INTO receipts (smsc, message_id, state, error_code, done_at, received_at, applied_at,
                      matched, id_hex, id_dec, msisdn)
SELECT s.smsc, s.message_id, s.receipt, '000', s.receipt_at, s.receipt_at, s.receipt_at, true,
       NULL, NULL, s.msisdn
FROM submits s ORDER BY s.id
"""
HOT_COUNTS = """
SELECT relname, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
WHERE relname IN ('deliveries', 'submits', 'receipts') ORDER BY relname
"""
TOP_STATEMENTS = r"""
SELECT calls, total_exec_time, mean_exec_time, rows, shared_blks_hit, shared_blks_read,
       shared_blks_dirtied, wal_bytes,
       regexp_replace(substr(query, 1, 400), '\s+', ' ', 'g') AS query
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY total_exec_time DESC LIMIT $1
"""


def _simulator(port: int, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "smpp.simulator", "--port", str(port), "--no-record", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _wait_port(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError("simulator did not start")


async def _seed(pool: asyncpg.Pool, recipients: int) -> int:
    """Members 7701000000.. and one running info campaign to all of them."""
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO subscribers (msisdn) "
            "SELECT ($1::bigint + g)::text FROM generate_series(1, $2) g "
            "ON CONFLICT DO NOTHING",
            FIRST_MSISDN,
            recipients,
        )
        await conn.execute(
            "INSERT INTO memberships (msisdn, joined_at, join_channel) "
            "SELECT msisdn, now(), 'ussd' FROM subscribers ON CONFLICT DO NOTHING"
        )
        campaign = await conn.fetchval(
            "INSERT INTO campaigns (name, kind, scope, texts, state) VALUES "
            "('bench', 'info', 'smart', $1, 'running') RETURNING id",
            {"ru": "Скидка 20% у партнёра SMART до конца недели!"},
        )
        await conn.execute(
            "INSERT INTO deliveries (campaign_id, msisdn) "
            "SELECT $1, ($2::bigint + g)::text FROM generate_series(1, $3) g",
            campaign,
            FIRST_MSISDN,
            recipients,
        )
        await conn.execute("ANALYZE")
    return int(campaign)


async def seed_history(url: str, deliveries: int) -> float:
    """``deliveries`` finished deliveries of older campaigns with their submits and applied
    receipts, then VACUUM ANALYZE; returns the seconds it took."""
    started = time.perf_counter()
    campaigns = -(-deliveries // HISTORY_CAMPAIGN)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET synchronous_commit = off")
        await conn.execute(HISTORY_CAMPAIGNS, campaigns, HISTORY_AT)
        first = await conn.fetchval("SELECT min(id) FROM campaigns WHERE name LIKE 'history %'")
        await conn.execute(HISTORY_DELIVERIES, FIRST_MSISDN, deliveries, HISTORY_CAMPAIGN, first)
        await conn.execute(HISTORY_SUBMITS, SMSC)
        await conn.execute(HISTORY_RECEIPTS)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - started


async def run_campaign(
    url: str,
    recipients: int,
    port: int,
    tps: float | None,
    window: int = 64,
    stats: bool = False,
    meter: CpuMeter | None = None,
) -> dict[str, Any]:
    """Seed, dispatch everything with serve's loops, apply every receipt; figures of the run."""
    pool = await create_pool(url, min_size=4, max_size=12)
    try:
        campaign = await _seed(pool, recipients)
        # Receipts are applied (and ones that beat their submit_sm_resp matched again) within
        # RECEIPT_POLL, not serve's seconds: the run ends when the last one is applied.
        settings = load_settings(
            {},
            database_url=url,
            smpp_window=window,
            receipts_interval=RECEIPT_POLL,
            receipts_recheck=RECEIPT_POLL,
        )
        clock = OffsetClock(NOW)
        config = SessionConfig(
            host="127.0.0.1",
            port=port,
            system_id="bench",
            password="pw",
            window=window,
            tps=tps,
            burst=_session_burst(tps),
        )
        ledger = BonusLedger(pool, settings, clock, charging_from_settings(settings))
        engine = build_engine(
            settings,
            clock,
            pool,
            Program.over(pool, settings, ledger),
            session_config=config,
            engine_config=EngineConfig(window=window, batch_size=2000),
        )
        before = await _hot_counts(pool)
        if stats:
            await pool.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            await pool.execute("SELECT pg_stat_statements_reset()")
        async with engine:
            await engine.session.wait_bound()
            load = os.getloadavg()[0]
            if meter:
                meter.start()
            started = time.perf_counter()
            engine.run_loops()  # the production loops
            sent_at = await _until_accepted(engine.session, recipients) - started
            await engine.sink.receipts.wait_committed(recipients)  # every message answered
            await _until_applied(pool)
            finished = time.perf_counter() - started
            cpu = meter.stop() if meter else {}
            session_stats = engine.session.stats
        await ledger.close()
        final = await pool.fetchval(
            "SELECT count(*) FROM deliveries WHERE campaign_id = $1 AND state = 'delivered'",
            campaign,
        )
        top = await pool.fetch(TOP_STATEMENTS, 12) if stats else []
        await asyncio.sleep(1.0)  # table statistics are flushed about once a second
        after = await _hot_counts(pool)
        return {
            "recipients": recipients,
            "delivered": float(final),
            "seconds": finished,
            "send_seconds": sent_at,
            "lag": finished - sent_at,
            "msg_per_s": final / finished,
            "throttled": float(session_stats.throttled),
            "load": load,
            "hot": {t: (after[t][0] - before[t][0], after[t][1] - before[t][1]) for t in after},
            "top": [dict(r) for r in top],
            "cpu": cpu,
        }
    finally:
        await pool.close()


class CpuMeter:
    """CPU seconds used by the engine (this process), the simulator and PostgreSQL between
    start() and stop(); backends that end in between are missed (the run's pool lives on)."""

    def __init__(self, simulator: int, postmaster: int | None) -> None:
        self._simulator = simulator
        self._postmaster = postmaster
        self._start: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        server = server_pids(self._postmaster) if self._postmaster else []
        return {
            "engine": usage.ru_utime + usage.ru_stime,
            "simulator": cpu_seconds([self._simulator]),
            "postgres": cpu_seconds(server),
        }

    def start(self) -> None:
        self._start = self._now()

    def stop(self) -> dict[str, float]:
        return {k: v - self._start[k] for k, v in self._now().items()}


async def _hot_counts(pool: asyncpg.Pool) -> dict[str, tuple[int, int]]:
    rows = await pool.fetch(HOT_COUNTS)
    return {r["relname"]: (r["n_tup_upd"], r["n_tup_hot_upd"]) for r in rows}


async def _until_accepted(session: Session, count: int) -> float:
    """The moment the SMSC accepted the ``count``-th submit (checked every 10 ms)."""
    while True:
        if session.stats.accepted >= count:
            return time.perf_counter()
        await asyncio.sleep(0.01)


async def _until_applied(pool: asyncpg.Pool) -> None:
    """Wait until the receipts service has applied every committed receipt (the messages
    they finish are finished in the same transaction). A probe of receipts_unapplied."""
    while True:
        if not await pool.fetchval("SELECT EXISTS (SELECT FROM receipts WHERE applied_at IS NULL)"):
            return
        await asyncio.sleep(RECEIPT_POLL)


async def naive_baseline(url: str, messages: int, port: int) -> float:
    """Messages/s of a per-message design: one claim, one mark, one submit, one record,
    each a round trip, one message at a time (what set-based batching replaces)."""
    pool = await create_pool(url, min_size=1, max_size=2)
    session = Session(SessionConfig(host="127.0.0.1", port=port, system_id="b", password="pw"))
    session.start()
    await session.wait_bound()
    source = Address.short_code("5555")
    try:
        campaign = await pool.fetchval("SELECT max(id) FROM campaigns")
        started = time.perf_counter()
        for _ in range(messages):
            async with pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    "SELECT id, msisdn FROM deliveries WHERE campaign_id = $1 AND state = 'queued'"
                    " ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
                    campaign,
                )
                await conn.execute(
                    "UPDATE contact_counters SET info_count = info_count WHERE msisdn = $1",
                    row["msisdn"],
                )
                await conn.execute(
                    # the slot's month: a delivery cannot be in flight without one (R7)
                    "UPDATE deliveries SET state = 'claimed', "
                    "cap_month = date_trunc('month', now())::date WHERE id = $1",
                    row[0],
                )
            await pool.execute("UPDATE deliveries SET state = 'in_flight' WHERE id = $1", row[0])
            outcome = await session.submit(
                encode_message("Скидка 20%")[0],
                source=source,
                destination=Address.international(row["msisdn"]),
            )
            assert isinstance(outcome, Accepted)
            await pool.execute("UPDATE deliveries SET state = 'submitted' WHERE id = $1", row[0])
        return messages / (time.perf_counter() - started)
    finally:
        await session.close()
        await pool.close()


async def _main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp:
        os.chmod(tmp, 0o711)  # as root the embedded server runs as its own user
        server = EmbeddedPostgres(Path(tmp))
        await asyncio.to_thread(server.start, "postgres")
        settings = dict(SERVER_SETTINGS)
        libraries = ["pg_stat_statements"] if args.stats else []
        if args.explain_slow is not None:
            # the plan, with row counts and buffers, of every statement slower than this
            libraries.append("auto_explain")
            settings.update(
                {
                    "auto_explain.log_min_duration": f"{args.explain_slow}ms",
                    "auto_explain.log_analyze": "on",
                    "auto_explain.log_buffers": "on",
                    "auto_explain.log_timing": "off",
                }
            )
        if libraries:
            settings["shared_preload_libraries"] = ",".join(libraries)
        for name, value in settings.items():
            server.psql_command(f"ALTER SYSTEM SET {name} = '{value}'")
        await asyncio.to_thread(server.stop)  # shared_buffers needs a restart
        admin_url = await asyncio.to_thread(server.start, "postgres")
        print("server settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
        try:
            pid_file = server.pgdata / "postmaster.pid"
            postmaster = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
            return await _measure(args, admin_url, postmaster)
        finally:
            await asyncio.to_thread(server.stop)
            if args.explain_slow is not None:
                shutil.copy(server.pgdata / "log", EXPLAIN_LOG)
                print(f"plans of statements slower than {args.explain_slow} ms: {EXPLAIN_LOG}")


async def _fresh_database(admin_url: str, name: str, template: str | None) -> str:
    """A migrated database ``name``: new, or a copy of ``template`` (the history)."""
    if template is None:
        return await recreate_database(admin_url, name)
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    finally:
        await admin.close()
    return with_database(admin_url, name)


async def _measure(args: argparse.Namespace, admin_url: str, postmaster: int | None) -> int:
    sizes = [int(n) for n in str(args.recipients).split(",")]
    port = free_port()
    sim = _simulator(port)
    template = None
    results: dict[int, list[dict[str, Any]]] = {n: [] for n in sizes}
    # CPU time, not wall time: the host is shared, and a wall-clock profile charges to whichever
    # frame was running the time this process spent waiting for a core.
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    try:
        await _wait_port(port)
        if args.history:
            template = "bench_history"
            url = await recreate_database(admin_url, template)
            took = await seed_history(url, args.history)
            print(
                f"history: {args.history:,} finished deliveries with submits and receipts "
                f"in {took:.0f} s (then VACUUM ANALYZE)"
            )
            await _explain_history(url)
        for size in sizes:
            for run in range(args.runs):
                url = await _fresh_database(admin_url, "bench_dispatch", template)
                if profiler:
                    profiler.enable()
                meter = CpuMeter(sim.pid, postmaster)
                result = await run_campaign(
                    url, size, port, tps=None, stats=args.stats, meter=meter
                )
                if profiler:
                    profiler.disable()
                results[size].append(result)
                _print_run(run + 1, result)
        base_url = await recreate_database(admin_url, "bench_naive")
        pool = await create_pool(base_url, min_size=1, max_size=1)
        await _seed(pool, 2000)
        await pool.close()
        baseline = await naive_baseline(base_url, 2000, port)
    finally:
        sim.terminate()
        sim.wait()
    history = f", {args.history:,} older finished deliveries" if args.history else ""
    print(f"end to end (claim -> submit -> receipt applied), no throttling{history}:")
    for size, runs in results.items():
        _print_summary(size, runs, baseline)
    print(f"  baseline, per-message round trips, same invocation: {baseline:,.0f} messages/s")
    if profiler:
        out = io.StringIO()
        profiler.dump_stats(PROFILE_DUMP)  # for pstats' callers and callees
        print(f"engine profile (CPU time) saved to {PROFILE_DUMP}")
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(40)
        stats.sort_stats("cumulative").print_stats(40)
        print(out.getvalue())
    if not args.skip_tps:
        await _tps_use(admin_url)
    if args.rss:
        _rss(admin_url)
    return 0


def _print_run(number: int, r: dict[str, Any]) -> None:
    print(
        f"run {number}, {r['recipients']:,} recipients (load {r['load']:.1f}): "
        f"{r['delivered']:,.0f} delivered; submits done at {r['send_seconds']:.1f} s, last "
        f"receipt applied at {r['seconds']:.1f} s (lag {r['lag']:.1f} s) -> "
        f"{r['msg_per_s']:,.0f} msg/s"
    )
    cpu = r["cpu"]
    if cpu:
        total = sum(cpu.values())
        print(
            f"  CPU {total:.1f} s = {1000 * total / r['recipients']:.3f} ms a message "
            f"(2 cores: at most {2 * r['recipients'] / total:,.0f} msg/s): "
            + ", ".join(f"{k} {v:.1f} s" for k, v in cpu.items())
        )
    hot = ", ".join(
        f"{t} {upd:,} updates ({100 * h / upd if upd else 0:.0f} % HOT)"
        for t, (upd, h) in r["hot"].items()
    )
    print(f"  {hot}")
    for row in r["top"]:
        print(
            f"  {row['total_exec_time'] / 1000:7.1f} s {row['calls']:7,} calls "
            f"{row['mean_exec_time']:8.2f} ms/call rows {row['rows']:,} "
            f"hit {row['shared_blks_hit']:,} read {row['shared_blks_read']:,} "
            f"dirtied {row['shared_blks_dirtied']:,} wal {row['wal_bytes'] / 2**20:,.0f} MiB"
            f" | {row['query'][:150]}"
        )


def _print_summary(size: int, runs: list[dict[str, Any]], baseline: float) -> None:
    rates = [r["msg_per_s"] for r in runs]
    loads = ", ".join(f"{r['load']:.1f}" for r in runs)
    median = statistics.median(rates)
    spread = (max(rates) - min(rates)) / median * 100 if median else 0.0
    print(
        f"  {size:,} recipients, {len(runs)} run(s): median {median:,.0f} msg/s "
        f"(min {min(rates):,.0f}, max {max(rates):,.0f}, spread {spread:.0f} %), goal 5,000; "
        f"median lag last submit -> last receipt applied "
        f"{statistics.median(r['lag'] for r in runs):.1f} s (goal <= 5 s); "
        f"load {loads}; x{median / baseline:.1f} baseline"
    )


async def _explain_history(url: str) -> None:
    """Sizes of the tables and indexes the hot path touches, after the history."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT c.relname, pg_size_pretty(pg_relation_size(c.oid)) AS size "
            "FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace "
            "AND c.relkind IN ('r', 'i') AND (c.relname LIKE 'deliveries%' "
            "OR c.relname LIKE 'submits%' OR c.relname LIKE 'receipts%') ORDER BY c.relname"
        )
    finally:
        await conn.close()
    print("  " + ", ".join(f"{r['relname']} {r['size']}" for r in rows))


def _session_burst(tps: float | None) -> int:
    """The bench session's pacing bucket: a twentieth of its rate, at least 1."""
    return max(1, int((tps or 0) // 20))


async def _tps_use(admin_url: str, granted: float = 200.0, recipients: int = 4000) -> None:
    port = free_port()
    sim = _simulator(port, "--tps", str(granted))
    try:
        await _wait_port(port)
        url = await recreate_database(admin_url, "bench_tps")
        result = await run_campaign(url, recipients, port, tps=granted)
    finally:
        sim.terminate()
        sim.wait()
    rate = result["delivered"] / result["send_seconds"]
    print(
        f"SMSC granting {granted:.0f} TPS (burst {granted / 10:.0f}), session paced at "
        f"{granted:.0f} (burst {_session_burst(granted)}), {recipients:,} msgs:"
    )
    print(
        f"  {rate:.1f} submits/s = {100 * rate / granted:.1f} % of the grant (goal 97 %), "
        f"throttling responses: {result['throttled']:.0f} (goal 0)"
    )


def _rss(admin_url: str) -> None:
    for recipients in (100_000, 1_000_000):
        out = (
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench",
                    "dispatch",
                    "--rss-child",
                    str(recipients),
                    "--admin-url",
                    admin_url,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        print(f"peak RSS dispatching {recipients:,} recipients: {out}")


async def _rss_child(admin_url: str, recipients: int) -> None:
    port = free_port()
    sim = _simulator(port)
    try:
        await _wait_port(port)
        url = await recreate_database(admin_url, f"bench_rss_{recipients}")
        await run_campaign(url, recipients, port, tps=None)
    finally:
        sim.terminate()
        sim.wait()
    print(f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench dispatch")
    parser.add_argument("--recipients", default="200000", help="sizes, comma-separated")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--history", type=int, default=0)
    parser.add_argument("--stats", action="store_true")
    parser.add_argument("--explain-slow", type=int, metavar="MS")
    parser.add_argument("--skip-tps", action="store_true")
    parser.add_argument("--rss", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="the engine's event loop (smartd's default: uvloop)",
    )
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--admin-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        run_loop(_rss_child(args.admin_url, args.rss_child), args.loop)
        return 0
    return run_loop(_main(args), args.loop)
