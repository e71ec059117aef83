"""The SMSC is trusted less (issue 13): a receipt whose source address, once normalised, is
not the number its message went to is counted (metric), logged masked, and refused where
SMARTD_RECEIPT_ADDRESS_CHECK=refuse; a reused message id never finalises another
subscriber's message silently. Real PostgreSQL, real SMPP against the simulator.

Under SMARTD_SMPP_ID_FORMAT=auto, before the SMSC's id format is detected, a receipt is keyed
only by a reading naming a submit to its own subscriber (issue 11): one from another number
waits unmatched (smartd_receipts_unmatched) until the format is known, then is judged here."""

from __future__ import annotations

import dataclasses

import pytest
from structlog.testing import capture_logs

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.logs import mask_personal_data
from dispatcher.settings import Settings
from smpp.constants import Status
from smpp.receipts import IdFormat
from tests.dispatch_helpers import add_campaign, add_members, dispatch_rig
from tests.test_metrics import metrics_client, scrape, value
from tests.test_receipt_matching import NUMBERS, restart_smsc, text_receipt

OWNER, OTHER = NUMBERS[0], NUMBERS[1]


@pytest.mark.parametrize("check", ["count", "refuse"])
async def test_a_receipt_from_another_number_is_counted_logged_and_refused_if_set(
    database: Database, settings: Settings, clock: ManualClock, check: str
) -> None:
    """A receipt naming the message's id but written from another subscriber's number
    (in national form with separators: normalised before comparing)."""
    settings = dataclasses.replace(settings, receipt_address_check=check)
    await add_members(database, [OWNER])
    campaign = await add_campaign(database, [OWNER])
    async with (
        dispatch_rig(
            database,
            settings,
            clock,
            sim_options={"receipts": False},
            session_options={"id_format": IdFormat.AS_IS},  # auto: see the module docstring
        ) as rig,
        metrics_client(settings, clock, database, rig.session) as client,
    ):
        await rig.drain()
        message_id = await database.pool.fetchval("SELECT message_id FROM submits")
        # The owner's own receipt, formatted differently, is no mismatch.
        assert await rig.sim.deliver(text_receipt("8 702 000-00-01", "999")) == Status.ESME_ROK
        other = "8 (702) 000-00-02"
        assert await rig.sim.deliver(text_receipt(other, message_id)) == Status.ESME_ROK
        with capture_logs() as logs:
            await rig.receipts_settled(2)
        states = await rig.states(campaign)
        samples = await scrape(client)
    assert value(samples, "smartd_receipts_address_mismatch", smsc="127.0.0.1") == 1
    warnings = [e for e in logs if e["event"].startswith("receipt source address")]
    assert len(warnings) == 1
    masked = mask_personal_data(None, "warning", dict(warnings[0]))
    assert masked["source_addr"] == "*******0002" and masked["sent_to"] == "*******0001"
    assert masked["refused"] is (check == "refuse")
    row = await database.pool.fetchrow(
        "SELECT matched, applied_at IS NOT NULL AS settled FROM receipts WHERE address_mismatch"
    )
    if check == "refuse":
        assert states == {"submitted": 1}
        assert (row["matched"], row["settled"]) == (False, True)
    else:
        assert states == {"delivered": 1}
        assert (row["matched"], row["settled"]) == (True, True)


async def test_a_reused_id_never_finalises_another_subscribers_message(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """The owner's message is finished (delivered) under id 1; the SMSC restarts and gives
    id 1 to another subscriber's message. A late repeat of the owner's receipt (an
    UNDELIV, from the owner's number) is the owner's repeat: the other message stays
    submitted — it is neither finalised nor counted as a mismatch."""
    await add_members(database, [OWNER, OTHER])
    first = await add_campaign(database, [OWNER])
    async with dispatch_rig(database, settings, clock) as rig:
        await rig.drain()
        await rig.receipts_settled(1)
        assert await rig.states(first) == {"delivered": 1}
        rig.sim.options.receipts = False
        await restart_smsc(rig)
        second = await add_campaign(database, [OTHER])
        await rig.drain()
        ids = await database.pool.fetch("SELECT msisdn, message_id FROM submits ORDER BY id")
        assert [r["message_id"] for r in ids] == ["1", "1"]
        late = text_receipt(OWNER, "1", err="001")
        late = dataclasses.replace(
            late, short_message=late.short_message.replace(b"DELIVRD", b"UNDELIV")
        )
        assert await rig.sim.deliver(late) == Status.ESME_ROK
        await rig.receipts_settled(2)
        assert await rig.states(second) == {"submitted": 1}
        assert await rig.states(first) == {"delivered": 1}
    assert await database.pool.fetchval("SELECT count(*) FROM receipts WHERE address_mismatch") == 0
