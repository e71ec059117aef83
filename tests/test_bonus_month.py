"""The monthly grant (R3, R12; invariant 5): members only, set-based, once per month."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import asyncpg
import pytest

from dispatcher.db import Database, create_pool
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import ServiceKind
from dispatcher.program.bonus import BonusLedger
from dispatcher.program.charging import LedgerCharging
from dispatcher.program.membership import Membership
from dispatcher.settings import Settings
from tests.bonus_helpers import NUMBERS, grants_of, join, leave, utc
from tests.factories import subscribers

DEC_1_0005 = utc(2026, 11, 30, 19, 5)  # 00:05 on 1 December, Astana time (UTC+5)


async def _members(database: Database, membership: Membership, clock: ManualClock) -> list[str]:
    """Five members (one kk, one en, one outgoing-blocked) and four numbers that are not."""
    pool = database.pool
    for msisdn in NUMBERS[:9]:
        await join(pool, membership, msisdn, clock.now())
    await subscribers(database, [NUMBERS[1]], language="kk")
    await subscribers(database, [NUMBERS[2]], language="en")
    await subscribers(database, [NUMBERS[4]], status="outgoing_blocked")
    await subscribers(database, [NUMBERS[5]], status="blocked")
    await subscribers(database, [NUMBERS[6]], status="recycled")
    await leave(pool, membership, NUMBERS[7], clock.now())
    await subscribers(database, [NUMBERS[9]])  # never joined
    return NUMBERS[:5]


async def test_monthly_grant_reaches_members_only_with_notices(
    database: Database, ledger: BonusLedger, membership: Membership, clock: ManualClock
) -> None:
    """R3/R12: every member (outgoing-blocked too) gets the month's 500 units and a notice in
    the window in their language; left, fully blocked, recycled and non-members get nothing."""
    members = await _members(database, membership, clock)
    members.append(NUMBERS[8])  # a member with no language set: the default (ru)
    assert await ledger.grant_month(DEC_1_0005) == len(members)
    granted = await database.pool.fetch(
        "SELECT msisdn, id, units, state, deadline_at FROM bonus_grants WHERE month = '2026-12-01'"
    )
    assert sorted(r["msisdn"] for r in granted) == sorted(members)
    assert {(r["units"], r["state"]) for r in granted} == {(500, "pending")}
    await _claim_notices(database, DEC_1_0005)  # the engine queues them from the grants
    notices = await database.pool.fetch(
        "SELECT msisdn, body, in_window, dedupe_key FROM service_messages WHERE kind = $1",
        ServiceKind.BONUS_NOTICE,
    )
    ids = {r["msisdn"]: r["id"] for r in granted}
    assert {n["msisdn"]: n["dedupe_key"] for n in notices} == {
        m: f"bonus_notice:{ids[m]}" for m in members
    }
    assert all(n["in_window"] for n in notices)
    bodies = {n["msisdn"]: n["body"] for n in notices}
    assert bodies[NUMBERS[2]] == "Your 500 SMART bonus units are ready: dial *555*00#."
    assert bodies[NUMBERS[1]].startswith("SMART: 500 бонусыңыз дайын")
    # R4, seed 000: an outgoing-blocked member is told to top up before activating
    assert bodies[NUMBERS[4]] == (
        "Ваши 500 бонусов SMART начислены. Номер не активен: пополните баланс и наберите "
        "*555*00# до 31.12.2026 00:05."
    )
    assert bodies[NUMBERS[0]].startswith("Ваши 500 бонусов")


async def test_monthly_grant_is_idempotent_and_skips_this_months_joiners(
    database: Database, ledger: BonusLedger, membership: Membership, clock: ManualClock
) -> None:
    """R3: a member who joined this month keeps the join grant; a re-run grants nobody twice."""
    await join(database.pool, membership, NUMBERS[0], clock.now())
    assert await ledger.grant_month(clock.now()) == 0  # November: granted at join
    assert await ledger.month_granted(clock.now())
    assert await ledger.grant_month(DEC_1_0005) == 1
    assert await ledger.grant_month(DEC_1_0005) == 0  # recorded in job_runs: skipped
    assert await ledger.grant_month(DEC_1_0005, force=True) == 0  # run again: ON CONFLICT
    assert len(await grants_of(database.pool, NUMBERS[0])) == 2
    await _claim_notices(database, DEC_1_0005)
    count = await database.pool.fetchval(
        "SELECT count(*) FROM service_messages WHERE kind = $1", ServiceKind.BONUS_NOTICE
    )
    assert count == 1
    run = await database.pool.fetchrow("SELECT * FROM job_runs WHERE period = '2026-12'")
    assert run["job"] == "bonus_grant_month" and run["finished_at"] is not None


async def test_two_processes_granting_at_once_grant_once(
    database: Database,
    database_url: str,
    settings: Settings,
    membership: Membership,
    clock: ManualClock,
) -> None:
    """R3/invariant 5: the monthly job started by two replicas at once grants each member once."""
    for msisdn in NUMBERS[:50]:
        await join(database.pool, membership, msisdn, clock.now())
    other = await create_pool(database_url, min_size=1, max_size=2)
    try:
        ledgers = [
            BonusLedger(pool, settings, clock, LedgerCharging()) for pool in (database.pool, other)
        ]
        for force in (False, True):
            runs = await asyncio.gather(
                *(lg.grant_month(DEC_1_0005, force=force) for lg in ledgers)
            )
            assert sum(runs) == (50 if not force else 0)
    finally:
        await other.close()
    per_member = await database.pool.fetch(
        "SELECT msisdn, count(*) AS n FROM bonus_grants WHERE month = '2026-12-01' GROUP BY 1"
    )
    assert len(per_member) == 50 and {r["n"] for r in per_member} == {1}
    await _claim_notices(database, DEC_1_0005)
    notices = await database.pool.fetchval(
        "SELECT count(*) FROM service_messages WHERE kind = $1", ServiceKind.BONUS_NOTICE
    )
    assert notices == 50


async def test_monthly_grant_in_parallel_slices_grants_every_member_once(
    database: Database, settings: Settings, membership: Membership, clock: ManualClock
) -> None:
    """R3: split over parallel msisdn slices, the monthly grant still reaches each member once."""
    for msisdn in NUMBERS[:40]:
        await join(database.pool, membership, msisdn, clock.now())
    sliced = BonusLedger(
        database.pool,
        dataclasses.replace(settings, bonus_grant_workers=3),
        clock,
        LedgerCharging(),
    )
    assert await sliced.grant_month(DEC_1_0005) == 40
    run = await database.pool.fetchval("SELECT result::text FROM job_runs WHERE period = '2026-12'")
    assert '"slices": 3' in run
    assert await sliced.grant_month(DEC_1_0005, force=True) == 0
    months = await database.pool.fetchval(
        "SELECT count(DISTINCT msisdn) FROM bonus_grants WHERE month = '2026-12-01'"
    )
    assert months == 40


async def test_joins_during_the_monthly_grant_get_one_grant_each(
    database: Database, ledger: BonusLedger, membership: Membership, clock: ManualClock
) -> None:
    """R3: members joining while the monthly grant runs get exactly one grant for the month
    (joins wait for the job's lock; its anti-join then sees them)."""
    for msisdn in NUMBERS[:30]:
        await join(database.pool, membership, msisdn, clock.now())
    joins = [join(database.pool, membership, m, DEC_1_0005) for m in NUMBERS[30:45]]
    granted, *_ = await asyncio.gather(ledger.grant_month(DEC_1_0005), *joins)
    per_member = await database.pool.fetch(
        "SELECT msisdn, count(*) AS n FROM bonus_grants WHERE month = '2026-12-01' GROUP BY 1"
    )
    assert len(per_member) == 45 and {r["n"] for r in per_member} == {1}
    assert 30 <= granted <= 45


async def _claim_notices(database: Database, now, limit: int = 100) -> list:
    """What the engine's service claim takes now, send window open (the notices wait for it)."""
    from dispatcher.engine.repository import DispatchRepository

    claim = await DispatchRepository(database.pool, "node-1", "smsc").claim_service(
        limit, now, True
    )
    return list(claim.claimed)


async def test_monthly_grant_writes_the_grant_row_only_and_the_notice_goes_once(
    database: Database, ledger: BonusLedger, membership: Membership, clock: ManualClock
) -> None:
    """Issue 16: the monthly grant writes one row per member (the grant); its notice is a
    property of that row, queued by the engine's service claim when it can be sent — once,
    in the window — and not to a member who left (R2) before it went."""
    for msisdn in NUMBERS[:6]:
        await join(database.pool, membership, msisdn, clock.now())
    assert await ledger.grant_month(DEC_1_0005) == 6
    written = await database.pool.fetchval(
        "SELECT count(*) FROM service_messages WHERE kind = $1", ServiceKind.BONUS_NOTICE
    )
    assert written == 0
    run = await database.pool.fetchval("SELECT result FROM job_runs WHERE period = '2026-12'")
    assert run["notices"] == 6
    await leave(database.pool, membership, NUMBERS[5], DEC_1_0005)
    await _claim_window_closed(database, DEC_1_0005)  # the join and leave confirmations
    written = await database.pool.fetchval(
        "SELECT count(*) FROM service_messages WHERE kind = $1", ServiceKind.BONUS_NOTICE
    )
    assert written == 0  # window closed: the notices wait (R8)
    first = await _claim_notices(database, DEC_1_0005, limit=4)
    rest = await _claim_notices(database, DEC_1_0005)
    again = await _claim_notices(database, DEC_1_0005)
    sent = [m.msisdn for m in first + rest]
    assert len(first) == 4 and sorted(sent) == sorted(NUMBERS[:5]) and again == []
    keys = await database.pool.fetch(
        "SELECT dedupe_key FROM service_messages WHERE kind = $1", ServiceKind.BONUS_NOTICE
    )
    assert len(keys) == 5


async def _claim_window_closed(database: Database, now) -> list:
    from dispatcher.engine.repository import DispatchRepository

    claim = await DispatchRepository(database.pool, "node-1", "smsc").claim_service(100, now, False)
    return list(claim.claimed)


async def test_a_join_grant_between_two_runs_keeps_its_own_notice_only(
    database: Database, ledger: BonusLedger, membership: Membership, clock: ManualClock
) -> None:
    """The month's notices are walked by grant id between the runs' first and last grant: a
    member who joins between a run and a forced re-run (the join's reply tells them of their
    grant) is sent no notice by the walk, and the re-run's grant gets its own."""
    from tests.factories import members

    await join(database.pool, membership, NUMBERS[0], clock.now())
    assert await ledger.grant_month(DEC_1_0005) == 1
    await join(database.pool, membership, NUMBERS[1], DEC_1_0005)  # December's join grant
    await members(database, [NUMBERS[2]])  # a member the first run did not see
    assert await ledger.grant_month(DEC_1_0005, force=True) == 1
    await _claim_notices(database, DEC_1_0005)
    await _claim_notices(database, DEC_1_0005)
    rows = await database.pool.fetch(
        "SELECT msisdn, count(*) AS n FROM service_messages WHERE kind = $1 GROUP BY 1",
        ServiceKind.BONUS_NOTICE,
    )
    assert {r["msisdn"]: r["n"] for r in rows} == {NUMBERS[0]: 1, NUMBERS[2]: 1}


async def test_a_leave_while_notices_are_queued_suppresses_the_notice(
    database: Database, ledger: BonusLedger, membership: Membership, clock: ManualClock
) -> None:
    """R2, invariant 3: a leave that forfeits the grant while the engine queues its notice
    (not yet committed) waits for it, so its suppression finds the notice: nothing goes to
    the number after the leave committed."""
    from dispatcher.engine.repository import DispatchSQL

    await join(database.pool, membership, NUMBERS[0], clock.now())
    assert await ledger.grant_month(DEC_1_0005) == 1
    async with database.pool.acquire() as engine:
        queueing = engine.transaction()
        await queueing.start()
        assert await engine.fetchval(DispatchSQL.queue_bonus_notices, 10, True) == 1
        leaving = asyncio.create_task(leave(database.pool, membership, NUMBERS[0], DEC_1_0005))
        while not leaving.done():  # until the leave is done or waits for the queueing
            waiting = await database.pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if waiting:
                break
            await asyncio.sleep(0)
        await queueing.commit()
    await leaving
    states = await database.pool.fetch(
        "SELECT state FROM service_messages WHERE kind = $1 AND msisdn = $2",
        ServiceKind.BONUS_NOTICE,
        NUMBERS[0],
    )
    assert [r["state"] for r in states] == ["suppressed"]


async def test_notices_of_a_failed_runs_committed_slice_go_after_the_catch_up(
    database: Database,
    settings: Settings,
    membership: Membership,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run cut into slices whose record fails keeps the grants of the slices that
    committed; the catch-up run grants the rest, and every grant's notice is queued once —
    the month's notice cursor starts before the first run's grants, not the catch-up's."""
    from dispatcher.program.bonus import BonusSQL

    for msisdn in NUMBERS[:20]:
        await join(database.pool, membership, msisdn, clock.now())
    sliced = BonusLedger(
        database.pool,
        dataclasses.replace(settings, bonus_grant_workers=2),
        clock,
        LedgerCharging(),
    )
    with monkeypatch.context() as patch:
        failing = (
            "SELECT 1 / 0 FROM (VALUES ($1::text, $2::text, $3::timestamptz, $4::timestamptz,"
            " $5::jsonb, $6::bigint, $7::bigint)) AS v"
        )
        patch.setattr(BonusSQL, "record_job", failing)
        with pytest.raises(asyncpg.PostgresError):
            await sliced.grant_month(DEC_1_0005)
    committed = await database.pool.fetchval(
        "SELECT count(*) FROM bonus_grants WHERE month = '2026-12-01'"
    )
    assert 0 < committed < 20  # slice 1 committed, slice 0 rolled back with the record
    assert await sliced.grant_month(DEC_1_0005) == 20 - committed
    await _claim_notices(database, DEC_1_0005)
    rows = await database.pool.fetch(
        "SELECT msisdn, count(*) AS n FROM service_messages WHERE kind = $1 GROUP BY 1",
        ServiceKind.BONUS_NOTICE,
    )
    assert {r["msisdn"]: r["n"] for r in rows} == dict.fromkeys(NUMBERS[:20], 1)


async def test_both_sweep_paths_cancel_at_the_same_second(
    database: Database, ledger: BonusLedger, membership: Membership
) -> None:
    """R4 at its boundary: the monthly job's grants (walked by cancel_cursor, migration 0026)
    and a join grant (found by bonus_grants_pending) with the same deadline stay pending a
    second before it and are both cancelled at that very second — the two paths agree."""
    from tests.factories import members

    pool = database.pool
    await members(database, NUMBERS[:2])
    assert await ledger.grant_month(DEC_1_0005) == 2
    await join(pool, membership, NUMBERS[5], DEC_1_0005)
    deadlines = await pool.fetch(
        "SELECT DISTINCT deadline_at, month_notice FROM bonus_grants WHERE state = 'pending'"
    )
    assert len({r["deadline_at"] for r in deadlines}) == 1, deadlines
    assert {r["month_notice"] for r in deadlines} == {True, False}  # both paths in play
    deadline = deadlines[0]["deadline_at"]
    assert (await ledger.sweep(deadline - timedelta(seconds=1))).cancelled == 0
    assert (await ledger.sweep(deadline)).cancelled == 3
    assert (await ledger.sweep(deadline)).cancelled == 0  # the same sweep twice: nothing more
    assert await pool.fetchval("SELECT count(*) FROM bonus_grants WHERE state = 'pending'") == 0


async def test_the_sweep_walks_the_months_grants_with_a_cursor_of_its_own(
    database: Database,
    ledger: BonusLedger,
    membership: Membership,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """R4, issue 16 (migration 0026): the monthly job's grants get no entry in
    bonus_grants_pending; the sweep cancels them past their deadline by walking the month's
    id range with its own cursor (job_runs.cancel_cursor) — a batch at a time, passing over
    activated, forfeited and join grants, stopping at the first grant still within its
    deadline (a later run's) — and a join grant is still cancelled through the index."""
    from dispatcher.program import bonus
    from tests.factories import members

    monkeypatch.setattr(bonus, "SWEEP_BATCH", 2)  # several batches, a stop inside one
    pool = database.pool
    predicate = await pool.fetchval(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'bonus_grants_pending'"
    )
    assert "NOT month_notice" in predicate
    await members(database, NUMBERS[:5])
    assert await ledger.grant_month(DEC_1_0005) == 5
    first_deadline = await pool.fetchval("SELECT max(deadline_at) FROM bonus_grants")
    day = timedelta(days=1)
    assert (await ledger.activate(NUMBERS[0], DEC_1_0005 + day)).grant_id is not None
    await leave(pool, membership, NUMBERS[1], DEC_1_0005 + day)  # R2: forfeited
    await join(pool, membership, NUMBERS[5], DEC_1_0005 + day)  # a join grant, in the range
    await members(database, NUMBERS[6:8])
    assert await ledger.grant_month(DEC_1_0005 + 2 * day, force=True) == 2
    second_run = await pool.fetchval(
        "SELECT min(id) FROM bonus_grants WHERE msisdn = ANY($1)", NUMBERS[6:8]
    )

    async def cursor() -> int:
        row = await pool.fetchrow("SELECT * FROM job_runs WHERE period = '2026-12'")
        assert row["notices_upto"] == second_run + 1
        return int(row["cancel_cursor"])

    first_pending = await pool.fetchval(
        "SELECT min(id) FROM bonus_grants WHERE month_notice AND state = 'pending'"
    )
    swept = await ledger.sweep(first_deadline - timedelta(minutes=1))
    assert swept.cancelled == 0 and swept.expired == 1  # NUMBERS[0]'s 7 days ran out
    assert await cursor() == first_pending - 1  # past the activated and the forfeited one
    assert (await ledger.sweep(first_deadline + timedelta(minutes=1))).cancelled == 3
    assert await cursor() == second_run - 1  # waits at the second run's first grant
    assert (await ledger.sweep(first_deadline + 3 * day)).cancelled == 3  # join + 2nd run
    assert await cursor() == second_run + 1
    assert (await ledger.sweep(first_deadline + 4 * day)).cancelled == 0
    states = await pool.fetch(
        "SELECT msisdn, state FROM bonus_grants WHERE month = '2026-12-01' ORDER BY msisdn"
    )
    assert [r["state"] for r in states] == [
        "expired",
        "forfeited",
        "cancelled",
        "cancelled",
        "cancelled",
        "cancelled",
        "cancelled",
        "cancelled",
    ]
