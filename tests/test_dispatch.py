"""The dispatch engine end to end: real PostgreSQL, real SMPP over 127.0.0.1 (issue 5)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.db import Database
from dispatcher.engine.engine import EngineConfig
from dispatcher.engine.repository import Claim, Claimed, MessageOutcome
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Channel
from dispatcher.program.membership import Membership
from dispatcher.settings import Settings
from smpp.ratelimit import ThrottlePolicy
from tests.bonus_helpers import NoBonus
from tests.dispatch_helpers import add_campaign, add_members, dispatch_rig

NUMBERS = [f"7701{n:07d}" for n in range(1, 21)]


async def test_campaign_sent_and_delivered(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """Members get the campaign once each; receipts turn submitted into delivered."""
    await add_members(database, NUMBERS)
    campaign = await add_campaign(database, NUMBERS)
    async with dispatch_rig(database, settings, clock) as rig:
        assert await rig.drain() == len(NUMBERS)
        assert await rig.states(campaign) == {"submitted": len(NUMBERS)}
        destinations = sorted(sm.destination_addr for _, sm in rig.sim.submits())
        assert destinations == NUMBERS
        await rig.receipts_settled(len(NUMBERS))
        assert await rig.states(campaign) == {"delivered": len(NUMBERS)}


async def test_validity_ends_when_window_closes(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """R8: every submit's validity_period ends at 21:00 Astana time that day."""
    await add_members(database, NUMBERS[:3])
    await add_campaign(database, NUMBERS[:3])
    async with dispatch_rig(database, settings, clock) as rig:
        await rig.drain()
        validities = {sm.validity_period for _, sm in rig.sim.submits()}
        assert validities == {"261123210000020+"}


async def test_nothing_claimed_outside_window(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """R8: at 21:00 nothing is claimed; at 10:00 the next day it goes."""
    await add_members(database, NUMBERS[:3])
    campaign = await add_campaign(database, NUMBERS[:3])
    clock.set(datetime(2026, 11, 23, 16, 0, tzinfo=UTC))  # 21:00 Astana
    async with dispatch_rig(database, settings, clock) as rig:
        assert await rig.drain() == 0
        assert rig.sim.submits() == []
        clock.set(datetime(2026, 11, 24, 5, 0, tzinfo=UTC))  # 10:00 Astana
        assert await rig.drain() == 3
        assert await rig.states(campaign) == {"submitted": 3}


async def test_ineligible_are_suppressed_with_reason(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """Non-members, 1204-blocked and blocked numbers are suppressed with their reason."""
    member, outsider, dnc, blocked, unknown = NUMBERS[:5]
    await add_members(database, [member, dnc, blocked])
    await add_members(database, [outsider], member=False)
    await database.pool.execute(
        "INSERT INTO dnc_blocks (msisdn, blocked_at, channel) VALUES ($1, now(), 'sms')", dnc
    )
    await database.pool.execute(
        "UPDATE subscribers SET status = 'blocked' WHERE msisdn = $1", blocked
    )
    campaign = await add_campaign(database, [member, outsider, dnc, blocked, unknown])
    async with dispatch_rig(database, settings, clock) as rig:
        await rig.drain()
        assert await rig.states(campaign) == {
            "submitted": 1,
            "not_member": 2,
            "dnc": 1,
            "blocked": 1,
        }
        assert [sm.destination_addr for _, sm in rig.sim.submits()] == [member]


async def test_info_cap_across_campaigns(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """R7 / invariant 1: the 11th info message of a month is suppressed as cap_info."""
    number = NUMBERS[0]
    await add_members(database, [number])
    campaigns = [await add_campaign(database, [number]) for _ in range(11)]
    async with dispatch_rig(database, settings, clock) as rig:
        await rig.drain()
        states = [await rig.states(c) for c in campaigns]
        assert states.count({"submitted": 1}) == 10
        assert states.count({"cap_info": 1}) == 1
        assert len(rig.sim.submits()) == 10


async def test_leave_after_claim_stops_the_message(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """R2: a leave committed after a batch was claimed keeps those messages from the SMSC."""
    await add_members(database, NUMBERS[:3])
    campaign = await add_campaign(database, NUMBERS[:3])
    async with dispatch_rig(database, settings, clock) as rig:
        claimed = (await rig.dispatcher.claim_once()).claimed
        assert len(claimed) == 3
        membership = Membership(settings, NoBonus())
        async with database.pool.acquire() as conn, conn.transaction():
            await membership.leave(conn, NUMBERS[0], Channel.SMS, {}, clock.now(), "stop")
        await rig.dispatcher.send(claimed)
        assert sorted(sm.destination_addr for _, sm in rig.sim.submits()) == NUMBERS[1:3]
        assert await rig.states(campaign) == {"submitted": 2, "opted_out": 1}


async def test_leave_committing_while_the_mark_waits_stops_the_message(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """R2, the race: a leave that holds its subscriber's lock when a chunk is marked makes the
    mark wait, and the suppression it then commits wins, although the marking statement
    began before it (issue 16: the mark is one statement, its snapshot older than the
    leave's commit; the row's guard is checked again on its newest version)."""
    await add_members(database, NUMBERS[:3])
    campaign = await add_campaign(database, NUMBERS[:3])
    async with dispatch_rig(database, settings, clock) as rig:
        claimed = (await rig.dispatcher.claim_once()).claimed
        membership = Membership(settings, NoBonus())
        async with database.pool.acquire() as conn:
            leave = conn.transaction()
            await leave.start()
            # the leave's first step: its subscriber's row, for update (suppressing comes later)
            await conn.execute("SELECT FROM subscribers WHERE msisdn = $1 FOR UPDATE", NUMBERS[0])
            mark = asyncio.ensure_future(rig.dispatcher.repo.mark_in_flight(claimed, clock.now()))
            while not await database.pool.fetchval(
                "SELECT EXISTS (SELECT FROM pg_locks WHERE NOT granted)"
            ):
                assert not mark.done(), "the mark did not wait for the leave"
                await asyncio.sleep(0.01)
            await membership.leave(conn, NUMBERS[0], Channel.SMS, {}, clock.now(), "stop")
            await leave.commit()
        marked = await mark
        left = next(m for m in claimed if m.msisdn == NUMBERS[0])
        assert left.key not in marked and len(marked) == 2
        assert await rig.states(campaign) == {"in_flight": 2, "opted_out": 1}


async def test_two_engines_never_pass_the_cap(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """Invariant 1: two engines claiming at once send at most 10 info messages a month."""
    number = NUMBERS[0]
    await add_members(database, [number])
    for _ in range(14):
        await add_campaign(database, [number])
    async with (
        dispatch_rig(database, settings, clock) as one,
        dispatch_rig(database, settings, clock) as two,
    ):
        for _ in range(8):
            await asyncio.gather(one.dispatcher.run_once(), two.dispatcher.run_once())
        sent = len(one.sim.submits()) + len(two.sim.submits())
        assert sent == 10
    counter = await database.pool.fetchval("SELECT info_count FROM contact_counters")
    suppressed = await database.pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE suppressed = 'cap_info'"
    )
    assert (counter, suppressed) == (10, 4)


async def test_dead_node_rows_recovered(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """After a crash: claimed rows go back to the queue, in-flight rows become unknown and are
    never resent, and they keep counting against the cap (invariant 2)."""
    await add_members(database, NUMBERS[:2])
    campaign = await add_campaign(database, NUMBERS[:2])
    await database.pool.execute(
        "UPDATE deliveries SET state = CASE WHEN msisdn = $2 THEN 'claimed' ELSE 'in_flight' END"
        "::delivery_state, claimed_by = 'ghost:1', cap_month = date '2026-11-01' "
        "WHERE campaign_id = $1",
        campaign,
        NUMBERS[0],
    )
    async with dispatch_rig(database, settings, clock) as rig:
        assert await rig.states(campaign) == {"queued": 1, "unknown": 1}
        assert [sm.destination_addr for _, sm in rig.sim.submits()] == []
        await rig.drain()
        assert [sm.destination_addr for _, sm in rig.sim.submits()] == [NUMBERS[0]]
        assert await rig.states(campaign) == {"submitted": 1, "unknown": 1}


async def test_live_node_rows_left_alone(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """Recovery leaves the rows of a node that is still alive (it holds its lock)."""
    await add_members(database, NUMBERS[:1])
    campaign = await add_campaign(database, NUMBERS[:1])
    async with dispatch_rig(database, settings, clock) as one:
        await database.pool.execute(
            "UPDATE deliveries SET state = 'claimed', claimed_by = $2 WHERE campaign_id = $1",
            campaign,
            one.dispatcher.node,
        )
        async with dispatch_rig(database, settings, clock) as two:
            assert await two.dispatcher.recover() == {"requeued": 0, "unknown": 0}
        assert await one.states(campaign) == {"claimed": 1}


async def test_throttling_retries_without_duplicates(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """Throttled submits are retried soon, using no attempt; each recipient is accepted
    exactly once."""
    await add_members(database, NUMBERS)
    campaign = await add_campaign(database, NUMBERS)
    async with dispatch_rig(
        database,
        settings,
        clock,
        sim_options={"max_window": 3, "response_latency": 0.005},
        session_options={"throttle": ThrottlePolicy(pause=0.001, max_pause=0.002)},
        engine=EngineConfig(window=10, chunk=10),
    ) as rig:
        for _ in range(30):
            await rig.drain()
            if await rig.states(campaign) == {"submitted": len(NUMBERS)}:
                break
            clock.advance(timedelta(minutes=31))
        assert await rig.states(campaign) == {"submitted": len(NUMBERS)}
        accepted = await database.pool.fetch("SELECT msisdn FROM submits ORDER BY msisdn")
        assert [r["msisdn"] for r in accepted] == NUMBERS
        assert len(rig.sim.submits()) > len(NUMBERS), "some submits were throttled"
        # Throttling is not the message's fault: only the try that was accepted counts.
        attempts = await database.pool.fetch("SELECT DISTINCT attempts FROM deliveries")
        assert [r["attempts"] for r in attempts] == [1]


async def test_disconnect_makes_unknown_never_resent(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """A dropped connection with submits outstanding: those are unknown, bounded by the
    window, and never submitted again."""
    await add_members(database, NUMBERS)
    campaign = await add_campaign(database, NUMBERS)
    async with dispatch_rig(
        database,
        settings,
        clock,
        sim_options={"disconnect_after": 6},
        engine=EngineConfig(window=8, chunk=8),
    ) as rig:
        for _ in range(5):
            await rig.drain()
        states = await rig.states(campaign)
        assert 0 < states.get("unknown", 0) <= 8
        assert sum(states.values()) == len(NUMBERS)
        assert set(states) <= {"submitted", "unknown", "queued"}
        unknown = await database.pool.fetch("SELECT msisdn FROM deliveries WHERE state = 'unknown'")
        resubmitted = [sm.destination_addr for _, sm in rig.sim.submits()]
        for row in unknown:
            assert resubmitted.count(row["msisdn"]) <= 1


async def test_receipts_before_responses_and_duplicates(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """A receipt that beats its submit_sm_resp is held and matched later; a repeated receipt
    changes nothing."""
    await add_members(database, NUMBERS[:5])
    campaign = await add_campaign(database, NUMBERS[:5])
    async with dispatch_rig(
        database,
        settings,
        clock,
        sim_options={"receipt_before_response": True, "duplicate_receipts": True},
    ) as rig:
        await rig.drain()
        await rig.receipts_settled(5)
        await rig.apply_receipts()
        assert await rig.states(campaign) == {"delivered": 5}
        parts_done = await database.pool.fetchval("SELECT sum(parts_done) FROM deliveries")
        assert parts_done == 5


async def test_multipart_delivered_only_when_all_parts_are(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """A long message is delivered when every part's receipt says so."""
    await add_members(database, NUMBERS[:1])
    campaign = await add_campaign(database, NUMBERS[:1], text="Предложение партнёра " * 10)
    async with dispatch_rig(database, settings, clock) as rig:
        await rig.drain()
        parts = len(rig.sim.submits())
        assert parts == 4
        await rig.receipts_settled(parts)
        assert await rig.states(campaign) == {"delivered": 1}
        assert await database.pool.fetchval("SELECT parts_done FROM deliveries") == 4


@pytest.mark.parametrize("table", ["deliveries", "service_messages"])
async def test_one_part_receipt_does_not_finish_the_message(
    database: Database, settings: Settings, clock: ManualClock, table: str
) -> None:
    """Invariant 7, in both tables alike: one part's receipt leaves a 2-part message submitted
    with no finish time; the last part's makes it delivered and finished."""
    number = NUMBERS[0]
    text = "Предложение партнёра " * 4  # 84 UCS-2 characters: two parts
    await add_members(database, [number])
    if table == "deliveries":
        await add_campaign(database, [number], text=text)
    else:
        await database.pool.execute(
            "INSERT INTO service_messages (msisdn, kind, body, in_window) "
            "VALUES ($1, 'bonus_notice', $2, true)",
            number,
            text,
        )
    query = f"SELECT state::text, parts_done, finished_at FROM {table}"
    async with dispatch_rig(database, settings, clock) as rig:
        await rig.drain()
        assert len(rig.sim.submits()) == 2
        async with asyncio.timeout(10):
            await rig.sink.receipts.wait_committed(2)
        now = clock.now()
        applied = await rig.dispatcher.repo.apply_receipts(1, now, now, now.replace(year=2000))
        assert (applied.seen, applied.matched, applied.messages) == (1, 1, 1)
        assert tuple(await database.pool.fetchrow(query)) == ("submitted", 1, None)
        await rig.apply_receipts()
        assert tuple(await database.pool.fetchrow(query)) == ("delivered", 2, now)


async def test_permanent_failure_releases_cap_slot(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """A permanently refused message fails and gives its cap slot back."""
    await add_members(database, NUMBERS[:1])
    campaign = await add_campaign(database, NUMBERS[:1])
    async with dispatch_rig(
        database,
        settings,
        clock,
        sim_options={"submit_status": 0x0000000B},  # RINVDSTADR
    ) as rig:
        await rig.drain()
        assert await rig.states(campaign) == {"failed": 1}
    assert await database.pool.fetchval("SELECT info_count FROM contact_counters") == 0


async def test_claimed_rows_follow_campaign_pause_and_cancel(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """Claimed rows of a campaign paused since the claim go back to the queue; of a cancelled
    one, they are suppressed and their cap slots released."""
    await add_members(database, NUMBERS[:4])
    paused = await add_campaign(database, NUMBERS[:2])
    cancelled = await add_campaign(database, NUMBERS[2:4])
    async with dispatch_rig(database, settings, clock) as rig:
        first = (await rig.dispatcher.claim_once()).claimed
        second = (await rig.dispatcher.claim_once()).claimed
        await database.pool.execute("UPDATE campaigns SET state = 'paused' WHERE id = $1", paused)
        await database.pool.execute(
            "UPDATE campaigns SET state = 'cancelled' WHERE id = $1", cancelled
        )
        await rig.dispatcher.send([*first, *second])
        assert rig.sim.submits() == []
        assert await rig.states(paused) == {"queued": 2}
        assert await rig.states(cancelled) == {"cancelled": 2}
    held = await database.pool.fetchval("SELECT sum(info_count) FROM contact_counters")
    assert held == 2, "the paused rows keep their slots for when the campaign resumes"


async def test_leave_after_claim_releases_cap_slot(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """A claimed message suppressed by a leave gives its cap slot back."""
    await add_members(database, NUMBERS[:1])
    await add_campaign(database, NUMBERS[:1])
    async with dispatch_rig(database, settings, clock) as rig:
        claimed = (await rig.dispatcher.claim_once()).claimed
        assert await database.pool.fetchval("SELECT info_count FROM contact_counters") == 1
        membership = Membership(settings, NoBonus())
        async with database.pool.acquire() as conn, conn.transaction():
            await membership.leave(conn, NUMBERS[0], Channel.SMS, {}, clock.now(), "stop")
        await rig.dispatcher.send(claimed)
    assert await database.pool.fetchval("SELECT info_count FROM contact_counters") == 0


async def test_lost_node_connection_renews_node_and_recovers(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """When the node's lock connection dies (database restart), the engine takes a new node id
    and treats the old one as dead: its claimed rows requeued, in-flight ones unknown."""
    await add_members(database, NUMBERS[:2])
    campaign = await add_campaign(database, NUMBERS[:2])
    async with dispatch_rig(database, settings, clock) as rig:
        old = rig.dispatcher.node
        await database.pool.execute(
            "UPDATE deliveries SET claimed_by = $2, state = CASE WHEN msisdn = $3 "
            "THEN 'claimed' ELSE 'in_flight' END::delivery_state, cap_month = date '2026-11-01' "
            "WHERE campaign_id = $1",
            campaign,
            old,
            NUMBERS[0],
        )
        # The database drops the node's lock connection, as a restart would.
        await database.pool.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
            "AND classid = 1935762244 AND objid = hashtext($1)::oid AND granted",
            old,
        )
        async with asyncio.timeout(5):
            # sleep(0) yields to the loop until the client has seen the socket close
            while rig.dispatcher.holds_node:  # noqa: ASYNC110
                await asyncio.sleep(0)
        await rig.dispatcher.ensure_node()
        assert rig.dispatcher.node != old
        assert await rig.states(campaign) == {"queued": 1, "unknown": 1}
        await rig.drain()
        assert [sm.destination_addr for _, sm in rig.sim.submits()] == [NUMBERS[0]]


async def test_window_edge_at_20_59_50(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """R8: at 20:59:50 a batch goes with validity ending 21:00; from 21:00 nothing is claimed;
    the rest goes at 10:00 the next day."""
    await add_members(database, NUMBERS[:6])
    campaign = await add_campaign(database, NUMBERS[:6])
    clock.set(datetime(2026, 11, 23, 15, 59, 50, tzinfo=UTC))  # 20:59:50 Astana
    async with dispatch_rig(
        database, settings, clock, engine=EngineConfig(window=8, batch_size=2)
    ) as rig:
        assert await rig.dispatcher.run_once() == 2
        assert {sm.validity_period for _, sm in rig.sim.submits()} == {"261123210000020+"}
        clock.set(datetime(2026, 11, 23, 16, 0, 0, tzinfo=UTC))  # 21:00:00
        assert await rig.drain() == 0
        assert await rig.states(campaign) == {"submitted": 2, "queued": 4}
        clock.set(datetime(2026, 11, 24, 5, 0, 0, tzinfo=UTC))  # 10:00 next day
        assert await rig.drain() == 4
        late = {sm.validity_period for _, sm in rig.sim.submits()[2:]}
        assert late == {"261124210000020+"}
        assert await rig.states(campaign) == {"submitted": 6}


async def test_run_loop_claims_ahead_and_stops(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """The production loop (next batch claimed while one is sent) sends every recipient once
    and stops cleanly on its event."""
    numbers = [f"7705{n:07d}" for n in range(300)]
    await add_members(database, numbers)
    campaign = await add_campaign(database, numbers)
    async with dispatch_rig(
        database, settings, clock, engine=EngineConfig(window=16, chunk=4, batch_size=50)
    ) as rig:
        stop = asyncio.Event()
        task = asyncio.create_task(rig.dispatcher.run(stop))
        async with asyncio.timeout(30):
            await rig.sim.wait_for(lambda: len(rig.sim.submits()) >= len(numbers))
        stop.set()
        rig.dispatcher.wake()
        await task
        sent = [sm.destination_addr for _, sm in rig.sim.submits()]
        assert sorted(sent) == numbers
        assert await rig.states(campaign) == {"submitted": len(numbers)}


async def test_run_loop_writes_the_next_batch_while_the_last_is_recorded(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """Issue 16, item 5: between two batches the pipe to the SMSC must not drain. The loop
    used to wait until a batch's last chunk was recorded before marking the next batch's
    first, so each batch boundary left the pacer idle for a response, a record, the next
    encoding and a mark (tokens lost beyond the burst: ~6 % of a replica's share on a loaded
    host). Now the next batch takes the window's free slots at once: with every record held,
    the second batch is written all the same."""
    numbers = [f"7706{n:07d}" for n in range(8)]
    await add_members(database, numbers)
    campaign = await add_campaign(database, numbers)
    async with dispatch_rig(
        database, settings, clock, engine=EngineConfig(window=8, chunk=2, batch_size=4)
    ) as rig:
        dispatcher = rig.dispatcher
        release = asyncio.Event()
        real_record = dispatcher._record
        recorded: list[int] = []

        async def held_record(outcomes: Sequence[MessageOutcome]) -> None:
            await release.wait()
            await real_record(outcomes)
            recorded.append(len(outcomes))

        dispatcher._record = held_record  # type: ignore[method-assign]
        stop = asyncio.Event()
        task = asyncio.create_task(dispatcher.run(stop))
        async with asyncio.timeout(10):
            await rig.sim.wait_for(lambda: len(rig.sim.submits()) >= len(numbers))
        assert recorded == []  # both batches written, neither recorded yet
        release.set()
        stop.set()
        dispatcher.wake()
        await task
        assert sum(recorded) == len(numbers)
        assert await rig.states(campaign) == {"submitted": len(numbers)}


async def test_run_loop_survives_an_unexpected_error(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """A pass that fails with an unexpected error retires the node and the loop goes on."""
    await add_members(database, NUMBERS[:3])
    campaign = await add_campaign(database, NUMBERS[:3])
    async with dispatch_rig(database, settings, clock) as rig:
        dispatcher = rig.dispatcher
        real_claim = dispatcher.claim_once
        failures = [RuntimeError("a bug in one pass")]

        async def flaky_claim() -> Claim[Claimed]:
            if failures:
                raise failures.pop()
            return await real_claim()

        dispatcher.claim_once = flaky_claim  # type: ignore[method-assign]
        first_node = dispatcher.node
        stop = asyncio.Event()
        task = asyncio.create_task(dispatcher.run(stop))
        async with asyncio.timeout(15):
            await rig.sim.wait_for(lambda: len(rig.sim.submits()) >= 3)
        stop.set()
        dispatcher.wake()
        await task
        assert dispatcher.node != first_node
        assert await rig.states(campaign) == {"submitted": 3}
