"""The SMSC misbehaving under a running `smartd serve`: connection drops, unbinds, hard
throttling, receipts twice and before their responses, the SMSC down at start-up; and a
stalled SMSC under the in-process rig (invariants 2 and 4 checked after each)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from dispatcher.db import Database
from dispatcher.engine.engine import EngineConfig
from dispatcher.kernel.clock import ManualClock
from dispatcher.settings import Settings
from smpp.stats import SessionState
from tests.dispatch_helpers import dispatch_rig
from tests.factories import campaign, members
from tests.reliability.procs import (
    RecordingSimulator,
    check_invariants,
    free_port,
    http_status,
    poll,
    receipts_applied,
    receipts_quiet,
    serve,
    simulator,
    submits_reached,
    wait_campaigns_done,
)

WINDOW = 32
RECIPIENTS = [f"7704{n:07d}" for n in range(800)]
pytestmark = pytest.mark.slow


async def _drops(sim: RecordingSimulator, proc: object) -> int:
    """Abort the TCP connection at three points of the campaign."""
    for at in (150, 350, 550):
        await poll(submits_reached(sim, at), within=30, what=f"{at} submits")
        sim.drop_all()
    return 3


async def _unbinds(sim: RecordingSimulator, proc: object) -> int:
    """The SMSC unbinds twice mid-campaign (a planned restart on its side)."""
    for at in (200, 500):
        await poll(submits_reached(sim, at), within=30, what=f"{at} submits")
        await sim.unbind_all()
    return 2  # an unbind closes with submits possibly unanswered: one window each


FAULTS = {
    "drop": ({"receipt_delay": 0.01}, _drops),
    "unbind": ({"receipt_delay": 0.01}, _unbinds),
    "throttle": ({"tps_limit": 300.0, "max_window": 4}, None),
    "receipts-twice-and-early": (
        {"duplicate_receipts": True, "receipt_before_response": True, "response_latency": 0.01},
        None,
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_smsc_fault_mid_campaign(
    database: Database, database_url: str, tmp_path: Path, fault: str
) -> None:
    """Each SMSC fault mid-campaign: the campaign completes, nothing is sent twice, unknowns
    stay within a window per broken connection, acknowledged receipts are all stored."""
    options, inject = FAULTS[fault]
    await members(database, RECIPIENTS)
    await campaign(database, RECIPIENTS, texts={"ru": f"Offer {fault}"})
    sim = simulator(seed=3, **options)
    port = await sim.start()
    proc = serve(database_url, port, tmp_path, window=WINDOW)
    try:
        breaks = await inject(sim, proc) if inject else 0
        await wait_campaigns_done(database.pool, proc, within=60)
        await poll(receipts_quiet(sim), within=30, what="receipts", procs=(proc,))
        applied = receipts_applied(database.pool)
        await poll(applied, within=30, what="receipts applied", procs=(proc,))
    finally:
        assert await proc.stop() == 0
        await sim.stop()
    fig = await check_invariants(database.pool, sim, crashes=breaks, window=WINDOW)
    assert fig.recipients >= len(RECIPIENTS) - fig.unknown
    # Every copy of a repeat is stored (the applier settles it without effect), so distinct
    # receipts are counted; a few more stored than acknowledged: their deliver_sm_resp was
    # lost with the connection (the SMSC would send them again).
    receipts = await database.pool.fetchval(
        "SELECT count(DISTINCT (smsc, message_id, state)) FROM receipts"
    )
    assert fig.receipts_acked <= receipts <= fig.submits
    print(f"\nSMSC {fault}: {fig}")


async def test_smsc_down_at_start_up(database: Database, database_url: str, tmp_path: Path) -> None:
    """serve starts with the SMSC down: /healthz and /readyz 200 (USSD and the API are still
    served), /readyz/engine 503; once the SMSC listens, it binds, /readyz/engine turns 200
    and the campaign runs."""
    await members(database, RECIPIENTS[:200])
    await campaign(database, RECIPIENTS[:200], texts={"ru": "Offer late SMSC"})
    port = free_port()
    proc = serve(database_url, port, tmp_path, window=WINDOW)
    sim = simulator(seed=4)
    try:

        async def up() -> bool:
            return await http_status(proc.http + "/healthz") == 200

        await poll(up, within=30, what="HTTP", procs=(proc,))
        assert await http_status(proc.http + "/readyz") == 200
        assert await http_status(proc.http + "/readyz/engine") == 503
        await sim.start(port=port)

        async def ready() -> bool:
            return await http_status(proc.http + "/readyz/engine") == 200

        await poll(ready, within=30, what="readiness after the SMSC came up", procs=(proc,))
        await wait_campaigns_done(database.pool, proc, within=30)
    finally:
        assert await proc.stop() == 0
        await sim.stop()
    fig = await check_invariants(database.pool, sim, crashes=0, window=WINDOW)
    assert fig.recipients == 200


async def test_stalled_smsc_leaves_one_window_unknown_never_resent(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """An SMSC that stops answering (half-open): the window in flight becomes unknown, the
    session reconnects when the SMSC answers again, the rest is sent, nothing twice."""
    numbers = RECIPIENTS[:300]
    await members(database, numbers)
    campaign_id = await campaign(database, numbers, texts={"ru": "Offer stall"})
    async with dispatch_rig(
        database,
        settings,
        clock,
        session_options={"enquire_link_interval": 0.2, "enquire_link_timeout": 0.3},
        engine=EngineConfig(window=16, chunk=16),
    ) as rig:
        rig.sim.options.stall = True
        first = asyncio.create_task(rig.drain())
        await rig.sim.wait_for(lambda: len(rig.sim.submits()) >= 16)
        await rig.sim.wait_for(lambda: rig.session.state is not SessionState.BOUND)
        rig.sim.options.stall = False
        async with asyncio.timeout(30):
            await first
            for _ in range(20):
                await rig.session.wait_bound()
                await rig.drain()
                states = await rig.states(campaign_id)
                if "queued" not in states:
                    break
                clock.advance(timedelta(minutes=31))
        states = await rig.states(campaign_id)
        fig = await check_invariants(database.pool, rig.sim, crashes=1, window=16)
    assert set(states) == {"submitted", "unknown"}, states
    assert 0 < fig.unknown <= 16
    print(f"\nstalled SMSC: {fig}")


async def test_serve_stops_cleanly_while_the_smsc_is_down(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    """SIGTERM with the SMSC down and a campaign waiting: serve exits promptly, and nothing
    is left in flight or unknown (nothing was written to any socket)."""
    await members(database, RECIPIENTS[:100])
    await campaign(database, RECIPIENTS[:100], texts={"ru": "Offer SMSC down"})
    proc = serve(database_url, free_port(), tmp_path, window=WINDOW)

    async def up() -> bool:
        return await http_status(proc.http + "/healthz") == 200

    await poll(up, within=30, what="HTTP", procs=(proc,))
    await asyncio.sleep(2)  # the engine's first passes with no SMSC (another process)
    started = asyncio.get_running_loop().time()
    assert await proc.stop() == 0
    took = asyncio.get_running_loop().time() - started
    states = dict(
        await database.pool.fetch("SELECT state::text, count(*) FROM deliveries GROUP BY 1")
    )
    assert took < 15, f"serve took {took:.1f} s to stop"
    assert states == {"queued": 100}, states


async def test_crash_while_the_smsc_is_down_leaves_nothing_unknown(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    """kill -9 while the SMSC is down, then restart with it up: with no bind the engine holds
    no rows (nothing claimed, nothing in flight), so no delivery ends unknown; all are sent
    once."""
    await members(database, RECIPIENTS[:100])
    await campaign(database, RECIPIENTS[:100], texts={"ru": "Offer crash while down"})
    port = free_port()
    proc = serve(database_url, port, tmp_path, window=WINDOW)

    async def not_ready() -> bool:  # serving, and knows it has no bind
        return await http_status(proc.http + "/readyz/engine") == 503

    try:
        await poll(
            not_ready, within=30, what="/readyz/engine 503 with the SMSC down", procs=(proc,)
        )
        held = await database.pool.fetchval(
            "SELECT count(*) FROM deliveries WHERE state IN ('claimed', 'in_flight')"
        )
        assert held == 0, "rows claimed while no bind exists"
    finally:
        proc.kill()
    sim = simulator(seed=6)
    await sim.start(port=port)
    proc = serve(database_url, port, tmp_path, window=WINDOW)
    try:
        await wait_campaigns_done(database.pool, proc, within=30)
    finally:
        assert await proc.stop() == 0
        await sim.stop()
    fig = await check_invariants(database.pool, sim, crashes=1, window=WINDOW)
    assert fig.unknown == 0 and fig.recipients == 100
