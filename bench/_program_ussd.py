"""Part (b) of ``python -m bench program``: ``POST /gateway/ussd`` at a fixed arrival rate.

The service runs as ``smartd serve`` in a child process (the real ``create_app``, its own
pool, scheduler off) on the benchmark's database; this process only generates load, so the
two do not share an event loop. Requests are sent at their scheduled times whatever the
answers do (open loop), and latency counts from the scheduled time, so a stall shows up in
the percentiles instead of slowing the load down.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench._net import free_port
from dispatcher.db import create_pool
from dispatcher.states import Role
from dispatcher.tokens import TokenRepository

FIRST_MSISDN = 77010000000
#: The mix: the menu, a join (members are told they already are; every 20th number is not a
#: member and joins, with its grant), and the bonus balance.
MIX = [("*555#", 0.4), ("*555*1#", 0.2), ("*111*3#", 0.4)]
WARM_UP_SECONDS = 2.0


@dataclass(frozen=True)
class Report:
    sent: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float


async def run(url: str, subscribers: int, rate: int, seconds: float) -> Report:
    """Start the service, load it, print and return the figures; the service is stopped."""
    port = free_port()
    token = await _gateway_token(url)
    with tempfile.TemporaryDirectory(prefix="bench-ussd-") as tmp:
        proc = await _start_service(url, port, Path(tmp))
        try:
            base = f"http://127.0.0.1:{port}"
            await _wait_ready(base)
            # Warm-up at the same rate, not counted: pool connections, prepared statements.
            await _load(base, token, subscribers, rate, WARM_UP_SECONDS)
            report = await _load(base, token, subscribers, rate, seconds)
        finally:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    print(
        f"\n(b) USSD: {report.sent:,} requests at {rate}/s offered, "
        f"{report.sent / report.seconds:,.0f}/s served; p50 {report.p50_ms:.1f} ms, "
        f"p99 {report.p99_ms:.1f} ms, max {report.max_ms:.1f} ms; errors {report.errors} "
        "(goal p99 <= 50 ms, no errors)"
    )
    return report


async def _gateway_token(url: str) -> str:
    pool = await create_pool(url, min_size=1, max_size=1)
    try:
        token, _ = await TokenRepository(pool).create("bench-gateway", Role.GATEWAY)
        return token
    finally:
        await pool.close()


async def _start_service(url: str, port: int, data_dir: Path) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "SMARTD_DATABASE_URL": url,
        "SMARTD_HTTP_HOST": "127.0.0.1",
        "SMARTD_HTTP_PORT": str(port),
        "SMARTD_SCHEDULER_ENABLED": "false",
        "SMARTD_ENGINE_ENABLED": "false",  # no SMSC here: HTTP alone is measured
        "SMARTD_LOG_LEVEL": "warning",
        "SMARTD_DB_POOL_MAX": "20",
        "SMARTD_DATA_DIR": str(data_dir),
    }
    code = "import sys; from dispatcher.cli import main; sys.exit(main(['serve']))"
    return await asyncio.create_subprocess_exec(sys.executable, "-c", code, env=env)


async def _wait_ready(base: str) -> None:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(base + "/healthz") as resp:
                    if resp.status == 200:
                        return
            if time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            await asyncio.sleep(0.2)


async def _load(base: str, token: str, subscribers: int, rate: int, seconds: float) -> Report:
    total = int(rate * seconds)
    rng = random.Random(seconds)
    inputs = rng.choices([m for m, _ in MIX], [w for _, w in MIX], k=total)
    numbers = [str(FIRST_MSISDN + rng.randrange(subscribers)) for _ in range(total)]
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=256)
    latencies: list[float] = []
    trace: list[tuple[float, str, float]] = []
    errors = 0
    async with aiohttp.ClientSession(base, headers=headers, connector=connector) as session:

        async def one(i: int, due: float) -> None:
            nonlocal errors
            body = {"msisdn": numbers[i], "session_id": f"b{seconds}-{i}", "input": inputs[i]}
            try:
                async with session.post("/gateway/ussd", json=body) as resp:
                    data = await resp.json()
                    if resp.status != 200 or "text" not in data:
                        errors += 1
            except (aiohttp.ClientError, ValueError):
                errors += 1
            latencies.append(time.perf_counter() - due)
            if os.environ.get("BENCH_TRACE"):
                trace.append((due - started, inputs[i], time.perf_counter() - due))

        started = time.perf_counter()
        tasks = []
        for i in range(total):
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    latencies.sort()
    if trace:
        worst = sorted(trace, key=lambda t: -t[2])[:15]
        print(
            "slowest (offset s, input, latency ms):",
            [(round(o, 2), k, round(v * 1000)) for o, k, v in sorted(worst)],
        )
    return Report(
        sent=total,
        errors=errors,
        seconds=elapsed,
        p50_ms=latencies[len(latencies) // 2] * 1000,
        p99_ms=latencies[int(len(latencies) * 0.99)] * 1000,
        max_ms=latencies[-1] * 1000,
    )
