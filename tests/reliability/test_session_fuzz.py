"""Hypothesis fuzz of a live, bound SMPP session (invariant 6): random, mutated, truncated
and oversized frames written by the SMSC simulator. No crash, no hang: after every example
the same session submits and takes an MO again (on this connection or after reconnecting)."""

from __future__ import annotations

import asyncio
import random
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from smpp.constants import CommandId
from smpp.outcome import Accepted
from smpp.pdu import ShortMessage, encode_short_message
from smpp.session import Session
from smpp.simulator import SimulatorOptions, SmscSimulator
from smpp.stats import SessionState
from tests.smpp.conftest import DEST, SOURCE, Inbox, config, part

HEADER = struct.Struct(">IIII")
DELIVER = encode_short_message(
    CommandId.DELIVER_SM,
    9,
    ShortMessage(
        source_addr="77011234567",
        destination_addr="5555",
        esm_class=0x40,
        short_message=bytes.fromhex("050003070201") + b"STOP",
        tlvs={0x0424: b"", 0x020C: b"\x00\x07"},
    ),
)
RECEIPT = encode_short_message(
    CommandId.DELIVER_SM,
    10,
    ShortMessage(
        source_addr="77011234567",
        destination_addr="5555",
        esm_class=0x04,
        short_message=b"id:1 sub:001 dlvrd:001 submit date:2611231200 done date:2611231200 "
        b"stat:DELIVRD err:000 text:",
        tlvs={0x001E: b"1\x00", 0x0427: b"\x02"},
    ),
)
SEEDS = [
    DELIVER,
    RECEIPT,
    HEADER.pack(16, CommandId.ENQUIRE_LINK, 0, 3),
    HEADER.pack(22, CommandId.SUBMIT_SM_RESP, 0, 123456) + b"abcde\x00",  # nobody asked
    HEADER.pack(16, CommandId.GENERIC_NACK, 8, 4),
    HEADER.pack(16, 0x0000ABCD, 0, 5),
]


@st.composite
def hostile_frames(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["random", "mutated", "truncated", "oversized", "seed"]))
    event(kind)
    if kind == "random":
        return draw(st.binary(min_size=1, max_size=200))
    frame = bytearray(draw(st.sampled_from(SEEDS)))
    if kind == "truncated":  # the length promises more than ever comes
        return bytes(frame[: draw(st.integers(1, len(frame) - 1))])
    if kind == "oversized":
        length = draw(st.sampled_from([0x7FFFFFFF, 0xFFFFFFFF, 70_000, 1 << 20]))
        return struct.pack(">I", length) + bytes(frame[4:])
    if kind == "mutated":
        for _ in range(draw(st.integers(1, 6))):
            pos = draw(st.integers(16, max(16, len(frame) - 1)))
            action = draw(st.sampled_from(["flip", "cut", "insert"]))
            if action == "flip" and pos < len(frame):
                frame[pos] = draw(st.integers(0, 255))
            elif action == "cut":
                del frame[pos:]
            else:
                frame[pos:pos] = draw(st.binary(max_size=8))
        frame[0:4] = len(frame).to_bytes(4, "big")  # framing intact: the body is hostile
    return bytes(frame)


@dataclass
class Live:
    sim: SmscSimulator
    session: Session
    inbox: Inbox


@pytest.fixture
async def live() -> AsyncIterator[Live]:
    sim = SmscSimulator(SimulatorOptions(credentials={"esme": "secret"}, seed=1))
    await sim.start()
    inbox = Inbox()
    session = Session(
        config(
            sim.port,
            response_timeout=1.0,
            enquire_link_interval=0.2,
            enquire_link_timeout=0.3,
        ),
        inbox,
    )
    session.start()
    async with asyncio.timeout(5):
        await session.wait_bound()
    yield Live(sim, session, inbox)
    async with asyncio.timeout(10):
        await session.close()
    await sim.stop()


async def _still_serving(live: Live) -> None:
    """A submit is accepted and an MO acknowledged, within 5 s (a reconnect included)."""
    async with asyncio.timeout(5):
        while True:
            await live.session.wait_bound()
            outcome = await live.session.submit(part("probe"), source=SOURCE, destination=DEST)
            if isinstance(outcome, Accepted):
                break  # an Unknown: the stream was desynchronised; the session resyncs
        before = len(live.inbox.events)
        while True:
            try:
                statuses = await live.sim.inject_mo("77019876543", "5555", "probe")
            except (RuntimeError, asyncio.CancelledError, TimeoutError):
                statuses = [-1]  # no receiver bound at this instant
            if statuses == [0]:
                break
            await live.session.wait_bound()
        assert len(live.inbox.events) > before


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frames=st.lists(hostile_frames(), min_size=1, max_size=4))
async def test_hostile_frames_never_stop_a_live_session(live: Live, frames: list[bytes]) -> None:
    """Whatever the SMSC writes, the session neither crashes nor hangs and keeps serving."""
    live.sim.send_raw(b"".join(frames))
    if any(f[:4] != len(f).to_bytes(4, "big") for f in frames):
        # A frame that lies about its length: the SMSC would close; until then the session
        # waits for the rest (its enquire_link notices a desynchronised stream too).
        live.sim.drop_all()
    await _still_serving(live)
    assert live.session.state is not SessionState.CLOSED
    event(f"binds so far: {'1' if live.session.stats.binds == 1 else 'more'}")


async def test_a_deliver_sm_flood_of_garbage_bodies_is_answered(live: Live) -> None:
    """200 deliver_sm with bodies of random bytes: each gets a deliver_sm_resp, the session
    stays bound on the same connection."""
    rng = random.Random(5)
    binds = live.session.stats.binds
    for seq in range(1000, 1200):
        body = rng.randbytes(rng.randrange(0, 60))
        live.sim.send_raw(HEADER.pack(16 + len(body), CommandId.DELIVER_SM, 0, seq) + body)
    await live.sim.wait_for(lambda: len(live.sim.of_kind(CommandId.DELIVER_SM_RESP)) >= 200)
    assert live.session.stats.binds == binds
    await _still_serving(live)
