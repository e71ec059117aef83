"""PostgreSQL stopped and started under running `smartd serve` processes, mid-campaign:
the service recovers by itself and loses nothing (invariants 2 and 4)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from dispatcher.db import Database, create_pool
from dispatcher.migrate import migrate
from tests.factories import campaign, members
from tests.reliability.pgserver import restartable_postgres
from tests.reliability.procs import (
    RecordingSimulator,
    check_invariants,
    http_status,
    poll,
    receipts_applied,
    receipts_quiet,
    scan_serve_logs,
    serve,
    simulator,
    submits_reached,
    wait_campaigns_done,
)

WINDOW = 32
RECIPIENTS = [f"7705{n:07d}" for n in range(2000)]
pytestmark = pytest.mark.slow


async def _mo_while_running(sim: RecordingSimulator, stop: asyncio.Event) -> int:
    """MO from distinct numbers throughout (refused ones are not acknowledged, so owed
    nothing here; the simulator stores them and sends them again only after a rebind)."""
    n = 0
    while not stop.is_set():
        n += 1
        try:
            await sim.inject_mo(f"7706{n:07d}", "5555", f"hi {n}")
        except (Exception, asyncio.CancelledError):
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
        await asyncio.sleep(0.02)  # pacing the load generator, not waiting for work
    return n


@pytest.mark.parametrize(("mode", "processes"), [("fast", 1), ("immediate", 2)])
async def test_postgres_restart_mid_campaign(tmp_path: Path, mode: str, processes: int) -> None:
    """PostgreSQL stopped for 3 s and started again under one or two serve processes:
    /readyz says 503 meanwhile, then both carry on by themselves; the campaign completes,
    nothing is sent twice, every acknowledged receipt and MO is stored."""
    with restartable_postgres() as pg:
        conn = await asyncpg.connect(pg.url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        pool = await create_pool(pg.url, min_size=1, max_size=4)
        database = Database(pool=pool, url=pg.url)
        await members(database, RECIPIENTS)
        await campaign(database, RECIPIENTS, texts={"ru": f"Offer pg {mode}"})
        await pool.close()
        sim = simulator(seed=5, receipt_delay=0.01)
        port = await sim.start()
        stop = asyncio.Event()
        mo = asyncio.create_task(_mo_while_running(sim, stop))
        procs = [serve(pg.url, port, tmp_path, window=WINDOW) for _ in range(processes)]
        try:
            await poll(submits_reached(sim, 600), within=60, what="600 submits", procs=tuple(procs))
            await asyncio.to_thread(pg.stop, mode)
            down_at = len(sim.submits())

            async def not_ready() -> bool:
                return await http_status(procs[0].http + "/readyz") == 503

            await poll(not_ready, within=10, what="/readyz 503", procs=tuple(procs))
            await asyncio.sleep(3)  # the outage itself
            await asyncio.to_thread(pg.start)

            async def ready() -> bool:
                return all([await http_status(p.http + "/readyz") == 200 for p in procs])

            await poll(ready, within=30, what="/readyz 200 again", procs=tuple(procs))
            pool = await create_pool(pg.url, min_size=1, max_size=4)
            await wait_campaigns_done(pool, *procs, within=60)
            stop.set()
            await mo
            await poll(receipts_quiet(sim), within=30, what="receipts", procs=tuple(procs))
            await poll(
                receipts_applied(pool), within=30, what="receipts applied", procs=tuple(procs)
            )
        finally:
            stop.set()
            await mo
            codes = [await p.stop() for p in procs]
            await sim.stop()
        try:
            fig = await check_invariants(pool, sim, crashes=2, window=WINDOW)
            locks = await pool.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
        finally:
            await pool.close()
    assert codes == [0] * processes
    assert locks == 0
    assert fig.recipients >= len(RECIPIENTS) - fig.unknown
    assert fig.mo_acked > 0 and fig.receipts_acked > 0
    scan_serve_logs(tmp_path, RECIPIENTS)
    print(f"\nPostgreSQL {mode} restart, {processes} serve at {down_at} submits: {fig}")
