"""Subscribers' SMS against the SMSC's resends (invariant 4, R2): a distinct message is never
dropped, and a resend is recognised only where the earlier copy was never acknowledged
(dispatcher/engine/sink.py, RELIABILITY.md "MO and the SMSC's resends")."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dispatcher.db import Database
from dispatcher.engine.build import Program
from dispatcher.engine.nodes import NodeLock
from dispatcher.engine.repository import DispatchRepository
from dispatcher.engine.sink import InboundSink
from dispatcher.kernel.clock import ManualClock
from dispatcher.program.bonus import BonusLedger
from dispatcher.program.mo import MoDesk
from dispatcher.settings import Settings
from smpp.constants import Status, Tag
from smpp.inbound import MoMessage
from smpp.pdu import ShortMessage
from smpp.session import Acknowledgement
from smpp.simulator import SmscSimulator
from tests.dispatch_helpers import add_members, dispatch_rig

MSISDN = "77013334455"


def mo_pdu(
    destination: str,
    text: str = "",
    *,
    reference: int | None = None,
    data_coding: int = 0,
    payload: bytes | None = None,
) -> ShortMessage:
    """An MO deliver_sm from MSISDN, as a handset's SMSC sends it."""
    tlvs = {} if reference is None else {Tag.USER_MESSAGE_REFERENCE: reference.to_bytes(2, "big")}
    return ShortMessage(
        source_addr=MSISDN,
        source_addr_ton=1,
        source_addr_npi=1,
        destination_addr=destination,
        data_coding=data_coding,
        short_message=text.encode("latin-1") if payload is None else payload,
        tlvs=tlvs,
    )


def after_first_commit(sink: InboundSink, then: Callable[[], Awaitable[None]]) -> asyncio.Event:
    """Run ``then`` after the first MO was committed, before the session may answer it;
    returns an event set at that point."""
    committed = asyncio.Event()
    original = sink.mo

    async def mo(*args: Any, **kwargs: Any) -> str:
        outcome = await original(*args, **kwargs)
        if not committed.is_set():
            committed.set()
            await then()
        return outcome

    sink.mo = mo  # type: ignore[method-assign]
    return committed


async def help_messages(database: Database) -> int:
    return int(await database.pool.fetchval("SELECT count(*) FROM service_messages"))


async def mo_rows(database: Database) -> int:
    return int(await database.pool.fetchval("SELECT count(*) FROM mo_messages"))


async def rebound(sim: SmscSimulator, old: int) -> None:
    """Wait until the ESME bound again on a connection newer than ``old``: it has seen the
    old one close (the session reconnects only after that)."""
    await sim.wait_for(lambda: any(c.number > old for c in sim.bound))


async def test_the_same_text_twice_is_two_messages(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """HELP sent twice, each acknowledged, is answered twice: the second is the subscriber's
    own message, not a resend."""
    async with dispatch_rig(database, settings, clock) as rig:
        assert await rig.sim.inject_mo(MSISDN, settings.short_code, "help") == [0]
        assert await rig.sim.inject_mo(MSISDN, settings.short_code, "help") == [0]
    assert await help_messages(database) == 2
    assert await mo_rows(database) == 2


async def test_identical_mos_back_to_back_on_one_bind_are_both_applied(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """Two identical deliver_sm on one bind without waiting (an SMSC flushing its queue) are
    two messages: both applied, both acknowledged."""
    async with dispatch_rig(database, settings, clock) as rig:
        pdu = mo_pdu(settings.short_code, "help")
        statuses = await asyncio.gather(rig.sim.deliver(pdu), rig.sim.deliver(pdu))
        assert statuses == [0, 0]
    assert await help_messages(database) == 2


async def test_stop_with_a_wrapped_user_message_reference_is_applied(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """R2: a STOP whose user_message_reference (a handset counter that wraps) equals an
    earlier MO's is a new message: the subscriber leaves."""
    await add_members(database, [MSISDN])
    async with dispatch_rig(database, settings, clock) as rig:
        assert await rig.sim.deliver(mo_pdu(settings.short_code, "hello", reference=5)) == 0
        assert await rig.sim.deliver(mo_pdu(settings.short_code, "STOP", reference=5)) == 0
    open_memberships = await database.pool.fetchval(
        "SELECT count(*) FROM memberships WHERE left_at IS NULL"
    )
    assert open_memberships == 0
    outcomes = await database.pool.fetch("SELECT outcome FROM mo_messages ORDER BY id")
    assert [r["outcome"] for r in outcomes] == ["ignored", "left"]


async def test_resend_after_the_connection_dropped_before_the_response_is_recognised(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """Committed, then the connection dropped before deliver_sm_resp: the SMSC's resend on the
    next bind is recognised and not applied twice."""
    async with dispatch_rig(database, settings, clock) as rig:
        old = max(c.number for c in rig.sim.bound)

        async def drop() -> None:
            rig.sim.drop_all()
            await rebound(rig.sim, old)

        after_first_commit(rig.sink, drop)
        with contextlib.suppress(asyncio.CancelledError):
            await rig.sim.inject_mo(MSISDN, settings.short_code, "help")  # never answered
        await rebound(rig.sim, old)
        # the simulator stores what it got no ESME_ROK for and resends it on the new bind,
        # as a real SMSC does: recognised, not applied again
        async with asyncio.timeout(10):
            await rig.sim.wait_for(lambda: not rig.sim.outbox.pending)
        assert rig.sim.outbox.resent >= 1
        # and the same text again, acknowledged this time: a new message
        assert await rig.sim.inject_mo(MSISDN, settings.short_code, "help") == [0]
    assert await help_messages(database) == 2
    assert await mo_rows(database) == 2


async def _vanish() -> None:
    """What a process killed right after the commit does: nothing more for this event."""
    raise asyncio.CancelledError


async def test_resend_after_the_node_died_is_recognised_once_it_is_dead(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """Node A committed an MO and died before answering. While A's node lock is held, another
    node cannot tell a resend from a new message and asks the SMSC to deliver again later;
    once A is dead, the resend is recognised and not applied twice."""
    async with dispatch_rig(database, settings, clock) as a:
        committed = after_first_commit(a.sink, _vanish)
        injected = asyncio.create_task(a.sim.inject_mo(MSISDN, settings.short_code, "help"))
        await asyncio.wait_for(committed.wait(), 5)
        injected.cancel()
        await a.session.close()  # its binds go; its node lock stays: A is alive but silent
        async with dispatch_rig(database, settings, clock, sim=a.sim) as b:
            later = await b.sim.inject_mo(MSISDN, settings.short_code, "help")
            assert later == [Status.ESME_RX_T_APPN]
            await a.dispatcher.close()  # A's lock is free: A is dead
            assert await b.sim.inject_mo(MSISDN, settings.short_code, "help") == [0]
            assert await b.sim.inject_mo(MSISDN, settings.short_code, "help") == [0]
    assert await help_messages(database) == 2
    assert await mo_rows(database) == 2


async def test_acknowledged_copy_whose_record_lags_is_not_taken_for_a_resend(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """The response was written but its record is not yet committed when the connection
    drops; the subscriber's identical next message, on the new bind, is applied."""
    async with dispatch_rig(database, settings, clock) as rig, database.pool.acquire() as blocker:
        hold = blocker.transaction()

        async def block_the_record() -> None:
            await hold.start()  # the row stays locked: its answer cannot be recorded yet
            await blocker.execute("SELECT id FROM mo_messages FOR UPDATE")

        after_first_commit(rig.sink, block_the_record)
        assert await rig.sim.inject_mo(MSISDN, settings.short_code, "help") == [0]
        old = max(c.number for c in rig.sim.bound)
        rig.sim.drop_all()
        await rebound(rig.sim, old)
        assert await rig.sim.inject_mo(MSISDN, settings.short_code, "help") == [0]
        await hold.rollback()
    assert await help_messages(database) == 2


async def test_nul_in_an_mo_is_applied_once_not_refused_forever(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """A NUL (which PostgreSQL refuses in text) neither fails the MO nor makes the SMSC resend
    it for ever: the text is stored sanitised and applied."""
    await add_members(database, [MSISDN])
    async with dispatch_rig(database, settings, clock) as rig:
        stop = "STOP\x00".encode("utf-16-be")
        assert await rig.sim.deliver(mo_pdu(settings.short_code, payload=stop, data_coding=8)) == 0
        odd = mo_pdu(settings.short_code, payload=b"a\x00b", data_coding=3)
        assert await rig.sim.deliver(odd) == 0
    bodies = await database.pool.fetch("SELECT body, outcome FROM mo_messages ORDER BY id")
    stored = [(r["body"], r["outcome"]) for r in bodies]
    assert stored == [("STOP", "left"), ("a\ufffdb", "ignored")]


# -- a model of the SMSC against the resend rule ------------------------------------------

OTHER = "0000"  # neither the short code nor 1204: every MO is recorded and "ignored"


@dataclass
class Link:
    """One bind between the SMSC and a node."""

    open: bool = True


@dataclass
class Node:
    """One engine's inbound side: its sink (and memory) and its liveness lock."""

    sink: InboundSink
    lock: NodeLock


@dataclass
class SmscModel:
    """What the SMSC knows: messages it must still deliver (it has no ESME_ROK for them) and
    those awaiting a response, with their bind; and the node's handlers that have committed
    but not yet answered (the acknowledgement, its bind, the message)."""

    queue: list[int] = field(default_factory=list)
    awaiting: dict[int, Link] = field(default_factory=dict)
    held: list[tuple[Acknowledgement, Link, int]] = field(default_factory=list)

    def drop(self, link: Link) -> None:
        """The bind drops: what awaited a response on it will be delivered again."""
        link.open = False
        for message, bind in list(self.awaiting.items()):
            if bind is link:
                del self.awaiting[message]
                self.queue.append(message)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("new"), st.sampled_from(["1", "2"])),
        st.tuples(
            st.just("deliver"),
            st.integers(0, 7),
            st.sampled_from(["answered", "lost", "held", "crash"]),
        ),
        st.tuples(st.just("drop")),
        st.tuples(st.just("release")),
    ),
    max_size=24,
)
_numbers = itertools.count(1)


class MoRig:
    """Nodes over one database, each an InboundSink as build_engine makes it, driven
    directly with acknowledgements whose fate the test decides."""

    def __init__(
        self, database: Database, settings: Settings, clock: ManualClock, program: Program
    ):
        self.database, self.settings, self.clock, self.program = database, settings, clock, program

    async def node(self) -> Node:
        name = f"model-{uuid.uuid4().hex[:8]}"
        lock = NodeLock(self.database.pool, name)
        await lock.hold()
        sink = InboundSink(
            self.database.pool,
            DispatchRepository(self.database.pool, name, "smsc"),
            self.clock,
            MoDesk(self.program.membership, self.settings.short_code, self.settings.dnc_code),
            ussd=self.program.ussd,
            ussd_reply=_no_ussd,
            region=self.settings.default_region,
            receipt_zone=self.settings.calendar.zone,
            node=lambda: name,
        )
        return Node(sink, lock)


async def _no_ussd(*args: object) -> None:
    raise AssertionError("no USSD in this model")


@settings(
    max_examples=int(os.environ.get("SMARTD_MO_MODEL_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
@example(ops=[("new", "1"), ("deliver", 0, "held"), ("new", "1"), ("deliver", 0, "answered")])
@example(ops=[("new", "1"), ("deliver", 0, "lost"), ("new", "1"), ("deliver", 1, "answered")])
@example(ops=[("new", "1"), ("deliver", 0, "crash"), ("new", "1"), ("deliver", 1, "held")])
@example(ops=[("new", "1"), ("deliver", 0, "held"), ("drop",), ("deliver", 0, "answered")])
async def test_every_distinct_message_is_applied_exactly_once(
    database: Database,
    settings: Settings,
    clock: ManualClock,
    ledger: BonusLedger,
    ops: list[tuple[Any, ...]],
) -> None:
    """Invariant 4 against a model SMSC: messages with repeated texts, delivered and answered,
    answered on a bind already dropped (lost), held while more arrive on the same bind, or
    with the node killed after the commit; the SMSC delivers again everything it has no
    ESME_ROK for. In the end each text is applied exactly as often as it was sent."""
    rig = MoRig(database, settings, clock, Program.over(database.pool, settings, ledger))
    msisdn = f"7701{next(_numbers):07d}"
    texts: dict[int, str] = {}  # message -> text, in the order the subscriber sent them
    smsc, link = SmscModel(), Link()
    node = await rig.node()

    async def deliver(message: int, fate: str) -> None:
        nonlocal node, link
        ack = Acknowledgement(lambda bind=link: bind.open)
        event = MoMessage(msisdn, OTHER, texts[message], 0)
        smsc.queue.remove(message)
        smsc.awaiting[message] = link
        outcome = await node.sink.mo(event, ack)
        assert outcome in ("ignored", "duplicate")
        if fate == "answered":
            ack.answer(True)
            del smsc.awaiting[message]
        elif fate == "lost":  # the bind dropped between the commit and the response
            smsc.drop(link)
            ack.answer(False)
            link = Link()
        elif fate == "held":  # answered later (release), maybe after the bind dropped
            smsc.held.append((ack, link, message))
        else:  # killed after the commit: no response, ever; its lock goes with the process
            # (not within the ms between writing a response and recording it: the
            # ambiguity the rule documents; that the model does not play)
            await node.sink.answers.flush()
            smsc.drop(link)
            smsc.held.clear()
            await node.lock.release()
            node, link = await rig.node(), Link()

    def release() -> None:
        for ack, bind, message in smsc.held:
            ack.answer(bind.open)
            if bind.open:
                del smsc.awaiting[message]
        smsc.held.clear()

    try:
        for op in ops:
            if op[0] == "new":
                texts[len(texts)] = op[1]
                smsc.queue.append(len(texts) - 1)
            elif op[0] == "deliver" and smsc.queue:
                await deliver(smsc.queue[op[1] % len(smsc.queue)], op[2])
            elif op[0] == "drop":
                smsc.drop(link)
                link = Link()
            elif op[0] == "release":
                release()
        release()
        while smsc.queue:  # the SMSC delivers again all it has no ESME_ROK for
            await deliver(smsc.queue[0], "answered")
        rows = await database.pool.fetch(
            "SELECT body, count(*) FROM mo_messages WHERE msisdn = $1 GROUP BY body", msisdn
        )
        sent = collections.Counter(texts.values())
        assert {r["body"]: r["count"] for r in rows} == dict(sent), ops
    finally:
        await node.lock.release()
