"""Part (b) of ``python -m bench program``: ``POST /gateway/ussd`` at a fixed arrival rate.

The service runs as ``smartd serve`` in a child process (the real ``create_app``, its own
pool, scheduler off) on the benchmark's database; this process only generates load, so the
two do not share an event loop. Requests are sent at their scheduled times whatever the
answers do (open loop), and latency counts from the scheduled time, so a stall shows up in
the percentiles instead of slowing the load down.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench._net import free_port
from bench._ussd import percentiles_ms, ussd_load, wait_ready
from dispatcher.db import create_pool
from dispatcher.kernel.states import Role
from dispatcher.tokens import TokenRepository

FIRST_MSISDN = 77010000000
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
            await wait_ready(base)
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


async def _load(base: str, token: str, subscribers: int, rate: int, seconds: float) -> Report:
    latencies, errors, elapsed = await ussd_load(
        base, token, FIRST_MSISDN, subscribers, rate, seconds, tag=f"b{seconds}-"
    )
    p50, p99, top = percentiles_ms(latencies)
    return Report(len(latencies), errors, elapsed, p50, p99, top)
