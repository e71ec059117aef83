"""Faults: drops with requests outstanding, timeouts, stalls, unbinds from the SMSC,
garbage frames, wrong passwords, reconnects and sequence wrap — over real TCP."""

from __future__ import annotations

import asyncio

import pytest

from smpp.constants import MAX_SEQUENCE, CommandId, Status
from smpp.errors import AuthenticationFailed, NotBound, SessionClosed
from smpp.outcome import Accepted, Unknown
from smpp.pdu import HEADER, ShortMessage, encode_short_message_body
from smpp.ratelimit import Backoff
from smpp.session import Session
from smpp.simulator import SmscSimulator
from smpp.stats import SessionState
from tests.smpp.conftest import DEST, SOURCE, Inbox, SessionFactory, config, part, until


def _submits(sim: SmscSimulator) -> int:
    return len(sim.of_kind(CommandId.SUBMIT_SM))


async def _rebound(session: Session, binds: int) -> None:
    await until(lambda: session.stats.binds >= binds and session.state is SessionState.BOUND)


async def test_disconnect_with_outstanding_requests_gives_unknown_and_no_resend(
    sim: SmscSimulator, bound_session: SessionFactory
) -> None:
    """Requests outstanding when the TCP connection drops become Unknown; none is resent."""
    sim.options.hold_responses = True
    session = await bound_session()
    tasks = [
        asyncio.create_task(session.submit(part(f"m{i}"), source=SOURCE, destination=DEST))
        for i in range(5)
    ]
    await sim.wait_for(lambda: _submits(sim) == 5)
    sim.options.hold_responses = False  # the held responses die with the connection
    sim.drop_all()
    outcomes = await asyncio.gather(*tasks)
    assert all(isinstance(o, Unknown) and "connection lost" in o.reason for o in outcomes)
    assert session.stats.unknown == 5
    await _rebound(session, 2)
    assert isinstance(
        await session.submit(part("after"), source=SOURCE, destination=DEST), Accepted
    )
    texts = [sm.short_message for _, sm in sim.submits()]
    assert texts == [b"m0", b"m1", b"m2", b"m3", b"m4", b"after"]  # nothing sent twice


async def test_disconnect_after_n_pdus(sim: SmscSimulator, bound_session: SessionFactory) -> None:
    """The SMSC closing mid-stream leaves the unanswered submit Unknown, then rebinds."""
    session = await bound_session()
    sim.options.receipts = False  # count submit_sm only
    sim.options.disconnect_after = sim.total_received + 3
    outcomes = [await session.submit(part(), source=SOURCE, destination=DEST) for _ in range(3)]
    assert [type(o) for o in outcomes] == [Accepted, Accepted, Unknown]
    await _rebound(session, 2)
    assert _submits(sim) == 3


async def test_response_timeout_gives_unknown(
    sim: SmscSimulator, bound_session: SessionFactory
) -> None:
    """No submit_sm_resp within response_timeout: Unknown, counted, never resent."""
    sim.options.hold_responses = True
    session = await bound_session(response_timeout=0.2)
    outcome = await session.submit(part(), source=SOURCE, destination=DEST)
    assert isinstance(outcome, Unknown) and outcome.reason == "response timeout"
    assert session.stats.timeouts == 1 and _submits(sim) == 1
    sim.release_held()  # the late response is logged and dropped
    assert await session.enquire_link()
    assert session.stats.unexpected_responses == 1 and session.state is SessionState.BOUND


async def test_stalled_smsc_detected_by_enquire_link(
    sim: SmscSimulator, bound_session: SessionFactory
) -> None:
    """A silent (half-open) SMSC: enquire_link goes unanswered and the session reconnects."""
    session = await bound_session(enquire_link_interval=0.1, enquire_link_timeout=0.2)
    sim.options.stall = True
    await sim.wait_for(lambda: len(sim.of_kind(CommandId.ENQUIRE_LINK)) >= 1)
    sim.options.stall = False
    await _rebound(session, 2)
    assert session.stats.enquire_links_sent >= 1 and session.stats.disconnects >= 1


async def test_unbind_from_smsc_answered_and_rebound(
    sim: SmscSimulator, bound_session: SessionFactory
) -> None:
    """An unbind from the SMSC is answered with unbind_resp; by default the ESME rebinds."""
    session = await bound_session()
    assert await sim.unbind_all() == [Status.ESME_ROK]
    await _rebound(session, 2)
    assert session.stats.unbinds_received == 1
    assert isinstance(await session.submit(part(), source=SOURCE, destination=DEST), Accepted)


async def test_unbind_from_smsc_stops_submitting(
    sim: SmscSimulator, bound_session: SessionFactory
) -> None:
    """With reconnect_on_unbind off, the session closes and submits raise SessionClosed."""
    session = await bound_session(reconnect_on_unbind=False)
    assert await sim.unbind_all() == [Status.ESME_ROK]
    with pytest.raises(SessionClosed):
        await session.submit(part(), source=SOURCE, destination=DEST, bind_timeout=5)
    await until(lambda: session.state is SessionState.CLOSED)
    assert len(sim.of_kind(CommandId.BIND_TRANSCEIVER)) == 1


async def test_unknown_command_gets_generic_nack(
    sim: SmscSimulator, bound_session: SessionFactory
) -> None:
    """A garbage PDU with an unknown command_id is answered with generic_nack; the
    session stays bound."""
    session = await bound_session()
    sim.send_raw(HEADER.pack(20, 0x0000ABCD, 0, 77) + b"junk")
    await sim.wait_for(lambda: bool(sim.of_kind(CommandId.GENERIC_NACK)))
    (nack,) = sim.of_kind(CommandId.GENERIC_NACK)
    assert nack.status == Status.ESME_RINVCMDID and nack.sequence == 77
    assert isinstance(await session.submit(part(), source=SOURCE, destination=DEST), Accepted)
    assert session.stats.binds == 1


async def test_broken_framing_reconnects(sim: SmscSimulator, bound_session: SessionFactory) -> None:
    """A command_length below 16 cannot be resynchronised: nack, reconnect, carry on."""
    session = await bound_session()
    sim.send_raw(HEADER.pack(8, 4, 0, 5))
    await _rebound(session, 2)
    assert session.stats.malformed_pdus == 1
    assert isinstance(await session.submit(part(), source=SOURCE, destination=DEST), Accepted)


async def test_malformed_deliver_sm_rejected(
    sim: SmscSimulator, bound_session: SessionFactory, inbox: Inbox
) -> None:
    """A deliver_sm whose TLV runs past the body gets an error deliver_sm_resp."""
    session = await bound_session()
    body = encode_short_message_body(ShortMessage(short_message=b"x")) + b"\x04\x24\x00\x09ab"
    sim.send_raw(HEADER.pack(16 + len(body), CommandId.DELIVER_SM, 0, 9) + body)
    await sim.wait_for(lambda: bool(sim.of_kind(CommandId.DELIVER_SM_RESP)))
    (resp,) = sim.of_kind(CommandId.DELIVER_SM_RESP)
    assert resp.status == Status.ESME_RINVOPTPARSTREAM and inbox.events == []
    assert session.stats.malformed_pdus == 1 and session.state is SessionState.BOUND


async def test_wrong_password_stops_without_retry(sim: SmscSimulator, inbox: Inbox) -> None:
    """ESME_RINVPASWD stops the session with AuthenticationFailed; it is not retried."""
    session = Session(config(sim.port, password="wrong"), inbox)
    session.start()
    with pytest.raises(SessionClosed) as info:
        async with asyncio.timeout(5):
            await session.wait_bound()
    assert isinstance(info.value.__cause__, AuthenticationFailed)
    assert info.value.__cause__.status == Status.ESME_RINVPASWD
    assert session.state is SessionState.CLOSED and session.stats.bind_failures == 1
    assert len(sim.of_kind(CommandId.BIND_TRANSCEIVER)) == 1
    with pytest.raises(SessionClosed):
        await session.submit(part(), source=SOURCE, destination=DEST)
    await session.close()


async def test_refused_bind_is_retried(sim: SmscSimulator, inbox: Inbox) -> None:
    """A non-credential refusal (here RINVSYSID made non-fatal) is retried with backoff."""
    session = Session(config(sim.port, system_id="other", fatal_bind_statuses=frozenset()), inbox)
    session.start()
    await sim.wait_for(lambda: len(sim.of_kind(CommandId.BIND_TRANSCEIVER)) >= 3)
    assert session.state in (SessionState.BINDING, SessionState.DISCONNECTED)
    await session.close()


async def test_reconnect_after_drop(sim: SmscSimulator, bound_session: SessionFactory) -> None:
    """After a network drop the session rebinds by itself."""
    session = await bound_session()
    sim.drop_all()
    await _rebound(session, 2)
    assert session.stats.disconnects == 1
    assert isinstance(await session.submit(part(), source=SOURCE, destination=DEST), Accepted)


async def test_submit_waits_for_rebind_or_raises_not_bound(
    sim: SmscSimulator, bound_session: SessionFactory
) -> None:
    """A submit while unbound waits for the bind, or raises NotBound after bind_timeout."""
    session = await bound_session(reconnect=Backoff(base=5.0, cap=5.0))
    sim.drop_all()
    await until(lambda: session.state is not SessionState.BOUND)  # the drop is seen
    with pytest.raises(NotBound):
        await session.submit(part(), source=SOURCE, destination=DEST, bind_timeout=0.05)
    assert _submits(sim) == 0


async def test_sequence_numbers_wrap(sim: SmscSimulator, bound_session: SessionFactory) -> None:
    """Sequence numbers run up to 0x7FFFFFFF and wrap to 1."""
    session = await bound_session(first_sequence=MAX_SEQUENCE - 1)
    for _ in range(3):
        assert isinstance(await session.submit(part(), source=SOURCE, destination=DEST), Accepted)
    assert [seq for seq, _ in sim.submits()] == [MAX_SEQUENCE, 1, 2]
    (bind,) = sim.of_kind(CommandId.BIND_TRANSCEIVER)
    assert bind.sequence == MAX_SEQUENCE - 1
