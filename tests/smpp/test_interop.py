"""Interoperability with SMPP implementations this project did not write:

* our session against ``smpp34``'s SMSC server (Rust core, from PyPI);
* smpplib's own blocking ``smpplib.client.Client`` (in a thread) against our simulator.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

# smpp34 is in the test extra: a missing install must fail the suite, not skip it.
import smpp34
import smpplib.client
import smpplib.consts

from smpp.constants import CommandId, MessageState
from smpp.inbound import DeliveryReceipt, MoMessage
from smpp.outcome import Accepted
from smpp.session import Session
from smpp.simulator import SmscSimulator
from tests.net import free_port
from tests.smpp.conftest import DEST, SOURCE, Inbox, config, part


class RustSmsc:
    """smpp34.Server accepting every submit_sm and answering with a receipt."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server = smpp34.Server("127.0.0.1", self.port, system_id="RUSTSMSC")
        self.esmes: dict[str, Any] = {}
        self.submits: list[Any] = []
        self._count = 0
        self._tasks: set[asyncio.Task[Any]] = set()

    async def serve(self) -> None:
        while True:
            event = await self.server.next()
            if isinstance(event, smpp34.Esme):
                self.esmes[event.session_id] = event
            elif isinstance(event, smpp34.SubmitSmEvent):
                self._on_submit(event)

    def _on_submit(self, event: Any) -> None:
        self._count += 1
        message_id = f"R{self._count:04d}"
        self.submits.append(event)
        event.accept(message_id)
        receipt = self.esmes[event.session_id].deliver_sm(
            event.source_addr,
            b"id:%s stat:DELIVRD err:000" % message_id.encode(),
            source_addr=event.destination_addr,
            esm_class=0x04,
            tlvs=[
                smpp34.Tlv(smpp34.TLV_RECEIPTED_MESSAGE_ID, message_id.encode() + b"\x00"),
                smpp34.Tlv(smpp34.TLV_MESSAGE_STATE, bytes((MessageState.DELIVERED,))),
            ],
        )
        task = asyncio.ensure_future(receipt)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


@pytest.fixture
async def rust_smsc() -> AsyncIterator[RustSmsc]:
    smsc = RustSmsc()
    await smsc.server.start()
    serving = asyncio.create_task(smsc.serve())
    yield smsc
    serving.cancel()
    await smsc.server.stop()


async def test_session_against_smpp34_server(rust_smsc: RustSmsc, inbox: Inbox) -> None:
    """Our session binds to smpp34's server, submits, gets ids, receipts and an MO."""
    async with Session(config(rust_smsc.port, unbind_timeout=0.5), inbox) as session:
        async with asyncio.timeout(5):
            await session.wait_bound()
        outcomes = await asyncio.gather(
            *(session.submit(part(f"msg {i}"), source=SOURCE, destination=DEST) for i in range(5))
        )
        assert all(isinstance(o, Accepted) for o in outcomes)
        receipts = await inbox.wait(5)
        assert {r.message_id for r in receipts if isinstance(r, DeliveryReceipt)} == {
            o.message_id for o in outcomes if isinstance(o, Accepted)
        }
        assert sorted(e.short_message for e in rust_smsc.submits) == [
            f"msg {i}".encode() for i in range(5)
        ]
        (esme,) = rust_smsc.esmes.values()
        response = await esme.deliver_sm("1204", b"STOP", source_addr="77011234567")
        assert response.is_success
        mo = (await inbox.wait(6))[-1]
        assert isinstance(mo, MoMessage) and mo.text == "STOP"


def _smpplib_client_run(port: int) -> dict[str, Any]:
    """Blocking smpplib session: bind, submit, read response and receipt, unbind."""
    seen: dict[str, Any] = {"sent": [], "received": []}
    client = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)
    client.set_message_sent_handler(lambda pdu: seen["sent"].append(pdu.message_id))
    client.set_message_received_handler(lambda pdu: seen["received"].append(pdu))
    client.connect()
    try:
        client.bind_transceiver(system_id="esme", password="secret")
        client.send_message(
            source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
            source_addr="SMART",
            dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
            destination_addr="77011234567",
            short_message=b"hello from smpplib",
            registered_delivery=1,
        )
        while not (seen["sent"] and seen["received"]):
            client.read_once()
        client.unbind()
    finally:
        client.disconnect()
    return seen


async def test_smpplib_client_against_simulator(sim: SmscSimulator) -> None:
    """smpplib's blocking Client binds to our simulator, submits, gets a receipt, unbinds."""
    sim.options.response_id_style = "hex"
    seen = await asyncio.wait_for(asyncio.to_thread(_smpplib_client_run, sim.port), 10)
    assert seen["sent"] == [b"1"]
    (receipt,) = seen["received"]
    assert receipt.receipted_message_id.rstrip(b"\x00") == b"1"
    assert b"stat:DELIVRD" in receipt.short_message
    ((_, sm),) = sim.submits()
    assert sm.short_message == b"hello from smpplib" and sm.registered_delivery == 1
    assert len(sim.of_kind(CommandId.UNBIND)) == 1
    assert len(sim.of_kind(CommandId.DELIVER_SM_RESP)) == 1
