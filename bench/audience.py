"""Audience upload benchmark: ``python -m bench audience [--rows N] [--profile-rows N]``.

A CSV of N rows (msisdn + one variable) goes through the real path: an HTTP POST streamed
from a file to the aiohttp app on 127.0.0.1, parsed chunk by chunk, COPYed into a temp
table and queued into ``deliveries`` in one transaction, on an embedded PostgreSQL.
Prints rows/s for 100k and N rows (N ``--runs`` times: median and spread), the peak RSS after
each (it must not grow with the file), a baseline from the same run (``executemany`` INSERT of
50k rows, scaled), the parser alone, where the database's time goes (an N-row upload in one
batch, rolled back: EXPLAIN (ANALYZE, BUFFERS) of the query picking the new deliveries, the
queueing step with its WAL, against the INSERT … SELECT it replaced and without the secondary
indexes, and the floor: COPY into an empty table, indexes built after) and a cProfile. The
server runs with the program benchmark's settings (bench/program.py).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from bench.program import SERVER_SETTINGS
from campaigns.audience import AudienceParser
from campaigns.repository import CampaignRepository, CampaignSQL
from dispatcher.db import Database, create_pool
from dispatcher.embedded import EmbeddedPostgres
from dispatcher.kernel.states import Role
from dispatcher.migrate import migrate
from dispatcher.settings import load_settings
from dispatcher.tokens import TokenRepository
from dispatcher.web.app import create_app

BASELINE_ROWS = 50_000


def write_csv(path: Path, rows: int, seed: int = 7) -> None:
    """``rows`` distinct-ish Kazakh mobile numbers with a name, written in blocks."""
    rng = random.Random(seed)
    prefixes = ("701", "702", "705", "707", "747", "771", "775", "777", "778")
    with path.open("w", encoding="utf-8") as fh:
        fh.write("msisdn,name\n")
        for start in range(0, rows, 10_000):
            block = (
                f"7{rng.choice(prefixes)}{rng.randrange(10**7):07d},Name{i % 997}\n"
                for i in range(start, min(rows, start + 10_000))
            )
            fh.write("".join(block))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Bench:
    def __init__(self, session: aiohttp.ClientSession, base: str, token: str) -> None:
        self.session, self.base = session, base
        self.headers = {"Authorization": f"Bearer {token}"}

    async def campaign(self) -> int:
        payload = {
            "name": "bench",
            "kind": "info",
            "variables": ["name"],
            "texts": {"kk": "{name}!", "ru": "{name}!"},
        }
        async with self.session.post(self.base, json=payload, headers=self.headers) as response:
            return int((await response.json())["id"])

    async def upload(self, path: Path) -> tuple[float, dict[str, Any]]:
        cid = await self.campaign()
        headers = {**self.headers, "Content-Type": "text/csv"}
        started = time.perf_counter()
        with path.open("rb") as fh:  # aiohttp streams a file object in chunks
            async with self.session.post(
                f"{self.base}/{cid}/audience", data=fh, headers=headers
            ) as response:
                body = await response.json()
        assert response.status == 200, body
        return time.perf_counter() - started, body


async def baseline(pool: asyncpg.Pool, path: Path) -> float:
    """Rows/s of the obvious way: parse with csv, executemany INSERT ... ON CONFLICT."""
    import csv

    with path.open(encoding="utf-8") as fh:
        rows = [r for _, r in zip(range(BASELINE_ROWS + 1), csv.reader(fh), strict=False)][1:]
    cid = await pool.fetchval(
        "INSERT INTO campaigns (name, kind, scope, texts) VALUES ('base', 'info', 'smart', '{}')"
        " RETURNING id"
    )
    started = time.perf_counter()
    async with pool.acquire() as conn, conn.transaction():
        await conn.executemany(
            "INSERT INTO deliveries (campaign_id, msisdn, variables) "
            "VALUES ($1, $2, jsonb_build_object('name', $3::text)) ON CONFLICT DO NOTHING",
            [(cid, m, n) for m, n in rows],
        )
    return len(rows) / (time.perf_counter() - started)


def parser_only(path: Path) -> float:
    parser = AudienceParser(["name"], "KZ", max_rows=10**9, max_bytes=1 << 40)
    started = time.perf_counter()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 16):
            parser.feed(chunk)
    parser.finish()
    return parser.rows / (time.perf_counter() - started)


#: The new deliveries of an upload, for COPY TO (then COPY FROM into deliveries): tried in
#: issue 16's third pass as an alternative to insert_uploaded and measured here beside it.
NEW_DELIVERIES = """
SELECT DISTINCT ON (f.msisdn COLLATE "C")
       $1::bigint AS campaign_id, f.msisdn,
       CASE WHEN f.vars IS NULL THEN NULL ELSE jsonb_object($2::text[], f.vars) END AS variables
FROM audience_upload f
WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.campaign_id = $1 AND d.msisdn = f.msisdn)
ORDER BY f.msisdn COLLATE "C", f.ctid
"""
DELIVERY_COLUMNS = ("campaign_id", "msisdn", "variables")


async def explain_queue(pool: asyncpg.Pool, path: Path) -> list[str]:
    """Where the database's time goes for the file's rows in one batch, rolled back: the
    parse and COPY into the upload table, EXPLAIN (ANALYZE, BUFFERS, WAL) of the queueing
    statement, the statement alone with its WAL, the same rows COPYed out and into
    deliveries instead, the statement without the secondary indexes of deliveries, and the
    floor: COPY of the rows into an empty table of deliveries' shape without indexes, then
    its indexes built after the load."""
    repository = CampaignRepository(pool)
    cid = await pool.fetchval(
        "INSERT INTO campaigns (name, kind, scope, texts, variables) "
        "VALUES ('explain', 'info', 'smart', '{}', '{name}') RETURNING id"
    )

    async def chunks() -> Any:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 16):
                yield chunk

    lines: list[str] = []
    try:
        async with repository.audience_load(cid) as load:
            conn = load.conn
            parser = AudienceParser(["name"], "KZ", max_rows=10**9, max_bytes=1 << 40)
            started = time.perf_counter()
            await load.copy(parser.records(chunks()))
            copied = time.perf_counter()
            await conn.execute(CampaignSQL.analyze_upload)
            analyzed = time.perf_counter()
            lines.append(
                f"parse+COPY into the upload table {copied - started:.2f} s, "
                f"ANALYZE {analyzed - copied:.2f} s"
            )
            new_campaign = (
                "INSERT INTO campaigns (name, kind, scope, texts, variables) "
                "VALUES ('explain', 'info', 'smart', '{}', '{name}') RETURNING id"
            )

            async def step(label: str, work: Any, *setup: str) -> None:
                # Each step queues the rows for a campaign of its own: the rolled-back rows
                # of the step before stay in the indexes as dead entries, and under the same
                # campaign the unique key would check every one of them.
                savepoint = conn.transaction()
                await savepoint.start()
                try:
                    for sql in setup:
                        await conn.execute(sql)
                    campaign = await conn.fetchval(new_campaign)
                    lsn = await conn.fetchval("SELECT pg_current_wal_insert_lsn()")
                    began = time.perf_counter()
                    rows = await work(campaign)
                    took = time.perf_counter() - began
                    wal = await conn.fetchval(
                        "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1)", lsn
                    )
                    lines.append(
                        f"{label}: {took:.2f} s, {rows:,} rows, {wal / 2**20:,.0f} MiB WAL"
                    )
                finally:
                    await savepoint.rollback()

            async def explained(campaign: int) -> int:
                explain = "EXPLAIN (ANALYZE, BUFFERS, WAL) " + CampaignSQL.insert_uploaded
                plan = await conn.fetch(explain, campaign, ["name"])
                lines.append("insert_uploaded, EXPLAIN (ANALYZE, BUFFERS, WAL):")
                lines.extend("    " + r[0] for r in plan)
                return int(
                    await conn.fetchval(
                        "SELECT count(*) FROM deliveries WHERE campaign_id = $1", campaign
                    )
                )

            async def inserted(campaign: int) -> int:
                return int(await conn.fetchval(CampaignSQL.insert_uploaded, campaign, ["name"]))

            async def copied_out(campaign: int) -> bytes:
                parts: list[bytes] = []

                async def keep(data: bytes) -> None:
                    parts.append(data)

                await conn.copy_from_query(NEW_DELIVERIES, campaign, ["name"], output=keep)
                return b"".join(parts)

            async def round_trip(campaign: int) -> int:
                data = await copied_out(campaign)
                await conn.copy_to_table(
                    "deliveries", source=memoryview(data), columns=DELIVERY_COLUMNS
                )
                return data.count(b"\n")

            await step("  under EXPLAIN", explained)
            await step("insert_uploaded (INSERT … SELECT)", inserted)
            await step("COPY out + COPY into deliveries instead (multi-insert heap)", round_trip)
            secondary = [
                r["indexname"]
                for r in await conn.fetch(
                    "SELECT indexname FROM pg_indexes WHERE tablename = 'deliveries' "
                    "AND indexname NOT IN ('deliveries_pkey', 'deliveries_one_per_recipient')"
                )
            ]
            await step(
                f"insert_uploaded without the {len(secondary)} secondary indexes "
                f"({', '.join(secondary)})",
                inserted,
                *[f"DROP INDEX {name}" for name in secondary],
            )
            indexes = [
                r["indexdef"].replace("ON public.deliveries", "ON floor")
                for r in await conn.fetch(
                    "SELECT indexdef FROM pg_indexes WHERE tablename = 'deliveries'"
                )
            ]

            async def floor(campaign: int) -> int:
                await conn.execute("CREATE TABLE floor (LIKE deliveries INCLUDING DEFAULTS)")
                data = await copied_out(campaign)
                began = time.perf_counter()
                await conn.copy_to_table("floor", source=memoryview(data), columns=DELIVERY_COLUMNS)
                loaded = time.perf_counter()
                for sql in indexes:
                    await conn.execute(sql.replace("INDEX deliveries", "INDEX floor"))
                lines.append(
                    f"  floor: COPY into an empty table without indexes {loaded - began:.2f} s, "
                    f"then its {len(indexes)} indexes built {time.perf_counter() - loaded:.2f} s"
                )
                return data.count(b"\n")

            await step("floor (COPY out, COPY into a new table, CREATE INDEX after)", floor)
            raise _RollBack
    except _RollBack:
        pass
    return lines


class _RollBack(Exception):
    pass


def start_server(workdir: Path) -> tuple[EmbeddedPostgres, str]:
    server = EmbeddedPostgres(workdir / "pg")
    server.start(database="postgres")
    for name, value in SERVER_SETTINGS.items():
        server.psql_command(f"ALTER SYSTEM SET {name} = '{value}'")
    server.stop()  # shared_buffers needs a restart
    url = server.start(database="postgres")
    print("server settings: " + ", ".join(f"{k}={v}" for k, v in SERVER_SETTINGS.items()))
    return server, url


async def run(rows: int, profile_rows: int, runs: int, workdir: Path) -> int:
    files = {n: workdir / f"audience_{n}.csv" for n in sorted({100_000, rows, profile_rows})}
    for n, path in files.items():
        write_csv(path, n)
    server, url = start_server(workdir)
    try:
        pool = await create_pool(url, min_size=2, max_size=4)
        async with pool.acquire() as conn:
            await migrate(conn)
        settings = load_settings({}, data_dir=workdir, database_url=url)
        app = create_app(settings, database=Database(pool=pool, url=url))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        token, _ = await TokenRepository(pool).create("bench", Role.MARKETER)
        async with aiohttp.ClientSession() as session:
            bench = Bench(session, f"http://127.0.0.1:{port}/api/v1/campaigns", token)
            await report(bench, pool, files, rows, profile_rows, runs)
        await runner.cleanup()
        await pool.close()
    finally:
        server.stop()
    return 0


async def report(
    bench: Bench, pool: asyncpg.Pool, files: dict[int, Path], rows: int, prof: int, runs: int
) -> None:
    print("audience upload: HTTP POST text/csv → parse → COPY → queue (one transaction)")
    rates: list[float] = []
    for n in (100_000, *[rows] * runs):
        seconds, body = await bench.upload(files[n])
        if n == rows:
            rates.append(n / seconds)
        print(
            f"  {n:>9,} rows: {seconds:6.2f} s  {n / seconds:>9,.0f} rows/s  "
            f"(receive+parse+COPY {body['timing']['copy_s']:.2f} s, "
            f"queue+commit {body['timing']['queue_s']:.2f} s)  "
            f"accepted {body['accepted']:,} duplicates {body['duplicates']:,}  "
            f"peak RSS {peak_rss_mib():.0f} MiB"
        )
    print(
        f"{rows:,} rows, {len(rates)} run(s): median {statistics.median(rates):,.0f} rows/s, "
        f"min {min(rates):,.0f}, max {max(rates):,.0f} (goal >= 150,000)"
    )
    print(f"parser alone ({rows:,} rows): {parser_only(files[rows]):,.0f} rows/s")
    rate = await baseline(pool, files[rows])
    print(
        f"baseline executemany INSERT ({BASELINE_ROWS:,} rows): {rate:,.0f} rows/s "
        f"→ {rows / rate:.1f} s for {rows:,}"
    )
    print(f"where the database's time goes ({rows:,} rows, rolled back):")
    for line in await explain_queue(pool, files[rows]):
        print("  " + line)
    profiler = cProfile.Profile()
    profiler.enable()
    seconds, _ = await bench.upload(files[prof])
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
    print(f"profile of a {prof:,}-row upload ({seconds:.2f} s under cProfile), top by own time:")
    print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench audience")
    parser.add_argument("--rows", type=_positive, default=1_000_000)
    parser.add_argument(
        "--profile-rows", type=_positive, default=200_000, help="rows of the cProfiled upload"
    )
    parser.add_argument("--runs", type=_positive, default=3, help="uploads of --rows rows")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-audience-") as tmp:
        os.chmod(tmp, 0o711)  # as root the embedded server runs as its own user
        return asyncio.run(run(args.rows, args.profile_rows, args.runs, Path(tmp)))
