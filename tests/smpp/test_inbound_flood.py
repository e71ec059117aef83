"""An SMSC that floods deliver_sm without waiting for responses (issue 11): the ESME's
inbound work stays bounded — handler tasks, PDUs read and not yet answered — because the
reader stops reading while the backlog is full; and a full backlog never blocks the
submit_sm_resp a handler waits for on the same transceiver."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from smpp.constants import CommandId, Status
from smpp.inbound import MoMessage
from smpp.outcome import Accepted
from smpp.pdu import ShortMessage, encode_short_message
from smpp.ratelimit import ManualMonotonic
from smpp.session import Session
from smpp.simulator import SmscSimulator
from tests.smpp.conftest import DEST, SOURCE, Inbox, config, part, until

HEADER = struct.Struct(">IIII")


def mo_frames(count: int, first_sequence: int = 1000) -> bytes:
    """``count`` one-part MO deliver_sm, written back to back."""
    return b"".join(
        encode_short_message(
            CommandId.DELIVER_SM,
            first_sequence + i,
            ShortMessage(
                source_addr="77011234567", destination_addr="5555", short_message=b"flood %d" % i
            ),
        )
        for i in range(count)
    )


class Watcher(Inbox):
    """An inbox that, at every call, records the inbound work in progress: PDUs read and
    not yet answered, and the asyncio tasks alive."""

    def __init__(self) -> None:
        super().__init__()
        self.session: Session | None = None
        self.max_unanswered = 0
        self.max_tasks = 0
        self.answered = 0
        self.submit_each = False
        self.outcomes: list[object] = []

    async def __call__(self, event: object) -> None:
        session = self.session
        assert session is not None
        stats = session.stats
        refused = getattr(stats, "inbound_refused", 0)  # answered at once, never handled
        unanswered = stats.deliver_sm_received - refused - self.answered
        self.max_unanswered = max(self.max_unanswered, unanswered)
        self.max_tasks = max(self.max_tasks, len(asyncio.all_tasks()))
        await super().__call__(event)  # type: ignore[arg-type]
        await asyncio.sleep(0)
        if self.submit_each:  # a USSD-style handler that answers on the same session
            self.outcomes.append(await session.submit(part(), source=SOURCE, destination=DEST))
        self.answered += 1  # the session answers synchronously after this returns


@asynccontextmanager
async def watched_session(
    sim: SmscSimulator, watcher: Watcher, **overrides: Any
) -> AsyncIterator[Session]:
    """A bound session against ``sim`` whose handler is ``watcher``."""
    clock = overrides.pop("clock", None)
    session = Session(config(sim.port, **overrides), watcher, clock=clock)
    watcher.session = session
    async with session:
        async with asyncio.timeout(5):
            await session.wait_bound()
        yield session


async def test_a_flood_of_deliver_sm_keeps_inbound_work_bounded(
    sim: SmscSimulator,
) -> None:
    """10,000 deliver_sm written without waiting: the reader pauses at the backlog limit
    (PDUs read and not answered never exceed it), handler tasks never exceed the
    concurrency, and every deliver_sm is answered once the handlers run."""
    limit, concurrency, flood = 50, 4, 10_000
    watcher = Watcher()
    watcher.gate = asyncio.Event()
    async with watched_session(
        sim, watcher, inbound_backlog=limit, inbound_concurrency=concurrency
    ) as session:
        await flood_and_release(sim, session, watcher, limit, concurrency, flood)


async def flood_and_release(
    sim: SmscSimulator, session: Session, watcher: Watcher, limit: int, concurrency: int, flood: int
) -> None:
    assert watcher.gate is not None
    sim.wait_timeout = 120.0  # a bound for a hung test, not a speed requirement
    baseline_tasks = len(asyncio.all_tasks())
    sim.send_raw(mo_frames(flood))
    await until(lambda: session.inbound_paused)
    assert session.stats.deliver_sm_received <= limit
    assert session.inbound_backlog == limit
    assert len(asyncio.all_tasks()) <= baseline_tasks + concurrency
    watcher.gate.set()
    await sim.wait_for(lambda: len(sim.of_kind(CommandId.DELIVER_SM_RESP)) == flood)
    assert watcher.max_unanswered <= limit
    assert watcher.max_tasks <= baseline_tasks + concurrency
    assert {r.status for r in sim.of_kind(CommandId.DELIVER_SM_RESP)} == {Status.ESME_ROK}
    assert len(watcher.events) == flood and session.inbound_backlog == 0


async def test_a_full_backlog_never_blocks_submit_responses_on_a_transceiver(
    sim: SmscSimulator,
) -> None:
    """Every handler submits on the same transceiver while the SMSC floods: the reader
    keeps reading the submit_sm_resp it owes them (deliver_sm read meanwhile with the
    backlog full are refused with a temporary error, for the SMSC to send again); no
    submit waits for a timeout (the clock never moves), and the bounds hold."""
    limit, concurrency, flood = 8, 4, 2_000
    sim.options.receipts = False  # the handlers' submits would bring receipts: more work
    watcher = Watcher()
    watcher.submit_each = True
    async with watched_session(
        sim,
        watcher,
        inbound_backlog=limit,
        inbound_concurrency=concurrency,
        clock=ManualMonotonic(),
    ) as session:
        await flood_with_submits(sim, session, watcher, limit, flood)


async def flood_with_submits(
    sim: SmscSimulator, session: Session, watcher: Watcher, limit: int, flood: int
) -> None:
    sim.wait_timeout = 120.0
    sim.send_raw(mo_frames(flood))
    await sim.wait_for(lambda: len(sim.of_kind(CommandId.DELIVER_SM_RESP)) == flood)
    await until(lambda: session.inbound_backlog == 0)
    statuses = [r.status for r in sim.of_kind(CommandId.DELIVER_SM_RESP)]
    assert set(statuses) <= {Status.ESME_ROK, session.config.inbound_full_status}
    assert statuses.count(Status.ESME_ROK) == len(watcher.events) == len(watcher.outcomes)
    assert all(isinstance(o, Accepted) for o in watcher.outcomes)
    assert session.stats.inbound_refused == flood - len(watcher.events)
    assert watcher.max_unanswered <= limit


async def test_queued_events_of_a_lost_connection_are_left_to_the_smsc(
    sim: SmscSimulator,
) -> None:
    """An MO still queued when its connection dies is not handled (nobody could be told);
    the simulator, a store-and-forward SMSC, sends it again on the new bind."""
    watcher = Watcher()
    watcher.gate = asyncio.Event()
    async with watched_session(sim, watcher, inbound_concurrency=1) as session:
        first = asyncio.ensure_future(sim.inject_mo("77011234567", "5555", "one"))
        second = asyncio.ensure_future(sim.inject_mo("77011234567", "5555", "two"))
        await until(lambda: session.inbound_backlog == 2)
        binds = session.stats.binds
        sim.drop_all()
        await until(lambda: session.stats.binds > binds)
        watcher.gate.set()
        await asyncio.gather(first, second, return_exceptions=True)  # both lost in flight
        await sim.wait_for(lambda: len(sim.outbox) == 0)
        assert session.stats.inbound_dropped == 1
        texts = [e.text for e in watcher.events if isinstance(e, MoMessage)]
        assert sorted(texts) == ["one", "one", "two"]  # "one" was being handled: twice
