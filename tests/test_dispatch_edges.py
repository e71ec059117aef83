"""The outbound engine at its edges (issue 11): the minute the window closes, a part of a long
message refused for now, validity refusals, and the attempt limit. Real PostgreSQL and SMPP
over 127.0.0.1; service time is a ManualClock that the simulated SMSC moves as it takes parts.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as settings_
from hypothesis import strategies as st

from campaigns.reports import campaign_report
from campaigns.repository import CampaignRepository
from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import DeliveryState
from dispatcher.policy.submit import MAX_ATTEMPTS
from dispatcher.settings import Settings
from smpp.constants import Status
from smpp.pdu import ShortMessage, decode_short_message
from smpp.ratelimit import ThrottlePolicy
from smpp.sim_connection import SimConnection
from smpp.simulator import SmscSimulator
from smpp.text import parse_concat_udh
from tests.dispatch_helpers import add_campaign, add_members, dispatch_rig

CLOSE = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)  # 21:00 Astana
NEXT_OPEN = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)  # 10:00 Astana the next day
#: 84 UCS-2 characters per repeat: three repeats are three parts (67 characters a part).
THREE_PARTS = "Предложение партнёра " * 8


def numbers(n: int, prefix: str = "7702") -> list[str]:
    return [f"{prefix}{i:07d}" for i in range(1, n + 1)]


def smsc_timeline(
    sim: SmscSimulator, clock: ManualClock, per_part: timedelta
) -> list[tuple[datetime, ShortMessage]]:
    """Make each submit_sm the simulator receives take ``per_part`` of service time (an SMSC
    taking parts at its pace): returns the service time at which each one was received."""
    seen: list[tuple[datetime, ShortMessage]] = []
    original = sim.on_submit

    def on_submit(conn: SimConnection, sequence: int, body: bytes) -> None:
        seen.append((clock.now(), decode_short_message(body)))
        clock.advance(per_part)
        original(conn, sequence, body)

    sim.on_submit = on_submit  # type: ignore[method-assign]
    return seen


def refuse(sim: SmscSimulator, status: int, when: Callable[[ShortMessage], bool]) -> list[int]:
    """Answer ``status`` to each submit_sm for which ``when`` holds; returns the sequence
    numbers so refused."""
    refused: list[int] = []
    original = sim.on_submit

    def on_submit(conn: SimConnection, sequence: int, body: bytes) -> None:
        if when(decode_short_message(body)):
            refused.append(sequence)
            kept, sim.options.submit_status = sim.options.submit_status, status
            try:
                original(conn, sequence, body)
            finally:
                sim.options.submit_status = kept
        else:
            original(conn, sequence, body)

    sim.on_submit = on_submit  # type: ignore[method-assign]
    return refused


def part_no(sm: ShortMessage) -> tuple[int | None, int]:
    """(concatenation reference, part number) of a submit_sm; (None, 1) for a single part."""
    concat, _ = parse_concat_udh(sm.short_message) if sm.esm_class & 0x40 else (None, b"")
    return (None, 1) if concat is None else (concat.reference, concat.seqnum)


@pytest.mark.parametrize(
    ("tps", "seconds_to_close", "per_part", "text"),
    [
        (10, 2.0, 0.15, "Короткое предложение"),  # the SMSC slower than the grant
        (6, 5.0, 0.2, "Короткое предложение"),
        (10, 3.0, 0.1, THREE_PARTS),  # three parts a message
        (5, 4.05, 0.2, THREE_PARTS),
    ],
)
async def test_nothing_written_at_or_after_the_close(
    database: Database,
    settings: Settings,
    clock: ManualClock,
    tps: int,
    seconds_to_close: float,
    per_part: float,
    text: str,
) -> None:
    """R8 / invariant 3: with a small TPS grant just before 21:00, no submit_sm reaches the
    SMSC at or after the close by the service clock; what was not written waits in the queue
    for 10:00 with its attempts unused; no message goes out with some parts only."""
    members = numbers(60)
    await add_members(database, members)
    campaign = await add_campaign(database, members, text=text)
    settings = dataclasses.replace(settings, smpp_tps=float(tps))
    clock.set(CLOSE - timedelta(seconds=seconds_to_close))
    async with dispatch_rig(database, settings, clock, session_options={"window": 1}) as rig:
        seen = smsc_timeline(rig.sim, clock, timedelta(seconds=per_part))
        await rig.drain()
        late = [at for at, _ in seen if at >= CLOSE]
        assert seen and late == []
        assert await rig.drain() == 0  # after the close nothing is claimed
        rows = await database.pool.fetch(
            "SELECT state::text, attempts, not_before, parts FROM deliveries "
            "WHERE campaign_id = $1",
            campaign,
        )
        waiting = [r for r in rows if r["state"] != "submitted"]
        assert {r["state"] for r in waiting} == {"queued"}
        assert {r["attempts"] for r in waiting} == {0}
        assert {r["not_before"] for r in waiting} <= {None, NEXT_OPEN}
        if per_part > 1 / tps:  # the SMSC slower than the grant: the session's guard held some
            assert NEXT_OPEN in {r["not_before"] for r in waiting}
        sent = [r for r in rows if r["state"] == "submitted"]
        parts = {r["parts"] for r in sent}
        assert len(seen) == sum(r["parts"] for r in sent), "a message went out with parts missing"
        assert parts <= {1, 3}
        clock.set(NEXT_OPEN)
        await rig.drain()
        assert await rig.states(campaign) == {"submitted": len(members)}


@pytest.mark.parametrize("status", [Status.ESME_RINVEXPIRY, Status.ESME_RINVSCHED])
async def test_validity_refusal_waits_for_the_next_window(
    database: Database, settings: Settings, clock: ManualClock, status: int
) -> None:
    """An SMSC refusing the validity or schedule (0x62, 0x61): the message waits for the next
    window's opening instead of failing, and goes then."""
    members = numbers(3)
    await add_members(database, members)
    campaign = await add_campaign(database, members)
    async with dispatch_rig(
        database, settings, clock, sim_options={"submit_status": status}
    ) as rig:
        await rig.drain()
        assert await rig.states(campaign) == {"queued": 3}
        not_before = await database.pool.fetch("SELECT DISTINCT not_before FROM deliveries")
        assert [r["not_before"] for r in not_before] == [NEXT_OPEN]
        rig.sim.options.submit_status = Status.ESME_ROK
        clock.set(NEXT_OPEN - timedelta(seconds=1))
        assert await rig.drain() == 0
        clock.set(NEXT_OPEN)
        await rig.drain()
        assert await rig.states(campaign) == {"submitted": 3}


async def test_throttled_part_is_resent_alone_with_the_same_reference(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """R14: the middle part of a three-part message throttled once is resent alone, with the
    message's concatenation reference; the message is delivered only when all three parts'
    receipts came, and the campaign report never counts it delivered before."""
    members = numbers(4)
    await add_members(database, members)
    campaign = await add_campaign(database, members, text=THREE_PARTS)
    async with dispatch_rig(
        database,
        settings,
        clock,
        session_options={"throttle": ThrottlePolicy(pause=0.001, max_pause=0.002)},
    ) as rig:
        first_try: set[str] = set()

        def middle_once(sm: ShortMessage) -> bool:
            if part_no(sm)[1] == 2 and sm.destination_addr not in first_try:
                first_try.add(sm.destination_addr)
                return True
            return False

        refuse(rig.sim, Status.ESME_RTHROTTLED, middle_once)
        await rig.drain()
        assert len(rig.sim.submits()) == 12
        await rig.receipts_settled(8)  # parts 1 and 3 of each message
        assert await rig.states(campaign) == {"queued": 4}
        report = await campaign_report(
            CampaignRepository(database.pool),
            await CampaignRepository(database.pool).get(campaign) or pytest.fail(),
            clock.now(),
        )
        assert report.counts.states[DeliveryState.DELIVERED] == 0

        clock.advance(timedelta(seconds=10))
        await rig.drain()
        resent = [sm for _, sm in rig.sim.submits()[12:]]
        assert sorted(sm.destination_addr for sm in resent) == members
        assert {part_no(sm)[1] for sm in resent} == {2}
        for sm in resent:
            first = [
                part_no(s)[0]
                for _, s in rig.sim.submits()[:12]
                if s.destination_addr == sm.destination_addr
            ]
            assert set(first) == {part_no(sm)[0]}, "the same concatenation reference"
        await rig.receipts_settled(12)
        assert await rig.states(campaign) == {"delivered": 4}
        assert await database.pool.fetchval("SELECT sum(parts_done) FROM deliveries") == 12
        report = await campaign_report(
            CampaignRepository(database.pool),
            await CampaignRepository(database.pool).get(campaign) or pytest.fail(),
            clock.now(),
        )
        assert report.counts.states[DeliveryState.DELIVERED] == 4


async def test_message_with_a_part_never_accepted_is_not_delivered(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """R14: a part refused for good leaves its message short: it is never reported delivered,
    whatever the receipts of its other parts say."""
    members = numbers(2)
    await add_members(database, members)
    campaign = await add_campaign(database, members, text=THREE_PARTS)
    async with dispatch_rig(database, settings, clock) as rig:
        refuse(rig.sim, Status.ESME_RINVDSTADR, lambda sm: part_no(sm)[1] == 2)
        await rig.drain()
        await rig.receipts_settled(4)
        states = await rig.states(campaign)
        assert states.get("delivered", 0) == 0
        assert await rig.states(campaign) == {"undelivered": 2}


async def test_temporary_refusals_stop_after_max_attempts(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """A system error is retried with backoff, MAX_ATTEMPTS times in all, then the message
    fails; throttling before it used no attempt."""
    members = numbers(1)
    await add_members(database, members)
    campaign = await add_campaign(database, members)
    async with dispatch_rig(
        database, settings, clock, sim_options={"submit_status": Status.ESME_RSYSERR}
    ) as rig:
        for _ in range(MAX_ATTEMPTS + 3):
            await rig.drain()
            clock.advance(timedelta(minutes=31))
        assert await rig.states(campaign) == {"failed": 1}
        assert len(rig.sim.submits()) == MAX_ATTEMPTS
        assert await database.pool.fetchval("SELECT attempts FROM deliveries") == MAX_ATTEMPTS


_examples = itertools.count(1)


@settings_(
    max_examples=int(os.environ.get("SMARTD_EDGE_EXAMPLES", "6")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    tps=st.integers(2, 20),
    tenths_to_close=st.integers(0, 60),
    text=st.sampled_from(["Короткое предложение", "Предложение партнёра " * 4, THREE_PARTS]),
    slower=st.sampled_from([1.0, 1.25, 1.5]),
    count=st.integers(1, 30),
)
async def test_the_close_holds_for_any_grant_and_length(
    database: Database,
    settings: Settings,
    tps: int,
    tenths_to_close: int,
    text: str,
    slower: float,
    count: int,
) -> None:
    """Property over TPS grant × time to the close × parts per message × an SMSC as fast as
    the grant or slower: no part is written at or after 21:00 by the service clock; every
    claimed message ends submitted whole, or queued with no attempt used (for the next
    window), or — only when the SMSC is slower than the grant — undelivered with parts out,
    never delivered."""
    example = next(_examples)
    members = numbers(count, prefix=f"77{example:02d}")
    await add_members(database, members)
    campaign = await add_campaign(database, members, text=text)
    clock = ManualClock(CLOSE - timedelta(seconds=tenths_to_close / 10))
    settings = dataclasses.replace(settings, smpp_tps=float(tps))
    try:
        async with dispatch_rig(database, settings, clock, session_options={"window": 1}) as rig:
            seen = smsc_timeline(rig.sim, clock, timedelta(seconds=slower / tps))
            await rig.drain()
            assert [at for at, _ in seen if at >= CLOSE] == []
            rows = await database.pool.fetch(
                "SELECT msisdn, state::text, attempts, not_before, parts FROM deliveries "
                "WHERE campaign_id = $1",
                campaign,
            )
            # parts out per number, as the SMSC saw them (each example's simulator numbers
            # its ids from 1 again, so the submits table cannot tell examples apart)
            out = collections.Counter(sm.destination_addr for _, sm in seen)
            for row in rows:
                sent = out[row["msisdn"]]
                if row["state"] == "submitted":
                    assert sent == row["parts"]
                elif row["state"] == "queued":
                    assert (row["attempts"], sent) == (0, 0)
                    assert row["not_before"] in (None, NEXT_OPEN)
                else:
                    assert row["state"] == "undelivered" and slower > 1.0
                    assert 0 < sent < row["parts"]
    finally:
        await database.pool.execute(
            "UPDATE campaigns SET state = 'cancelled' WHERE id = $1", campaign
        )
