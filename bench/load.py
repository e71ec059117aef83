"""``python -m bench load``: the USSD gateway under load while a campaign sends.

One ``smartd serve`` child (HTTP API and dispatch engine, its clock pinned inside the send
window, scheduler off) against an SMSC simulator child, on an embedded PostgreSQL. This
process only generates load: ``POST /gateway/ussd`` at a fixed arrival rate (open loop:
requests leave at their scheduled times whatever the answers do, and latency counts from the
scheduled time, so a stall shows in the percentiles instead of slowing the load down).

Measured in one run:

1. the campaign's throughput alone (messages leaving the queue per second, steady state);
2. the same with the USSD load on (after a 3-second warm-up at the same rate, not counted):
   latency p50 / p99 / max, errors, and the throughput again.

Goal (issue 7): ≥ 1,000 req/s for 60 s, p99 ≤ 100 ms, zero errors, throughput not halved.
``--runs N`` (default 3) repeats the whole measurement on a fresh database and prints the
median and spread (min-max) of each figure. These are figures of the host: the test suite
does not assert them (``tests/reliability/test_load.py`` checks correctness under a load
derived from what the host sustains, through :func:`serving`).
``BENCH_PROFILE=/tmp/serve.prof`` runs the service under cProfile, written to that file;
``BENCH_PROFILE_CPU=…`` the same timing CPU time (a wait on a shared host is not charged).

``--cpu`` measures the CPU a request costs serve and PostgreSQL (closed loop, no campaign),
in alternating rounds of its variants so each sees the same host: asyncio and uvloop, or
(``--before DIR``) serve running the source tree DIR — ``git archive`` of the code before
a change — against this one; ``--stats`` adds the statements PostgreSQL ran a request
(pg_stat_statements: calls and execution time a request).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import asyncpg
import psutil

from bench._net import SMPP_PASSWORD, free_port, serve_env
from bench._procs import cpu_seconds
from bench._ussd import percentiles_ms, ussd_capacity, ussd_load, wait_ready
from dispatcher.db import create_pool
from dispatcher.kernel.states import Role
from dispatcher.tokens import TokenRepository

FIRST_MEMBER = 77080000000
FIRST_RECIPIENT = 77090000000
WARM_UP_SECONDS = 3.0


@dataclass(frozen=True)
class LoadFigures:
    rate: int
    seconds: float
    requests: int
    errors: int
    served_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    campaign_alone_per_s: float
    campaign_loaded_per_s: float


@contextlib.contextmanager
def _child(
    args: list[str], env: dict[str, str], log: Path, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _seed(url: str, members: int, recipients: int) -> str:
    """Members for the USSD load (every 10th number left out: it joins), the campaign's
    recipients (members too, other numbers); returns a gateway token."""
    pool = await create_pool(url, min_size=1, max_size=2)
    try:
        numbers = [str(FIRST_MEMBER + i) for i in range(members)]
        targets = [str(FIRST_RECIPIENT + i) for i in range(recipients)]
        await pool.execute(
            "INSERT INTO subscribers (msisdn) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
            numbers + targets,
        )
        await pool.execute(
            "INSERT INTO memberships (msisdn, joined_at, join_channel) "
            "SELECT unnest($1::text[]), timestamptz '2026-11-01 00:00+00', 'ussd'",
            [n for i, n in enumerate(numbers) if i % 10] + targets,
        )
        token, _ = await TokenRepository(pool).create("bench-load-gateway", Role.GATEWAY)
        return token
    finally:
        await pool.close()


async def _add_campaign(pool: asyncpg.Pool, name: str, numbers: list[str]) -> int:
    campaign = await pool.fetchval(
        # Capped like every campaign (R7; migration 0015 allows no other): each recipient
        # gets one message, so the caps cost their upsert and refuse nothing.
        "INSERT INTO campaigns (name, kind, scope, texts, state) "
        "VALUES ($1, 'info', 'smart', $2, 'running') RETURNING id",
        name,
        {"kk": f"{name}: 20% жеңілдік", "ru": f"{name}: скидка 20%"},
    )
    await pool.execute(
        "INSERT INTO deliveries (campaign_id, msisdn) SELECT $1, unnest($2::text[])",
        campaign,
        numbers,
    )
    return int(campaign)


async def _sent(pool: asyncpg.Pool, campaign: int) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM deliveries WHERE campaign_id = $1 "
            "AND state NOT IN ('queued', 'claimed')",
            campaign,
        )
    )


async def _rate_over(pool: asyncpg.Pool, campaign: int, seconds: float) -> float:
    """Messages of ``campaign`` leaving the queue per second over the next ``seconds``."""
    first, started = await _sent(pool, campaign), time.perf_counter()
    await asyncio.sleep(seconds)  # measuring another process over a fixed span
    return (await _sent(pool, campaign) - first) / (time.perf_counter() - started)


@contextlib.asynccontextmanager
async def serving(
    url: str,
    data_dir: Path,
    *,
    tps: int,
    split: bool = False,
    extra_env: dict[str, str] | None = None,
    source: Path | None = None,
) -> AsyncIterator[str]:
    """An SMSC simulator child and a ``smartd serve`` child over the (migrated, seeded)
    database at ``url``, serve's clock pinned inside the send window; yields serve's base
    URL once it is ready, and stops both after. ``split``: the engine in one ``serve``
    process and the HTTP API the load calls in another (``SMARTD_ENGINE_ENABLED=false``),
    so the gateway and the campaign do not share one event loop (and one core). ``source``:
    serve runs the code of that source tree (another checkout: the code before a change),
    not this one's."""
    smpp_port, http_port, engine_port = free_port(), free_port(), free_port()
    base = f"http://127.0.0.1:{http_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTD_")}
    sim_args = [sys.executable, "-m", "smpp.simulator", "--port", str(smpp_port)]
    sim_args += ["--credential", f"smartd:{SMPP_PASSWORD}", "--no-record"]
    env_serve = serve_env(
        url,
        http_port,
        smpp_port,
        data_dir,
        SMARTD_SMPP_TPS=str(tps),
        SMARTD_DB_POOL_MAX="20",
        **(extra_env or {}),
    )
    if source is not None:  # ``-m`` puts the working directory first on the path
        env_serve["PYTHONPATH"] = str(source)
    serve_args = [sys.executable, "-m", "dispatcher.cli", "serve"]
    if profile := os.environ.get("BENCH_PROFILE"):  # a cProfile of the service, to this file
        serve_args[1:1] = ["-m", "cProfile", "-o", profile]
    elif profile := os.environ.get("BENCH_PROFILE_CPU"):  # CPU time, not waits, to this file
        serve_args[1:2] = ["-m", "bench._cpuprofile", profile]
    with contextlib.ExitStack() as children:
        children.enter_context(_child(sim_args, env, data_dir / "simulator.log"))
        if split:
            engine_env = env_serve | {"SMARTD_HTTP_PORT": str(engine_port)}
            children.enter_context(_child(serve_args, engine_env, data_dir / "engine.log", source))
            env_serve = env_serve | {"SMARTD_ENGINE_ENABLED": "false"}
        children.enter_context(_child(serve_args, env_serve, data_dir / "serve.log", source))
        if split:
            await wait_ready(f"http://127.0.0.1:{engine_port}", "/readyz")
        await wait_ready(base, "/readyz")
        yield base


async def measure(
    url: str,
    data_dir: Path,
    *,
    rate: int = 1000,
    seconds: float = 60.0,
    tps: int = 300,
    members: int = 20_000,
    alone_seconds: float = 5.0,
    with_campaign: bool = True,
    split: bool = False,
) -> LoadFigures:
    """Run the whole measurement against the (migrated) database at ``url``."""
    recipients = int(tps * (alone_seconds + seconds + WARM_UP_SECONDS + 15))
    token = await _seed(url, members, recipients)
    pool = await create_pool(url, min_size=1, max_size=2)
    try:
        async with serving(url, data_dir, tps=tps, split=split) as base:
            targets = [str(FIRST_RECIPIENT + i) for i in range(recipients)]
            half = recipients // 3
            alone = await _add_campaign(pool, "alone", targets[:half])
            await asyncio.sleep(1.0)  # let it reach its pace before measuring
            alone_rate = await _rate_over(pool, alone, alone_seconds)
            await pool.execute("UPDATE campaigns SET state = 'paused' WHERE id = $1", alone)
            loaded = await _add_campaign(pool, "loaded", targets[half:] if with_campaign else [])
            # Warm-up at the same rate, not counted: the client's and the service's TCP
            # connections, the pool's connections and prepared statements.
            await ussd_load(base, token, FIRST_MEMBER, members, rate, WARM_UP_SECONDS, tag="W")
            rate_task = asyncio.create_task(_rate_over(pool, loaded, seconds))
            latencies, errors, elapsed = await ussd_load(
                base, token, FIRST_MEMBER, members, rate, seconds
            )
            loaded_rate = await rate_task
    finally:
        await pool.close()
    n = len(latencies)
    p50, p99, top = percentiles_ms(latencies)
    return LoadFigures(
        rate=rate,
        seconds=round(elapsed, 2),
        requests=n,
        errors=errors,
        served_per_s=round(n / elapsed, 1),
        p50_ms=round(p50, 1),
        p99_ms=round(p99, 1),
        max_ms=round(top, 1),
        campaign_alone_per_s=round(alone_rate, 1),
        campaign_loaded_per_s=round(loaded_rate, 1),
    )


def _service_pids(data_dir: Path, pg_root: Path) -> tuple[list[int], list[int]]:
    """(the ``smartd serve`` processes started for ``data_dir``, the processes of the
    embedded PostgreSQL under ``pg_root``: its postmaster and every backend and worker)."""
    serve = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "serve" in cmdline and any("dispatcher.cli" in part for part in cmdline):
            with contextlib.suppress(psutil.Error):
                if str(data_dir) in proc.environ().get("SMARTD_DATA_DIR", ""):
                    serve.append(proc.info["pid"])
    postmaster = int((pg_root / "pgdata" / "postmaster.pid").read_text().split()[0])
    server = psutil.Process(postmaster)
    return serve, [postmaster, *(child.pid for child in server.children(recursive=True))]


#: pg_stat_statements over the measured requests: what each statement costs a request.
STATEMENTS = r"""
SELECT calls, total_exec_time, rows,
       regexp_replace(substr(query, 1, 160), '\s+', ' ', 'g') AS query
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query NOT ILIKE '%pg_stat_statements%'
ORDER BY calls DESC, total_exec_time DESC
"""


@dataclass(frozen=True)
class Variant:
    """What one ``--cpu`` round runs: a label, serve's event loop, and the source tree serve
    runs (None: this one)."""

    label: str
    event_loop: str
    source: Path | None = None


@dataclass(frozen=True)
class Cost:
    serve_ms: float
    postgres_ms: float
    per_s: float
    #: this process's: the load generator's aiohttp client
    client_ms: float
    #: (calls a request, exec ms a request, statement) per statement, with ``--stats``
    statements: list[tuple[float, float, str]]


async def cost_per_request(
    url: str,
    data_dir: Path,
    pg_root: Path,
    *,
    event_loop: str,
    source: Path | None = None,
    requests: int = 3000,
    workers: int = 8,
    members: int = 20_000,
    stats: bool = False,
) -> Cost:
    """CPU a USSD request costs, the figure a shared host disturbs least: ``requests``
    closed-loop requests of the gateway's mix (no campaign) after a warm-up; the ``/proc`` CPU
    time of the serve process and of every PostgreSQL process over them. ``stats``: the
    statements PostgreSQL ran over them (pg_stat_statements, which must be loaded)."""
    token = await _seed(url, members, 0)
    loop_env = {"SMARTD_EVENT_LOOP": event_loop}
    statements: list[tuple[float, float, str]] = []
    async with serving(url, data_dir, tps=100, extra_env=loop_env, source=source) as base:
        await ussd_capacity(base, token, FIRST_MEMBER, members, workers=workers, requests=500)
        serve, backends = _service_pids(data_dir, pg_root)
        conn = await asyncpg.connect(url) if stats else None
        try:
            if conn is not None:
                await conn.execute("SELECT pg_stat_statements_reset()")
            me = [os.getpid()]
            before = cpu_seconds(serve), cpu_seconds(backends), cpu_seconds(me)
            rate, errors = await ussd_capacity(
                base, token, FIRST_MEMBER, members, workers=workers, requests=requests
            )
            after = cpu_seconds(serve), cpu_seconds(backends), cpu_seconds(me)
            if conn is not None:
                for row in await conn.fetch(STATEMENTS):
                    calls, ms = row["calls"] / requests, row["total_exec_time"] / requests
                    statements.append((calls, ms, row["query"]))
        finally:
            if conn is not None:
                await conn.close()
    if errors:
        raise RuntimeError(f"{errors} of {requests} requests failed")
    return Cost(
        (after[0] - before[0]) * 1000 / requests,
        (after[1] - before[1]) * 1000 / requests,
        rate,
        (after[2] - before[2]) * 1000 / requests,
        statements,
    )


def _variants(args: argparse.Namespace) -> list[Variant]:
    loops = args.loop or (["uvloop"] if args.before else ["asyncio", "uvloop"])
    if args.before is None:
        return [Variant(loop, loop) for loop in loops]
    before = Path(args.before).resolve()
    variants = []
    for loop in loops:
        suffix = f" {loop}" if len(loops) > 1 else ""
        variants += [Variant("before" + suffix, loop, before), Variant("after" + suffix, loop)]
    return variants


async def _cpu_main(args: argparse.Namespace) -> int:
    """``--cpu``: CPU per request, once per variant in turn (asyncio and uvloop; or with
    ``--before DIR`` that tree's code and this one's) for ``--runs`` rounds, so all are
    measured under the same load of the host."""
    from dispatcher.db import recreate_database
    from dispatcher.embedded import EmbeddedPostgres

    variants = _variants(args)
    figures: dict[str, list[Cost]] = {v.label: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        os.chmod(tmp, 0o711)
        server = EmbeddedPostgres(Path(tmp))
        admin = await asyncio.to_thread(server.start)
        if args.stats:
            server.psql_command("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
            await asyncio.to_thread(server.stop)
            admin = await asyncio.to_thread(server.start)
        try:
            for n in range(1, args.runs + 1):
                for v in variants:
                    url = await recreate_database(admin, "bench_load")
                    if args.stats:
                        conn = await asyncpg.connect(url)
                        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                        await conn.close()
                    run_dir = Path(tmp) / f"run{n}-{v.label.replace(' ', '-')}"
                    run_dir.mkdir()
                    f = await cost_per_request(
                        url,
                        run_dir,
                        Path(tmp),
                        event_loop=v.event_loop,
                        source=v.source,
                        requests=args.requests,
                        stats=args.stats,
                    )
                    figures[v.label].append(f)
                    print(
                        f"round {n} {v.label:8}: serve {f.serve_ms:.2f} ms, PostgreSQL "
                        f"{f.postgres_ms:.2f} ms, load generator {f.client_ms:.2f} ms of CPU a "
                        f"request; {f.per_s:,.0f} req/s closed loop (8 clients); load average "
                        f"{os.getloadavg()[0]:.1f}"
                    )
                    for calls, ms, query in f.statements[:12]:
                        print(f"    {calls:5.2f} calls {ms * 1000:6.1f} µs exec a request: {query}")
        finally:
            await asyncio.to_thread(server.stop)
    print(f"median [min-max] of {args.runs} round(s), {args.requests} requests each:")
    for label, runs in figures.items():
        cells = []
        for name, values in (
            ("serve ms", [r.serve_ms for r in runs]),
            ("PostgreSQL ms", [r.postgres_ms for r in runs]),
            ("load generator ms", [r.client_ms for r in runs]),
            ("req/s", [r.per_s for r in runs]),
        ):
            cells.append(
                f"{name} {statistics.median(values):,.2f} [{min(values):,.2f}-{max(values):,.2f}]"
            )
        print(f"  {label:8} " + "; ".join(cells))
    print(
        "the goal's budget: 1,000 req/s on 2 cores shared with PostgreSQL, the engine, the "
        "simulator and the load generator leaves well under 1 ms of serve CPU a request"
    )
    return 0


async def _main(args: argparse.Namespace) -> int:
    from dispatcher.db import recreate_database
    from dispatcher.embedded import EmbeddedPostgres

    if args.cpu:
        return await _cpu_main(args)

    runs: list[LoadFigures] = []
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        os.chmod(tmp, 0o711)  # as root the embedded server runs as its own user
        server = EmbeddedPostgres(Path(tmp))
        admin = await asyncio.to_thread(server.start)
        try:
            for n in range(1, args.runs + 1):
                url = await recreate_database(admin, "bench_load")  # each run from nothing
                run_dir = Path(tmp) / f"run{n}"
                run_dir.mkdir()
                f = await measure(
                    url,
                    run_dir,
                    rate=args.rate,
                    seconds=args.seconds,
                    tps=args.tps,
                    with_campaign=not args.no_campaign,
                    split=args.split,
                )
                runs.append(f)
                print(
                    f"run {n}: {f.served_per_s:,.0f}/s served of {f.rate}/s; p50 {f.p50_ms} ms, "
                    f"p99 {f.p99_ms} ms, max {f.max_ms} ms; errors {f.errors}; campaign "
                    f"{f.campaign_alone_per_s:,.0f} msg/s alone, "
                    f"{f.campaign_loaded_per_s:,.0f} under load"
                )
                print(json.dumps(asdict(f)))
        finally:
            await asyncio.to_thread(server.stop)
    print(f"median [min-max] of {len(runs)} run(s), {args.rate}/s offered for {args.seconds} s:")
    for name, unit in _REPORTED:
        values = [float(getattr(f, name)) for f in runs]
        print(
            f"  {name:22} {statistics.median(values):>10,.1f} {unit:6} "
            f"[{min(values):,.1f} - {max(values):,.1f}]"
        )
    print(
        "goals: p99 <= 100 ms, no errors; the campaign under load at least half its rate "
        f"alone (the baseline, measured in the same run; SMSC grant {args.tps}/s)"
    )
    return 0


#: The figures summarised over runs, with their units.
_REPORTED = (
    ("served_per_s", "req/s"),
    ("p50_ms", "ms"),
    ("p99_ms", "ms"),
    ("max_ms", "ms"),
    ("errors", ""),
    ("campaign_alone_per_s", "msg/s"),
    ("campaign_loaded_per_s", "msg/s"),
)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench load")
    parser.add_argument("--rate", type=int, default=1000, help="USSD requests per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--tps", type=int, default=300, help="the campaign's SMSC grant")
    parser.add_argument("--runs", type=int, default=3, help="report the median and spread")
    parser.add_argument(
        "--no-campaign", action="store_true", help="USSD alone (after the campaign baseline)"
    )
    parser.add_argument(
        "--split",
        action="store_true",
        help="the engine and the HTTP API in two serve processes (the deployment for load)",
    )
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="CPU per request of serve and PostgreSQL (no campaign): asyncio against uvloop, "
        "or --before DIR against this tree",
    )
    parser.add_argument("--requests", type=int, default=3000, help="with --cpu: per round")
    parser.add_argument(
        "--before",
        metavar="DIR",
        help="with --cpu: alternate rounds of serve running the source tree DIR (e.g. "
        "`git archive` of the code before a change) and this one, on uvloop",
    )
    parser.add_argument(
        "--loop",
        action="append",
        choices=["asyncio", "uvloop"],
        help="with --cpu: the event loop(s) to measure (default asyncio and uvloop; "
        "uvloop with --before)",
    )
    parser.add_argument(
        "--stats",
        action="store_true",
        help="with --cpu: the statements PostgreSQL ran a request (pg_stat_statements)",
    )
    return asyncio.run(_main(parser.parse_args(argv)))
