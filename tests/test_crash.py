"""kill -9 of `smartd serve` in the middle of a campaign, then restart (issue 5, invariant 2).

Real processes, real PostgreSQL, real SMPP: the simulator runs in this test's event loop
on 127.0.0.1; the service is a subprocess whose clock is pinned inside the send window.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import subprocess
import sys

import pytest

from dispatcher.db import Database
from smpp.simulator import SimulatorOptions, SmscSimulator
from tests.dispatch_helpers import add_campaign, add_members

RECIPIENTS = [f"7702{n:07d}" for n in range(3000)]
WINDOW = 32


def _serve(database_url: str, port: int, tmp: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTD_")}
    env.update(
        {
            "SMARTD_DATABASE_URL": database_url,
            "SMARTD_HTTP_PORT": "0",
            "SMARTD_SMPP_PORT": str(port),
            "SMARTD_SMPP_SYSTEM_ID": "smartd",
            "SMARTD_SMPP_PASSWORD": "pw",
            "SMARTD_SMPP_WINDOW": str(WINDOW),
            "SMARTD_SMPP_TPS": "1500",
            "SMARTD_CLOCK_START": "2026-11-23T12:00:00+00:00",
            "SMARTD_SCHEDULER_ENABLED": "false",
            "SMARTD_DATA_DIR": tmp,
        }
    )
    return subprocess.Popen(
        [sys.executable, "-m", "dispatcher.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _wait_submits(sim: SmscSimulator, count: int, proc: subprocess.Popen[bytes]) -> None:
    async with asyncio.timeout(60):
        while len(sim.submits()) < count:
            assert proc.poll() is None, "serve exited"
            # A new process may take more than the simulator's own 5 s to start on a busy
            # host: wait one pulse at a time, within the 60 s above.
            with contextlib.suppress(TimeoutError):
                await sim.wait_for(lambda: len(sim.submits()) >= count)


@pytest.mark.slow
async def test_kill_9_mid_campaign_never_sends_twice(
    database: Database, database_url: str, tmp_path: object
) -> None:
    """Three kill -9s mid-campaign and restarts: no recipient gets the campaign twice, unknowns
    stay within one window per crash, and every delivery ends final."""
    await add_members(database, RECIPIENTS)
    campaign = await add_campaign(database, RECIPIENTS)
    sim = SmscSimulator(SimulatorOptions(credentials={"smartd": "pw"}, seed=7))
    port = await sim.start()
    try:
        for crash, at in enumerate((400, 1100, 1800), 1):
            proc = _serve(database_url, port, str(tmp_path))
            await _wait_submits(sim, at, proc)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            sim.drop_all()
            unknown = await database.pool.fetchval(
                "SELECT count(*) FROM deliveries WHERE state IN ('in_flight', 'unknown')"
            )
            assert unknown <= crash * WINDOW
        proc = _serve(database_url, port, str(tmp_path))
        try:
            async with asyncio.timeout(90):
                while await database.pool.fetchval(
                    "SELECT count(*) FROM deliveries WHERE campaign_id = $1 "
                    "AND state IN ('queued', 'claimed', 'in_flight')",
                    campaign,
                ):
                    await sim.wait_for(lambda: True)
                    await asyncio.sleep(0.05)  # polling a separate process's progress
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
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
