"""Subscribers over SMPP: MO STOP / 1204 / HELP and USSD indications (R2, R9, issue 4)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dispatcher.db import Database
from dispatcher.engine.sink import receipt_in
from dispatcher.kernel.clock import ManualClock
from dispatcher.settings import ASTANA, Settings
from smpp.constants import Tag
from smpp.inbound import to_receipt
from smpp.pdu import ShortMessage
from smpp.receipts import IdFormat, format_receipt_text
from tests.dispatch_helpers import add_campaign, add_members, dispatch_rig

MSISDN = "77013334455"


async def test_stop_by_sms_leaves_and_suppresses(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """R2: 'стоп' to the short code leaves SMART before deliver_sm_resp; queued SMART messages
    are suppressed and a leave confirmation is queued."""
    await add_members(database, [MSISDN])
    campaign = await add_campaign(database, [MSISDN])
    async with dispatch_rig(database, settings, clock) as rig:
        statuses = await rig.sim.inject_mo(MSISDN, settings.short_code, "  стоп ")
        assert statuses == [0]
        assert await rig.states(campaign) == {"opted_out": 1}
        kinds = await database.pool.fetch("SELECT kind::text FROM service_messages")
        assert [r["kind"] for r in kinds] == ["leave_confirmation"]
        mo = await database.pool.fetchrow("SELECT outcome, handled_at FROM mo_messages")
        assert mo["outcome"] == "left" and mo["handled_at"] == clock.now()


async def test_text_to_1204_blocks_and_a_second_one_changes_nothing(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """R9: anything texted to 1204 blocks telemarketing; the subscriber's second identical
    text (acknowledged, so not a resend: tests/test_mo_resend.py) is recorded and blocks
    nothing more."""
    await add_members(database, [MSISDN])
    async with dispatch_rig(database, settings, clock) as rig:
        await rig.sim.inject_mo(MSISDN, settings.dnc_code, "не звоните")
        await rig.sim.inject_mo(MSISDN, settings.dnc_code, "не звоните")
    assert await database.pool.fetchval("SELECT count(*) FROM dnc_blocks") == 1
    assert await database.pool.fetchval("SELECT count(*) FROM mo_messages") == 2
    events = await database.pool.fetch("SELECT event::text FROM consent_ledger ORDER BY id")
    assert [r["event"] for r in events] == ["dnc_blocked", "left"]


async def test_help_answers_outside_the_window(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """HELP is answered with the codes, also at night: a subscriber-initiated service message
    is not bound to the send window, while a bonus notice waits for it (R8)."""
    clock.set(datetime(2026, 11, 23, 18, 0, tzinfo=UTC))  # 23:00 Astana
    await database.pool.execute(
        "INSERT INTO service_messages (msisdn, kind, body, in_window) "
        "VALUES ($1, 'bonus_notice', 'bonus', true)",
        MSISDN,
    )
    async with dispatch_rig(database, settings, clock) as rig:
        await rig.sim.inject_mo(MSISDN, settings.short_code, "help")
        await rig.drain()
        assert {sm.destination_addr for _, sm in rig.sim.submits()} == {MSISDN}
    states = dict(await database.pool.fetch("SELECT kind::text, state::text FROM service_messages"))
    assert states == {"help": "submitted", "bonus_notice": "queued"}
    body = await database.pool.fetchval("SELECT body FROM service_messages WHERE kind = 'help'")
    assert "*555*1#" in body


async def test_ussd_over_smpp_is_answered_with_response_op(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """A USSD indication *555*1# over SMPP joins and is answered by submit_sm carrying
    ussd_service_op 17 (PSSR response) and the session info."""
    async with dispatch_rig(database, settings, clock) as rig:
        status = await rig.sim.inject_ussd(
            MSISDN, settings.short_code, "*555*1#", session_info=b"\x00\x07"
        )
        assert status == 0
        await rig.sim.wait_for(lambda: len(rig.sim.submits()) == 1)
        [(_, reply)] = rig.sim.submits()
        assert reply.tlvs[Tag.USSD_SERVICE_OP] == bytes((17,))
        assert reply.tlvs[Tag.ITS_SESSION_INFO] == b"\x00\x07"
        assert reply.destination_addr == MSISDN
    assert await database.pool.fetchval("SELECT count(*) FROM memberships") == 1


@pytest.mark.parametrize(
    ("done_date", "done_at"),
    [
        ("2611231201", datetime(2026, 11, 23, 7, 1, tzinfo=UTC)),  # 12:01 Astana
        ("", None),
        ("2611231299", None),
    ],
)
def test_receipt_done_date_is_stored(done_date: str, done_at: datetime | None) -> None:
    """A receipt's done date is kept, read in the SMSC's time zone; a missing or malformed
    one is None and the receipt is kept all the same."""
    text = format_receipt_text("abc", "DELIVRD", done_date=done_date)
    event = to_receipt(ShortMessage(esm_class=0x04, short_message=text.encode()), IdFormat.AS_IS)
    receipt = receipt_in(event, ASTANA)
    assert (receipt.message_id, receipt.state, receipt.done_at) == ("abc", "delivered", done_at)
