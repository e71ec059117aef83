"""kill -9 of `smartd serve` at random points, and several serve processes on one database
(DESIGN.md invariants 1, 2 and 4; extends tests/test_crash.py)."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime
from pathlib import Path

import pytest

from dispatcher.db import Database
from tests.factories import campaign, campaign_from_spec, members
from tests.reliability.procs import (
    CLOCK_START,
    RecordingSimulator,
    Serve,
    check_invariants,
    poll,
    receipts_quiet,
    scan_serve_logs,
    serve,
    simulator,
    submits_reached,
    wait_campaigns_done,
)

WINDOW = 32
pytestmark = pytest.mark.slow


async def _inject_mo(sim: RecordingSimulator, stop: asyncio.Event, sent: list[str]) -> int:
    """MO from distinct numbers while the campaign runs; ``sent`` gets those acknowledged
    with ESME_ROK. A failed inject (no bind, the process just died, an error status) is not
    acknowledged, so nothing is owed for it yet (the SMSC sends it again: see
    :func:`_smsc_resends`)."""
    n = 0
    while not stop.is_set():
        n += 1
        text = f"hello {n}"
        try:
            if await sim.inject_mo(f"7701{n:07d}", "5555", text) == [0]:
                sent.append(text)
        except (Exception, asyncio.CancelledError):  # the connection died under the request
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
        await asyncio.sleep(0.02)  # pacing the load generator, not waiting for work
    return n


async def _smsc_resends(
    sim: RecordingSimulator, database: Database, count: int, acknowledged: list[str]
) -> None:
    """What a real SMSC does after the crashes: the simulator stores every MO it delivered
    and has no ESME_ROK for, and sends it again on the next bind (store-and-forward); it
    never sends again one it got ESME_ROK for (a second identical text is the subscriber's
    own). Some were committed by a process killed before it answered: recognised as resends
    (their node is dead), not applied twice. An inject that never reached a bind was never
    delivered: it is sent now, once. Each MO ends stored exactly once (invariant 4)."""
    await poll(lambda: _outbox_empty(sim), within=60, what="the simulator's stored MO acknowledged")
    rows = await database.pool.fetch("SELECT body FROM mo_messages WHERE body LIKE 'hello %'")
    stored_bodies = {r["body"] for r in rows} | set(acknowledged)
    for n in range(1, count + 1):
        if f"hello {n}" not in stored_bodies:
            assert await sim.inject_mo(f"7701{n:07d}", "5555", f"hello {n}") == [0]
    stored = await database.pool.fetch(
        "SELECT body, count(*) AS n FROM mo_messages WHERE body LIKE 'hello %' GROUP BY body"
    )
    assert len(stored) == count, "an MO the SMSC sent is missing"
    assert all(r["n"] == 1 for r in stored), "an MO resend was applied twice"


async def _outbox_empty(sim: RecordingSimulator) -> bool:
    return not sim.outbox.pending


@pytest.mark.parametrize("seed", [11, 23])
async def test_kill_9_at_random_points_then_restart(
    database: Database, database_url: str, tmp_path: Path, seed: int
) -> None:
    """Four kill -9s at random submit counts while receipts and MO flow: nothing twice,
    unknowns within a window per crash, acknowledged receipts and MO all stored, and the
    SMSC's resends of every MO stored once."""
    rng = random.Random(seed)
    recipients = [f"7702{n:07d}" for n in range(2000)]
    await members(database, recipients)
    await campaign(database, recipients, texts={"ru": f"Offer seed {seed}"})
    # As a real SMSC, it retries an MO refused with a temporary error (seconds later, on the
    # same bind): a restarted node answers "later" to an MO a just-killed node had claimed
    # while that node's database session is still ending (CI saw the MO wait for a rebind
    # that never came).
    sim = simulator(seed=seed, receipt_delay=0.02, redeliver_delay=1.0)
    port = await sim.start()
    stop, mo_sent = asyncio.Event(), list[str]()
    mo_task = asyncio.create_task(_inject_mo(sim, stop, mo_sent))
    crashes = 0
    try:
        points = sorted(rng.sample(range(100, 1800), 4))
        for at in points:
            proc = serve(database_url, port, tmp_path, window=WINDOW)
            await poll(
                submits_reached(sim, at),
                within=60,
                what=f"{at} submits",
                procs=(proc,),
            )
            await asyncio.sleep(rng.random() * 0.05)  # a random instant past the count
            proc.kill()
            crashes += 1
        proc = serve(database_url, port, tmp_path, window=WINDOW)
        try:
            await wait_campaigns_done(database.pool, proc)
            stop.set()
            await _smsc_resends(sim, database, await mo_task, mo_sent)
            # receipts still on their way to the last process
            await poll(
                receipts_quiet(sim),
                within=20,
                what="the last receipts",
                procs=(proc,),
            )
        finally:
            assert await proc.stop() == 0
    finally:
        stop.set()
        await mo_task
        await sim.stop()
    fig = await check_invariants(database.pool, sim, crashes=crashes, window=WINDOW)
    assert fig.recipients >= len(recipients) - fig.unknown
    assert fig.mo_acked > 0 and fig.receipts_acked > 0
    mo_numbers = [f"7701{n:07d}" for n in range(1, len(mo_sent) + 2)]
    scanned = scan_serve_logs(tmp_path, recipients + mo_numbers)
    print(f"\nkill-9 x{crashes} seed {seed}: {fig}; {scanned} log lines scanned")


async def _add_survey(database: Database, numbers: list[str], n: int) -> None:
    spec = {
        "name": f"Survey {n}",
        "kind": "survey",
        "scope": "smart",
        "survey": {
            "questions": [
                {
                    "texts": {"ru": f"Survey {n}: like it?", "kk": f"Survey {n}: ұнай ма?"},
                    "options": [{"ru": "Yes", "kk": "Иә"}, {"ru": "No", "kk": "Жоқ"}],
                }
            ],
            "thanks": {"ru": "Thanks", "kk": "Рақмет"},
        },
    }
    await campaign_from_spec(database, spec, numbers, datetime.fromisoformat(CLOCK_START))


@pytest.mark.parametrize("processes", [2, 3])
async def test_several_serve_processes_share_campaigns_and_caps(
    database: Database, database_url: str, tmp_path: Path, processes: int
) -> None:
    """2 and 3 serve processes on one database, 12 info campaigns and 3 surveys to the same
    numbers (both caps contended), one process killed mid-way and replaced: nobody gets a
    campaign twice, an 11th message or a 3rd survey."""
    numbers = [f"7703{n:07d}" for n in range(200)]
    await members(database, numbers)
    for c in range(12):
        await campaign(database, numbers, texts={"ru": f"Offer {c}"})
    for c in range(3):
        await _add_survey(database, numbers, c)
    sim = simulator(seed=processes)
    port = await sim.start()
    procs: list[Serve] = []
    try:
        procs = [serve(database_url, port, tmp_path, window=WINDOW) for _ in range(processes)]
        total = len(numbers) * 10
        await poll(
            submits_reached(sim, total // 3),
            within=60,
            what="a third of the messages",
            procs=tuple(procs),
        )
        procs[0].kill()
        procs[0] = serve(database_url, port, tmp_path, window=WINDOW)
        await wait_campaigns_done(database.pool, *procs)

        async def all_bound() -> bool:  # the replacement may still be starting when the
            return len(sim.bound) == processes  # others have finished the work

        await poll(all_bound, within=60, what="every process bound", procs=tuple(procs))
    finally:  # every process stopped before any status is judged: none left running
        statuses = [await p.stop() for p in procs if p.alive()]
        assert statuses == [0] * len(statuses)
        await sim.stop()
    fig = await check_invariants(database.pool, sim, crashes=1, window=WINDOW)
    assert fig.states.get("cap_info", 0) >= len(numbers) * 2 - fig.unknown
    assert fig.states.get("cap_survey", 0) >= len(numbers) - fig.unknown
    assert fig.survey_submits >= len(numbers) * 2 - fig.unknown  # the survey check saw them
    print(f"\n{processes} processes, one killed: {fig}")
