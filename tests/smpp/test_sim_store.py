"""The simulator as a real SMSC (issue 11): store-and-forward of receipts and MO — what the
ESME did not acknowledge (connection lost before deliver_sm_resp, a temporary error) is
sent again after it binds again, what it acknowledged or refused for good is not — and
receipt dates from the simulator's clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from smpp.constants import Status
from smpp.inbound import DeliveryReceipt, MoMessage
from smpp.pdu import decode_short_message
from smpp.receipts import parse_receipt_date
from smpp.session import Session
from smpp.simulator import SimulatorOptions, SmscSimulator, build_parser, options_from_args
from smpp.stats import SessionState
from tests.smpp.conftest import DEST, SOURCE, Inbox, SessionFactory, part, until

PHONE = "77011234567"


def deliver_sm_sent(sim: SmscSimulator, text: bytes) -> int:
    """How many times the simulator sent a deliver_sm whose text contains ``text``
    (the test set ``sim.pushed = []`` first)."""
    assert sim.pushed is not None
    return sum(d.attempts for d in sim.pushed if text in decode_short_message(d.body).short_message)


async def rebound(sim: SmscSimulator, session: Session) -> None:
    """Drop every connection (a network failure) and wait for the session to bind again."""
    binds = session.stats.binds
    sim.drop_all()
    await until(lambda: session.stats.binds > binds and session.state is SessionState.BOUND)


async def barrier(sim: SmscSimulator) -> None:
    """An MO acknowledged after whatever the simulator sent on the last bind."""
    assert await sim.inject_mo(PHONE, "5555", "probe") == [Status.ESME_ROK]


async def test_a_receipt_unacknowledged_when_the_connection_drops_is_sent_again(
    sim: SmscSimulator, bound_session: SessionFactory, inbox: Inbox
) -> None:
    """The connection is lost while the ESME handles a receipt: after the rebind the same
    receipt comes again and, acknowledged, leaves the store."""
    sim.pushed = []
    session = await bound_session()
    inbox.gate = asyncio.Event()
    await session.submit(part(), source=SOURCE, destination=DEST)
    async with asyncio.timeout(5):
        await inbox.entered.wait()
    await rebound(sim, session)
    inbox.gate.set()
    first, again = await inbox.wait(2)
    assert isinstance(first, DeliveryReceipt) and isinstance(again, DeliveryReceipt)
    assert first.message_id == again.message_id
    await sim.wait_for(lambda: len(sim.outbox) == 0)
    assert deliver_sm_sent(sim, b"stat:DELIVRD") == 2 and sim.outbox.delivered == 1


async def test_a_temporary_error_is_sent_again_after_rebind_and_an_ok_never(
    sim: SmscSimulator, bound_session: SessionFactory, inbox: Inbox
) -> None:
    """An MO answered ESME_RX_T_APPN stays stored and comes again on the next bind; once
    acknowledged it is not sent again on later binds."""
    sim.pushed = []
    session = await bound_session()
    inbox.fail = True
    assert await sim.inject_mo(PHONE, "5555", "STOP") == [Status.ESME_RX_T_APPN]
    assert len(sim.outbox) == 1
    inbox.fail = False
    await rebound(sim, session)
    (event,) = await inbox.wait(1)
    assert isinstance(event, MoMessage) and event.text == "STOP"
    await sim.wait_for(lambda: len(sim.outbox) == 0)
    await rebound(sim, session)
    await barrier(sim)
    assert deliver_sm_sent(sim, b"STOP") == 2
    assert [e.text for e in inbox.events if isinstance(e, MoMessage)] == ["STOP", "probe"]


async def test_a_permanent_error_is_not_sent_again(
    sim: SmscSimulator, bound_session: SessionFactory, inbox: Inbox
) -> None:
    """An MO answered with a permanent error (ESME_RX_P_APPN) is forgotten."""
    sim.pushed = []
    session = await bound_session(handler_error_status=Status.ESME_RX_P_APPN)
    inbox.fail = True
    assert await sim.inject_mo(PHONE, "5555", "STOP") == [Status.ESME_RX_P_APPN]
    assert len(sim.outbox) == 0 and sim.outbox.refused == 1
    inbox.fail = False
    await rebound(sim, session)
    await barrier(sim)
    assert deliver_sm_sent(sim, b"STOP") == 1


async def test_an_mo_injected_while_no_esme_is_bound_waits_for_the_bind(
    sim: SmscSimulator, bound_session: SessionFactory, inbox: Inbox
) -> None:
    """queue_mo stores the MO; the ESME gets it when it binds."""
    (delivery,) = sim.queue_mo(PHONE, "5555", "1")
    assert delivery.attempts == 0 and len(sim.outbox) == 1
    await bound_session()
    (event,) = await inbox.wait(1)
    assert isinstance(event, MoMessage) and event.text == "1"
    await sim.wait_for(lambda: len(sim.outbox) == 0)


async def test_receipt_dates_come_from_the_simulator_clock(
    sim: SmscSimulator, bound_session: SessionFactory, inbox: Inbox
) -> None:
    """submit date is when the submit_sm was taken, done date when the receipt was sent,
    both from the simulator's clock, in its zone."""
    start = datetime(2026, 11, 23, 6, 59, tzinfo=UTC)
    ticks = iter([start, start + timedelta(minutes=3)])
    sim.clock = lambda: next(ticks)
    sim.options.receipt_zone = UTC
    session = await bound_session()
    await session.submit(part(), source=SOURCE, destination=DEST)
    (receipt,) = await inbox.wait(1)
    assert isinstance(receipt, DeliveryReceipt)
    assert (receipt.fields.submit_date, receipt.fields.done_date) == ("2611230659", "2611230702")
    assert parse_receipt_date(receipt.fields.done_date, UTC) == start + timedelta(minutes=3)


def test_store_flags_map_to_options() -> None:
    """--no-store, --redeliver-after and --timezone become SimulatorOptions fields; the
    default resends a temporarily refused deliver_sm after 30 s, dates in Astana time."""
    default = SimulatorOptions(**options_from_args(build_parser().parse_args([])))  # type: ignore[arg-type]
    assert default.store_and_forward and default.redeliver_delay == 30.0
    assert str(default.receipt_zone) == "Asia/Almaty"
    args = ["--no-store", "--redeliver-after", "2.5", "--timezone", "UTC", "--control-port", "9"]
    parsed = build_parser().parse_args(args)
    options = SimulatorOptions(**options_from_args(parsed))  # type: ignore[arg-type]
    assert not options.store_and_forward and options.redeliver_delay == 2.5
    assert str(options.receipt_zone) == "UTC" and parsed.control_port == 9


async def test_a_temporary_error_is_retried_on_the_same_bind_after_the_delay(
    sim: SmscSimulator, bound_session: SessionFactory, inbox: Inbox
) -> None:
    """With redeliver_delay set, a temporarily refused MO comes again without a rebind."""
    sim.options.redeliver_delay = 0.0
    await bound_session()
    inbox.fail = True
    assert await sim.inject_mo(PHONE, "5555", "STOP") == [Status.ESME_RX_T_APPN]
    inbox.fail = False
    (event,) = await inbox.wait(1)
    assert isinstance(event, MoMessage) and event.text == "STOP"
    await sim.wait_for(lambda: len(sim.outbox) == 0)
