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

Options: ``--recipients N``, ``--skip-tps``, ``--rss``, ``--profile``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from bench._net import free_port
from dispatcher.db import create_pool, recreate_database
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
    """Members 7703000000.. and one running info campaign to all of them."""
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO subscribers (msisdn) "
            "SELECT (77030000000 + g)::text FROM generate_series(1, $1) g",
            recipients,
        )
        await conn.execute(
            "INSERT INTO memberships (msisdn, joined_at, join_channel) "
            "SELECT msisdn, now(), 'ussd' FROM subscribers"
        )
        campaign = await conn.fetchval(
            "INSERT INTO campaigns (name, kind, scope, texts, state) VALUES "
            "('bench', 'info', 'smart', $1, 'running') RETURNING id",
            {"ru": "Скидка 20% у партнёра SMART до конца недели!"},
        )
        await conn.execute(
            "INSERT INTO deliveries (campaign_id, msisdn) SELECT $1, msisdn FROM subscribers",
            campaign,
        )
        await conn.execute("ANALYZE")
    return int(campaign)


async def run_campaign(
    url: str, recipients: int, port: int, tps: float | None, window: int = 64, burst: int = 1
) -> dict[str, float]:
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
            burst=max(1, int((tps or 0) // 20)),
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
        async with engine:
            await engine.session.wait_bound()
            started = time.perf_counter()
            engine.run_loops()  # the production loops
            await engine.sink.receipts.wait_committed(recipients)  # every message answered
            sent_at = time.perf_counter()
            await _until_applied(pool)
            finished = time.perf_counter()
            stats = engine.session.stats
        await ledger.close()
        delivered = await pool.fetchval(
            "SELECT count(*) FROM deliveries WHERE campaign_id = $1 AND state = 'delivered'",
            campaign,
        )
        return {
            "recipients": recipients,
            "delivered": float(delivered),
            "seconds": finished - started,
            "send_seconds": sent_at - started,
            "msg_per_s": delivered / (finished - started),
            "throttled": float(stats.throttled),
        }
    finally:
        await pool.close()


async def _until_applied(pool: asyncpg.Pool) -> None:
    """Wait until the receipts service has applied every receipt (no delivery left
    submitted)."""
    while True:
        if not await pool.fetchval("SELECT count(*) FROM deliveries WHERE state = 'submitted'"):
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
        admin_url = await asyncio.to_thread(server.start, "postgres")
        try:
            return await _measure(args, admin_url)
        finally:
            await asyncio.to_thread(server.stop)


async def _measure(args: argparse.Namespace, admin_url: str) -> int:
    port = free_port()
    sim = _simulator(port)
    try:
        await _wait_port(port)
        url = await recreate_database(admin_url, "bench_dispatch")
        profiler = cProfile.Profile() if args.profile else None
        if profiler:
            profiler.enable()
        result = await run_campaign(url, args.recipients, port, tps=None)
        if profiler:
            profiler.disable()
        base_url = await recreate_database(admin_url, "bench_naive")
        pool = await create_pool(base_url, min_size=1, max_size=1)
        await _seed(pool, 2000)
        await pool.close()
        baseline = await naive_baseline(base_url, 2000, port)
    finally:
        sim.terminate()
        sim.wait()
    print(f"end to end, {result['recipients']:,} recipients, no throttling:")
    print(
        f"  {result['delivered']:,.0f} delivered in {result['seconds']:.1f} s "
        f"(submits done at {result['send_seconds']:.1f} s)"
    )
    print(f"  engine: {result['msg_per_s']:,.0f} messages/s (goal 5,000)")
    print(
        f"  baseline, per-message round trips, same run: {baseline:,.0f} messages/s "
        f"-> x{result['msg_per_s'] / baseline:.1f}"
    )
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        print(out.getvalue())
    if not args.skip_tps:
        await _tps_use(admin_url)
    if args.rss:
        _rss(admin_url)
    return 0


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
        f"{granted:.0f} (burst 1), {recipients:,} msgs:"
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
    parser.add_argument("--recipients", type=int, default=200_000)
    parser.add_argument("--skip-tps", action="store_true")
    parser.add_argument("--rss", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--admin-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        asyncio.run(_rss_child(args.admin_url, args.rss_child))
        return 0
    return asyncio.run(_main(args))
