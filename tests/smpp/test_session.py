"""The ESME session against the simulator over real TCP on 127.0.0.1: submits, receipts,
window, TPS, throttling, inbound handling."""

from __future__ import annotations

import asyncio

import pytest

from smpp.config import BindMode
from smpp.constants import CommandId, MessageState, Status
from smpp.errors import DeadlinePassed
from smpp.inbound import DeliveryReceipt, MoMessage, UssdIndication
from smpp.outcome import Accepted, PermanentFailure, TemporaryFailure
from smpp.ratelimit import ManualMonotonic
from smpp.receipts import IdFormat
from smpp.session import Acknowledgement, DeliverLater, Session, acknowledgement
from smpp.simulator import SmscSimulator
from smpp.stats import SessionState
from smpp.text import ConcatMode
from tests.smpp.conftest import DEST, SOURCE, Inbox, SessionFactory, config, part, until


async def test_submit_accepted_and_receipt_id_matches(
    sim: SmscSimulator, bound_session: SessionFactory, inbox: Inbox
) -> None:
    """Hex id in the response, decimal in the receipt: both normalise to the same id."""
    sim.options.response_id_style, sim.options.receipt_id_style = "HEX", "hex0"
    sim.options.receipt_id_style = "dec"
    session = await bound_session(id_format=IdFormat.HEX_RESPONSE_DECIMAL_RECEIPT)
    outcomes = [await session.submit(part(), source=SOURCE, destination=DEST) for _ in range(12)]
    assert all(isinstance(o, Accepted) for o in outcomes)
    receipts = await inbox.wait(12)
    assert {r.message_id for r in receipts if isinstance(r, DeliveryReceipt)} == {
        o.message_id for o in outcomes if isinstance(o, Accepted)
    }
    assert outcomes[-1].raw_message_id == "C"  # type: ignore[union-attr]
    (_, sm) = sim.submits()[0]
    assert sm.destination_addr == DEST.addr and sm.source_addr_ton == 5


async def test_receipt_outcome_mix(
    sim: SmscSimulator, bound_session: SessionFactory, inbox: Inbox
) -> None:
    """UNDELIV and EXPIRED receipts are parsed into their message states."""
    sim.options.receipt_mix = {"UNDELIV": 1.0, "EXPIRED": 1.0}
    session = await bound_session()
    await asyncio.gather(
        *(session.submit(part(), source=SOURCE, destination=DEST) for _ in range(20))
    )
    states = {e.state for e in await inbox.wait(20) if isinstance(e, DeliveryReceipt)}
    assert states == {MessageState.UNDELIVERABLE, MessageState.EXPIRED}


async def test_receipt_before_submit_sm_resp(
    sim: SmscSimulator, bound_session: SessionFactory, inbox: Inbox
) -> None:
    """A receipt that overtakes its submit_sm_resp is delivered and matches the id."""
    sim.options.receipt_before_response = True
    session = await bound_session()
    outcome = await session.submit(part(), source=SOURCE, destination=DEST)
    (receipt,) = await inbox.wait(1)
    assert isinstance(outcome, Accepted) and isinstance(receipt, DeliveryReceipt)
    assert receipt.message_id == outcome.message_id
    await sim.wait_for(lambda: len(sim.of_kind(CommandId.DELIVER_SM_RESP)) == 1)


async def test_duplicate_receipts_both_reach_handler(
    sim: SmscSimulator, bound_session: SessionFactory, inbox: Inbox
) -> None:
    """The layer passes duplicate receipts up (the service recognises repeats)."""
    sim.options.duplicate_receipts = True
    session = await bound_session()
    await session.submit(part(), source=SOURCE, destination=DEST)
    first, second = await inbox.wait(2)
    assert isinstance(first, DeliveryReceipt) and isinstance(second, DeliveryReceipt)
    assert first.message_id == second.message_id


async def test_throttling_gives_temporary_failure_and_slows_bind(
    sim: SmscSimulator, bound_session: SessionFactory
) -> None:
    """ESME_RTHROTTLED is a TemporaryFailure, counted, and pauses the token bucket."""
    sim.options.tps_limit = 2.0
    session = await bound_session()
    outcomes = await asyncio.gather(
        *(session.submit(part(), source=SOURCE, destination=DEST) for _ in range(10))
    )
    throttled = [o for o in outcomes if isinstance(o, TemporaryFailure)]
    assert throttled and all(o.status == Status.ESME_RTHROTTLED for o in throttled)
    assert session.stats.throttled == len(throttled)
    assert session.stats.responses_by_status[Status.ESME_RTHROTTLED] == len(throttled)
    assert session.throttle_pause > 0.0  # the bind is slowed down


async def test_permanent_failure_mapping_is_configurable(
    sim: SmscSimulator, bound_session: SessionFactory
) -> None:
    """An invalid destination is permanent by default, temporary when configured so."""
    from smpp.outcome import StatusPolicy

    sim.options.submit_status = Status.ESME_RINVDSTADR
    session = await bound_session()
    assert isinstance(
        await session.submit(part(), source=SOURCE, destination=DEST), PermanentFailure
    )
    lenient = await bound_session(
        status_policy=StatusPolicy(temporary=frozenset({Status.ESME_RINVDSTADR}))
    )
    outcome = await lenient.submit(part(), source=SOURCE, destination=DEST)
    assert isinstance(outcome, TemporaryFailure) and outcome.status_name == "ESME_RINVDSTADR"


async def test_window_is_enforced(sim: SmscSimulator, bound_session: SessionFactory) -> None:
    """With window 3, never more than 3 submit_sm are outstanding at the SMSC."""
    sim.options.hold_responses = True
    session = await bound_session(window=3)
    tasks = [
        asyncio.create_task(session.submit(part(), source=SOURCE, destination=DEST))
        for _ in range(10)
    ]
    answered = 0
    while answered < 10:
        expected = min(answered + 3, 10)
        await sim.wait_for(lambda n=expected: len(sim.of_kind(CommandId.SUBMIT_SM)) >= n)
        assert await session.enquire_link()  # barrier: all written submits have arrived
        assert len(sim.of_kind(CommandId.SUBMIT_SM)) == expected
        assert session.in_flight == min(3, 10 - answered)
        answered += sim.release_held()
    outcomes = await asyncio.gather(*tasks)
    assert all(isinstance(o, Accepted) for o in outcomes)


async def test_tps_is_enforced_on_injected_clock(
    sim: SmscSimulator, bound_session: SessionFactory
) -> None:
    """At 10 TPS on a manual clock, submits never run ahead of 1 + 10 per second."""
    clock = ManualMonotonic()
    session = await bound_session(tps=10.0, clock=clock)
    tasks = [
        asyncio.create_task(session.submit(part(), source=SOURCE, destination=DEST))
        for _ in range(25)
    ]
    start, stats = clock.now(), session.stats
    await until(lambda: stats.submitted >= 1 and clock.sleepers >= 4)
    while stats.submitted < 25:
        clock.advance(0.1)
        elapsed = clock.now() - start
        await until(lambda: stats.submitted >= 25 or clock.sleepers >= 4)
        assert stats.submitted <= 1 + round(10 * elapsed)
        assert stats.submitted >= round(10 * elapsed) - 1
    assert round(clock.now() - start, 6) == 2.4
    assert all(isinstance(o, Accepted) for o in await asyncio.gather(*tasks))


async def test_nothing_written_once_the_callers_deadline_passed(
    sim: SmscSimulator, bound_session: SessionFactory
) -> None:
    """A submit waiting on the TPS bucket when the caller's clock passes its deadline (a send
    window closing by the service clock) raises DeadlinePassed and writes nothing; those
    written went before the deadline."""
    clock = ManualMonotonic()
    service = [0]  # the caller's clock in tenths of a second; its deadline is at 2 s
    session = await bound_session(tps=10.0, clock=clock)
    tasks = [
        asyncio.create_task(
            session.submit(
                part(), source=SOURCE, destination=DEST, write_if=lambda: service[0] < 20
            )
        )
        for _ in range(40)
    ]
    stats = session.stats

    def settled() -> bool:
        return all(t.done() for t in tasks) or clock.sleepers >= 4

    await until(lambda: stats.submitted >= 1 and settled())
    written_at = [service[0]] * stats.submitted  # the service time of each write
    while not all(t.done() for t in tasks):
        clock.advance(0.1)
        service[0] += 1  # the service clock moves with the time spent on the bucket
        await until(settled)
        written_at += [service[0]] * (stats.submitted - len(written_at))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    refused = [r for r in results if isinstance(r, DeadlinePassed)]
    assert max(written_at) < 20
    assert len(refused) == 40 - stats.submitted > 0
    await until(lambda: len(sim.of_kind(CommandId.SUBMIT_SM)) == stats.submitted)


async def test_enquire_link_answered_with_full_window(
    sim: SmscSimulator, bound_session: SessionFactory
) -> None:
    """The ESME answers the SMSC's enquire_link while its window is full."""
    sim.options.hold_responses = True
    session = await bound_session(window=2)
    tasks = [
        asyncio.create_task(session.submit(part(), source=SOURCE, destination=DEST))
        for _ in range(3)
    ]
    await sim.wait_for(lambda: len(sim.of_kind(CommandId.SUBMIT_SM)) == 2)
    assert await sim.enquire_link() == [Status.ESME_ROK]
    assert session.stats.enquire_links_received == 1
    while sim.release_held() < 1 or len(sim.of_kind(CommandId.SUBMIT_SM)) < 3:
        await sim.wait_for(lambda: len(sim.of_kind(CommandId.SUBMIT_SM)) == 3)
    sim.release_held()
    assert len(await asyncio.gather(*tasks)) == 3


async def test_mo_handler_awaited_before_deliver_sm_resp(
    sim: SmscSimulator, bound_session: SessionFactory, inbox: Inbox
) -> None:
    """deliver_sm_resp leaves only after the handler returns."""
    await bound_session()
    inbox.gate = asyncio.Event()
    injection = asyncio.create_task(sim.inject_mo("77011234567", "1204", "STOP"))
    await asyncio.wait_for(inbox.entered.wait(), 5)
    assert sim.of_kind(CommandId.DELIVER_SM_RESP) == []
    inbox.gate.set()
    assert await injection == [Status.ESME_ROK]


async def test_handler_error_makes_smsc_retry(
    sim: SmscSimulator, bound_session: SessionFactory, inbox: Inbox
) -> None:
    """A failing handler answers ESME_RX_T_APPN; the redelivery then succeeds."""
    session = await bound_session()
    inbox.fail = True
    assert await sim.inject_mo("77011234567", "1204", "STOP") == [Status.ESME_RX_T_APPN]
    assert session.stats.handler_errors == 1 and session.state is SessionState.BOUND
    inbox.fail = False
    assert await sim.inject_mo("77011234567", "1204", "STOP") == [Status.ESME_ROK]
    (event,) = await inbox.wait(1)
    assert isinstance(event, MoMessage) and event.text == "STOP"


async def test_concatenated_mo_udh_and_sar(
    sim: SmscSimulator, bound_session: SessionFactory, inbox: Inbox
) -> None:
    """A long MO in UDH parts (out of order) and in SAR parts is reassembled."""
    await bound_session()
    text = "Answer 2 " * 40
    statuses = await sim.inject_mo("77011234567", "1204", text, order=[2, 0, 1])
    assert statuses == [Status.ESME_ROK] * 3
    statuses = await sim.inject_mo("77011234567", "1204", text, mode=ConcatMode.SAR)
    assert statuses == [Status.ESME_ROK] * 3
    first, second = await inbox.wait(2)
    for event in (first, second):
        assert isinstance(event, MoMessage)
        assert event.text == text and event.parts == 3 and event.complete


async def test_ussd_indication_reaches_handler(
    sim: SmscSimulator, bound_session: SessionFactory, inbox: Inbox
) -> None:
    """A deliver_sm with ussd_service_op is a UssdIndication."""
    session = await bound_session()
    assert await sim.inject_ussd("77011234567", "555", "*555*1#", session_info=b"\x00\x01") == 0
    (event,) = await inbox.wait(1)
    assert isinstance(event, UssdIndication) and event.text == "*555*1#"
    assert session.stats.ussd_indications == 1


async def test_handler_set_after_construction(sim: SmscSimulator, inbox: Inbox) -> None:
    """A handler set before start() receives inbound events; once started, it is refused."""
    session = Session(config(sim.port))
    session.set_handler(inbox)
    async with session:
        async with asyncio.timeout(5):
            await session.wait_bound()
        with pytest.raises(RuntimeError):
            session.set_handler(inbox)
        assert await sim.inject_mo("77011234567", "1204", "STOP") == [Status.ESME_ROK]
        (event,) = await inbox.wait(1)
    assert isinstance(event, MoMessage) and event.text == "STOP"


async def test_transmitter_receiver_pair(
    sim: SmscSimulator, bound_session: SessionFactory, inbox: Inbox
) -> None:
    """TX+RX binds two connections; receipts for the TX bind arrive on the RX one."""
    session = await bound_session(bind_mode=BindMode.TRANSMITTER_RECEIVER)
    binds = {r.command_id for r in sim.received}
    assert {CommandId.BIND_TRANSMITTER, CommandId.BIND_RECEIVER} <= binds
    outcome = await session.submit(part(), source=SOURCE, destination=DEST)
    (receipt,) = await inbox.wait(1)
    assert isinstance(outcome, Accepted) and isinstance(receipt, DeliveryReceipt)
    assert receipt.message_id == outcome.message_id


async def test_close_drains_window_then_unbinds(
    sim: SmscSimulator, bound_session: SessionFactory
) -> None:
    """close() waits for outstanding responses, then unbinds; later submits raise."""
    sim.options.hold_responses = True
    session = await bound_session()
    tasks = [
        asyncio.create_task(session.submit(part(), source=SOURCE, destination=DEST))
        for _ in range(3)
    ]
    await sim.wait_for(lambda: len(sim.of_kind(CommandId.SUBMIT_SM)) == 3)
    closing = asyncio.create_task(session.close())
    await asyncio.sleep(0)
    assert session.state is SessionState.UNBINDING
    assert sim.of_kind(CommandId.UNBIND) == []
    sim.release_held()
    await asyncio.wait_for(closing, 5)
    assert all(isinstance(o, Accepted) for o in await asyncio.gather(*tasks))
    assert len(sim.of_kind(CommandId.UNBIND)) == 1 and session.state is SessionState.CLOSED
    from smpp.errors import SessionClosed

    try:
        await session.submit(part(), source=SOURCE, destination=DEST)
    except SessionClosed:
        pass
    else:
        raise AssertionError("submit after close must raise SessionClosed")


async def test_stats_count_everything(sim: SmscSimulator, inbox: Inbox) -> None:
    """A session used as a context manager binds, counts and closes."""
    from tests.smpp.conftest import config

    async with Session(config(sim.port), inbox) as session:
        await asyncio.wait_for(session.wait_bound(), 5)
        await session.submit(part(), source=SOURCE, destination=DEST)
        await inbox.wait(1)
        assert session.stats.submitted == session.stats.accepted == 1
        assert session.stats.receipts == 1 and session.stats.binds == 1
    assert session.state is SessionState.CLOSED


class AckRecorder:
    """A handler that keeps each event's acknowledgement and what it was answered."""

    def __init__(self, gate: asyncio.Event | None = None, later: bool = False) -> None:
        self.gate, self.later = gate, later
        self.entered = asyncio.Event()
        self.answers: list[bool] = []
        self.seen: list[Acknowledgement] = []

    async def __call__(self, event: object) -> None:
        ack = acknowledgement()
        assert ack is not None and ack.carried_open() and ack.answered is None
        self.seen.append(ack)
        ack.on_answered(self.answers.append)
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.later:
            raise DeliverLater("not now")


async def test_acknowledgement_says_the_response_was_written(sim: SmscSimulator) -> None:
    """The handler sees its event's acknowledgement; once deliver_sm_resp is written on the
    open connection it is told so (answered True)."""
    handler = AckRecorder()
    async with Session(config(sim.port), handler) as session:
        await asyncio.wait_for(session.wait_bound(), 5)
        assert await sim.inject_mo("77011234567", "1204", "STOP") == [Status.ESME_ROK]
    assert handler.answers == [True]
    assert acknowledgement() is None  # outside a handler


async def test_acknowledgement_says_the_connection_was_gone(sim: SmscSimulator) -> None:
    """A connection lost while the handler runs: the response cannot be written, and the
    handler's acknowledgement says so (answered False) — the SMSC will deliver again."""
    gate = asyncio.Event()
    handler = AckRecorder(gate)
    async with Session(config(sim.port), handler) as session:
        await asyncio.wait_for(session.wait_bound(), 5)
        injected = asyncio.create_task(sim.inject_mo("77011234567", "1204", "STOP"))
        await asyncio.wait_for(handler.entered.wait(), 5)
        old = max(c.number for c in sim.bound)
        sim.drop_all()
        await sim.wait_for(lambda: any(c.number > old for c in sim.bound))  # reconnected
        assert not handler.seen[0].carried_open()
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await injected
        await until(lambda: handler.answers == [False])


async def test_deliver_later_is_a_temporary_error_not_a_failure(sim: SmscSimulator) -> None:
    """A handler raising DeliverLater gets the temporary status, is not counted as a handler
    error, and its acknowledgement is answered False."""
    handler = AckRecorder(later=True)
    async with Session(config(sim.port), handler) as session:
        await asyncio.wait_for(session.wait_bound(), 5)
        assert await sim.inject_mo("77011234567", "1204", "STOP") == [Status.ESME_RX_T_APPN]
        assert session.stats.handler_errors == 0
    assert handler.answers == [False]


async def test_tps_changed_at_run_time_holds_from_the_next_submit(
    sim: SmscSimulator, bound_session: SessionFactory
) -> None:
    """Issue 16: a replica's share of the account's grant changes while it sends. At 0 it
    writes nothing however long the clock runs; raised to 20/s it writes no more than 1 + 20
    per second from then on."""
    clock = ManualMonotonic()
    session = await bound_session(tps=10.0, clock=clock)
    session.set_tps(0.0)
    tasks = [
        asyncio.create_task(session.submit(part(), source=SOURCE, destination=DEST))
        for _ in range(30)
    ]
    stats = session.stats
    await until(lambda: clock.sleepers >= 4)
    for _ in range(20):
        clock.advance(0.1)
        await until(lambda: clock.sleepers >= 4)
    assert stats.submitted <= 1  # (the one token the bucket held)
    before, start = stats.submitted, clock.now()
    session.set_tps(20.0, burst=1)
    assert session.tps == 20.0
    while stats.submitted < 30:
        clock.advance(0.05)
        await until(lambda: stats.submitted >= 30 or clock.sleepers >= 4)
        assert stats.submitted - before <= 1 + round(20 * (clock.now() - start))
    assert all(isinstance(o, Accepted) for o in await asyncio.gather(*tasks))


async def test_a_share_paced_with_its_burst_keeps_up_with_late_wake_ups(
    sim: SmscSimulator, bound_session: SessionFactory
) -> None:
    """Issue 16, item 5: a replica given a share of 100/s and its part of the account's burst
    (5) keeps 100/s although every wake-up of its pacer comes 1 ms after the token was due
    (a loaded event loop: each 10 ms period lasts 11). The session is built with burst 1, as
    ``smartd serve`` builds it; the burst comes with the share. Before, set_tps dropped the
    burst and the replica wrote one part per 11 ms: 91 % of its share."""
    clock = ManualMonotonic()
    session = await bound_session(tps=100.0, burst=1, clock=clock)
    session.set_tps(100.0, burst=5)
    total = 300
    tasks = [
        asyncio.create_task(session.submit(part(), source=SOURCE, destination=DEST))
        for _ in range(total)
    ]
    stats = session.stats
    await until(lambda: stats.submitted >= 1 and clock.sleepers >= 4)
    start = clock.now()
    while stats.submitted < total:
        clock.advance(0.011)  # the pacer asked for the next 10 ms; it runs 1 ms late
        await until(lambda: stats.submitted >= total or clock.sleepers >= 4)
        elapsed = clock.now() - start
        assert stats.submitted <= 5 + 100 * elapsed + 1e-6  # never past the rate + burst
        assert stats.submitted >= min(total, 100 * elapsed)  # never behind the schedule
    assert all(isinstance(o, Accepted) for o in await asyncio.gather(*tasks))
    assert session.burst == 5
