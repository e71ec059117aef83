"""kill -9 of `smartd serve` in the middle of a campaign, then restart (issue 5, invariant 2).

Real processes, real PostgreSQL, real SMPP: the simulator runs in this test's event loop
on 127.0.0.1; the service is a subprocess whose clock is pinned inside the send window.
"""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from dispatcher.db import Database
from tests.factories import campaign, members
from tests.reliability.procs import poll, serve, simulator, submits_reached, wait_campaigns_done

RECIPIENTS = [f"7702{n:07d}" for n in range(3000)]
WINDOW = 32


@pytest.mark.slow
async def test_kill_9_mid_campaign_never_sends_twice(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    """Three kill -9s mid-campaign and restarts: no recipient gets the campaign twice, unknowns
    stay within one window per crash, and every delivery ends final."""
    await members(database, RECIPIENTS)
    await campaign(database, RECIPIENTS)
    sim = simulator(seed=7)
    port = await sim.start()
    try:
        for crash, at in enumerate((400, 1100, 1800), 1):
            proc = serve(database_url, port, tmp_path, window=WINDOW)
            await poll(submits_reached(sim, at), within=60, what=f"{at} submits", procs=(proc,))
            proc.kill()
            sim.drop_all()
            unknown = await database.pool.fetchval(
                "SELECT count(*) FROM deliveries WHERE state IN ('in_flight', 'unknown')"
            )
            assert unknown <= crash * WINDOW
        proc = serve(database_url, port, tmp_path, window=WINDOW)
        try:
            await wait_campaigns_done(database.pool, proc, within=90)
        finally:
            assert await proc.stop() == 0
    finally:
        await sim.stop()
    sent = collections.Counter(sm.destination_addr for _, sm in sim.submits())
    assert max(sent.values()) == 1, "a recipient got the campaign twice"
    states = dict(
        await database.pool.fetch("SELECT state::text, count(*) FROM deliveries GROUP BY 1")
    )
    assert set(states) <= {"submitted", "delivered", "unknown"}
    assert states.get("unknown", 0) <= 3 * WINDOW
    assert sum(states.values()) == len(RECIPIENTS)
    assert len(sent) == len(RECIPIENTS) - states.get("unknown", 0) + _unknown_that_reached(
        sent, await database.pool.fetch("SELECT msisdn FROM deliveries WHERE state = 'unknown'")
    )


def _unknown_that_reached(sent: collections.Counter[str], unknown: list[object]) -> int:
    """Unknown deliveries whose submit did reach the SMSC before the crash."""
    return sum(1 for row in unknown if sent[row["msisdn"]])  # type: ignore[index]
