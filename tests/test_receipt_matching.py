"""Receipts matched to their submits at the edges (issue 11): SMSCs that write one id in two
bases, SMSCs that restart and reuse ids, and receipts PostgreSQL cannot store. Real
PostgreSQL, real SMPP over 127.0.0.1 against the simulator."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from structlog.testing import capture_logs

from dispatcher.db import Database
from dispatcher.engine.build import smpp_session_config
from dispatcher.engine.repository import DispatchRepository, ReceiptIn
from dispatcher.engine.sink import ReceiptWriter
from dispatcher.kernel.clock import ManualClock
from dispatcher.settings import Settings, load_settings
from smpp.constants import Status
from smpp.errors import InboundRejected
from smpp.pdu import ShortMessage
from smpp.receipts import IdFormat, format_receipt_text, receipt_for
from smpp.simulator import ID_FORMAT_STYLES, build_parser, options_from_args
from tests.dispatch_helpers import Rig, add_campaign, add_members, dispatch_rig
from tests.test_metrics import metrics_client, scrape, value

NUMBERS = [f"7702{n:07d}" for n in range(1, 31)]
MISMATCHES = [IdFormat.HEX_RESPONSE_DECIMAL_RECEIPT, IdFormat.DECIMAL_RESPONSE_HEX_RECEIPT]


def sim_ids(fmt: IdFormat) -> dict[str, object]:
    """Simulator options that write ids the way an SMSC of ``fmt`` does."""
    response, receipt = ID_FORMAT_STYLES[fmt.value]
    return {"response_id_style": response, "receipt_id_style": receipt}


async def receipt_states_agree(database: Database) -> bool:
    """Every delivery's state is what the receipt sent to its number said (none misapplied)."""
    rows = await database.pool.fetch(
        "SELECT d.state::text AS delivery, r.state::text AS receipt "
        "FROM deliveries d JOIN receipts r ON r.msisdn = d.msisdn"
    )
    return bool(rows) and all(r["delivery"] == r["receipt"] for r in rows)


@pytest.mark.parametrize("mismatch", MISMATCHES, ids=lambda f: f.value)
@pytest.mark.parametrize("setting", ["configured", "auto"])
async def test_ids_in_two_bases_are_matched(
    database: Database, settings: Settings, clock: ManualClock, mismatch: IdFormat, setting: str
) -> None:
    """Hex in submit_sm_resp and decimal in the receipt, or the reverse: with the SMSC's
    format set, and with auto (small sequential ids, where a decimal id is also valid hex),
    every receipt reaches its own message and auto learns the format."""
    await add_members(database, NUMBERS)
    campaign = await add_campaign(database, NUMBERS)
    fmt = mismatch if setting == "configured" else IdFormat.AUTO
    async with dispatch_rig(
        database,
        settings,
        clock,
        sim_options={**sim_ids(mismatch), "receipt_mix": {"DELIVRD": 2.0, "UNDELIV": 1.0}},
        session_options={"id_format": fmt},
    ) as rig:
        await rig.drain()
        await rig.receipts_settled(len(NUMBERS))
        states = await rig.states(campaign)
    assert sum(states.values()) == len(NUMBERS) and set(states) == {"delivered", "undelivered"}
    assert await receipt_states_agree(database)
    row = await database.pool.fetchrow("SELECT setting::text, detected::text FROM smsc_id_formats")
    assert tuple(row) == (fmt.value, mismatch.value if fmt is IdFormat.AUTO else None)
    waiting = "SELECT count(*) FROM receipts WHERE applied_at IS NULL"
    assert await database.pool.fetchval(waiting) == 0


@pytest.mark.parametrize("value", [f.value for f in IdFormat])
def test_id_format_setting_reaches_the_session(value: str) -> None:
    """SMARTD_SMPP_ID_FORMAT sets the SMSC's id format serve binds with; auto by default."""
    configured = smpp_session_config(load_settings({"SMARTD_SMPP_ID_FORMAT": value}))
    assert configured.id_format is IdFormat(value)
    assert smpp_session_config(load_settings({})).id_format is IdFormat.AUTO


@pytest.mark.parametrize("fmt", sorted(ID_FORMAT_STYLES))
def test_simulator_command_line_writes_each_id_format(fmt: str) -> None:
    """`smartd smsc-sim --id-format F` makes the simulator write ids as an SMSC of F does."""
    options = options_from_args(build_parser().parse_args(["--id-format", fmt]))
    assert (options["response_id_style"], options["receipt_id_style"]) == ID_FORMAT_STYLES[fmt]


async def test_unmatched_receipts_and_id_format_are_metrics(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """With as-is set for an SMSC that writes receipt ids in hex, the receipts that match
    nothing are counted in smartd_receipts_unmatched; smartd_smsc_id_format shows the
    setting."""
    numbers = NUMBERS[:12]  # ids 1..12: receipts "a", "b", "c" name no submit as-is
    await add_members(database, numbers)
    await add_campaign(database, numbers)
    async with (
        dispatch_rig(
            database,
            settings,
            clock,
            sim_options=sim_ids(IdFormat.DECIMAL_RESPONSE_HEX_RECEIPT),
            session_options={"id_format": IdFormat.AS_IS},
        ) as rig,
        metrics_client(settings, clock, database, rig.session) as client,
    ):
        await rig.drain()
        await rig.receipts_settled(len(numbers))
        samples = await scrape(client)
    assert value(samples, "smartd_receipts_unmatched", smsc="127.0.0.1") == 3
    labels = {"smsc": "127.0.0.1", "setting": "as-is", "detected": ""}
    assert value(samples, "smartd_smsc_id_format", **labels) == 1


async def restart_smsc(rig: Rig) -> None:
    """The simulator restarts (ids from 1 again); wait until the engine is bound anew."""
    old = list(rig.sim.bound)
    rig.sim.restart()
    await rig.sim.wait_for(lambda: bool(rig.sim.bound) and rig.sim.bound[0] not in old)
    async with asyncio.timeout(5):
        await rig.session.wait_bound()


async def test_smsc_restart_reusing_ids_leaves_finished_messages_alone(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """After an SMSC restart reuses the ids of delivered messages, the new messages are
    recorded and get their own receipts (same id, same state: not taken for a repeat);
    the finished ones are untouched."""
    old_numbers, new_numbers = NUMBERS[:5], NUMBERS[5:10]
    await add_members(database, NUMBERS[:10])
    old = await add_campaign(database, old_numbers)
    async with dispatch_rig(database, settings, clock) as rig:
        await rig.drain()
        await rig.receipts_settled(5)
        assert await rig.states(old) == {"delivered": 5}
        before = await database.pool.fetch("SELECT * FROM submits ORDER BY id")
        await restart_smsc(rig)
        clock.advance(timedelta(minutes=1))
        new = await add_campaign(database, new_numbers)
        await rig.drain()
        await rig.receipts_settled(10)
        assert await rig.states(new) == {"delivered": 5}
        assert await rig.states(old) == {"delivered": 5}
    after = await database.pool.fetch("SELECT * FROM submits ORDER BY id")
    assert after[:5] == before
    assert sorted(r["message_id"] for r in after[5:]) == sorted(r["message_id"] for r in before)
    assert {r["receipt_at"] for r in after[5:]} == {clock.now()}


async def test_smsc_restart_receipts_reach_the_newest_message(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """Messages still waiting for receipts when the SMSC restarts, then a second campaign
    to the same numbers under the same ids: its receipts reach the new messages, never the
    older ones."""
    await add_members(database, NUMBERS[:5])
    old = await add_campaign(database, NUMBERS[:5])
    async with dispatch_rig(database, settings, clock, sim_options={"receipts": False}) as rig:
        await rig.drain()
        await restart_smsc(rig)
        rig.sim.options.receipts = True
        new = await add_campaign(database, NUMBERS[:5])
        await rig.drain()
        assert await database.pool.fetchval("SELECT count(*) FROM submits") == 10
        await rig.receipts_settled(5)
        assert await rig.states(new) == {"delivered": 5}
        assert await rig.states(old) == {"submitted": 5}


def text_receipt(msisdn: str, message_id: str, err: str = "000") -> ShortMessage:
    """A receipt in the text form alone (no TLVs), as some SMSCs send them."""
    text = format_receipt_text(message_id, "DELIVRD", err=err)
    return ShortMessage(source_addr=msisdn, esm_class=0x04, short_message=text.encode("latin-1"))


async def test_one_bad_receipt_is_refused_alone(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """Receipts arriving together, one with a NUL in its id and one with a NUL in its error
    code: the others are applied and answered OK, the bad id is answered once with a
    permanent error and logged once, the bad error code is dropped and its receipt kept."""
    numbers = NUMBERS[:4]
    await add_members(database, numbers)
    campaign = await add_campaign(database, numbers)
    async with dispatch_rig(database, settings, clock, sim_options={"receipts": False}) as rig:
        await rig.drain()
        submits = {sm.destination_addr: sm for _, sm in rig.sim.submits()}
        ids = dict(await database.pool.fetch("SELECT msisdn, message_id FROM submits"))
        pdus = [receipt_for(submits[n], ids[n], "DELIVRD") for n in numbers[:3]]
        pdus.append(text_receipt(numbers[3], ids[numbers[3]], err="0\x0001"))
        pdus.append(text_receipt(NUMBERS[20], "77\x0012"))
        with capture_logs() as logs:
            statuses = await asyncio.gather(*(rig.sim.deliver(sm) for sm in pdus))
        assert statuses == [Status.ESME_ROK] * 4 + [Status.ESME_RX_P_APPN]
        await rig.receipts_settled(4)
        assert await rig.states(campaign) == {"delivered": 4}
        stats = rig.session.stats
        assert (stats.inbound_rejected, stats.handler_errors) == (1, 0)
    rejected = [e for e in logs if e["event"] == "inbound PDU rejected for good"]
    assert len(rejected) == 1 and NUMBERS[20] not in str(rejected[0])
    errors = await database.pool.fetch("SELECT error_code FROM receipts WHERE error_code <> '000'")
    assert [r["error_code"] for r in errors] == ["001"]


async def test_receipt_writer_refuses_a_bad_receipt_alone(
    database: Database, clock: ManualClock
) -> None:
    """A micro-batch with one receipt the database refuses (a NUL in a text) keeps the
    others; only the bad one fails, for good."""
    writer = ReceiptWriter(DispatchRepository(database.pool, "node", "smsc"), clock)
    good = [ReceiptIn(str(n), "delivered", None, None) for n in range(3)]
    bad = ReceiptIn("9", "delivered", "0\x00", None)
    results = await asyncio.gather(
        *(writer.write(r) for r in [*good[:2], bad, good[2]]), return_exceptions=True
    )
    assert results[:2] == [None, None] and results[3] is None
    assert isinstance(results[2], InboundRejected)
    assert writer.committed == 3
    stored = await database.pool.fetch("SELECT message_id FROM receipts ORDER BY message_id")
    assert [r["message_id"] for r in stored] == ["0", "1", "2"]


async def test_repeated_receipts_settle_at_once(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """Every copy of a repeated receipt is kept and settles as a repeat in the same pass:
    nothing waits to be matched again, the part is counted once."""
    await add_members(database, NUMBERS[:5])
    campaign = await add_campaign(database, NUMBERS[:5])
    async with dispatch_rig(
        database, settings, clock, sim_options={"duplicate_receipts": True}
    ) as rig:
        await rig.drain()
        await rig.receipts_settled(10)
        assert await rig.states(campaign) == {"delivered": 5}
    row = await database.pool.fetchrow(
        "SELECT count(*) AS n, count(*) FILTER (WHERE applied_at IS NULL) AS waiting, "
        "bool_and(matched) AS matched FROM receipts"
    )
    assert tuple(row) == (10, 0, True)
    assert await database.pool.fetchval("SELECT sum(parts_done) FROM deliveries") == 5


async def test_late_receipt_after_restart_reaches_its_own_subscriber(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """A receipt an SMSC kept across its restart names an id the new numbering gave to
    another subscriber's message: it reaches the message of the subscriber it names."""
    old_numbers, new_numbers = NUMBERS[:3], NUMBERS[3:6]
    await add_members(database, NUMBERS[:6])
    old = await add_campaign(database, old_numbers)
    async with dispatch_rig(database, settings, clock, sim_options={"receipts": False}) as rig:
        await rig.drain()
        await restart_smsc(rig)
        new = await add_campaign(database, new_numbers)
        await rig.drain()
        owner = await database.pool.fetchval(
            "SELECT msisdn FROM submits WHERE message_id = '1' ORDER BY id LIMIT 1"
        )
        assert owner in old_numbers
        assert await rig.sim.deliver(text_receipt(owner, "1")) == Status.ESME_ROK
        await rig.receipts_settled(1)
        assert await rig.states(old) == {"delivered": 1, "submitted": 2}
        assert await rig.states(new) == {"submitted": 3}
    delivered = "SELECT msisdn FROM deliveries WHERE state = 'delivered'"
    assert await database.pool.fetchval(delivered) == owner


async def test_numberless_receipt_that_beat_its_submit_is_not_taken_for_a_repeat(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """A receipt with no usable source number names an id that an SMSC restart gave again,
    and arrives before the new message's submit_sm_resp is recorded, while only the older,
    finished part holds that id. Without a number it cannot be told from a repeat of that
    part: it waits for one more look instead of settling, and reaches the new message."""
    number = NUMBERS[0]
    await add_members(database, [number])
    old = await add_campaign(database, [number])
    async with dispatch_rig(database, settings, clock) as rig:
        await rig.drain()
        await rig.receipts_settled(1)
        assert await rig.states(old) == {"delivered": 1}
        reused = await database.pool.fetchval("SELECT message_id FROM submits")
        await restart_smsc(rig)
        rig.sim.options.receipts = False
        assert await rig.sim.deliver(text_receipt("", reused)) == Status.ESME_ROK
        await rig.receipts_settled(2)
        new = await add_campaign(database, [number])
        await rig.drain()
        assert (
            await database.pool.fetchval(
                "SELECT count(*) FROM submits WHERE message_id = $1", reused
            )
            == 2
        )
        clock.advance(timedelta(seconds=settings.receipts_recheck + 1))
        await rig.apply_receipts()
        assert await rig.states(new) == {"delivered": 1}
        assert await rig.states(old) == {"delivered": 1}


async def test_numberless_repeat_settles_at_its_second_look(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """A repeat naming no subscriber, of a finished part: not settled at the first look (it
    could be a new message's that beat its submit_sm_resp), settled as a matched repeat at
    the second; the finished part is untouched either way."""
    number = NUMBERS[0]
    await add_members(database, [number])
    campaign = await add_campaign(database, [number])
    async with dispatch_rig(database, settings, clock) as rig:
        await rig.drain()
        await rig.receipts_settled(1)
        part = await database.pool.fetchrow("SELECT message_id, receipt_at FROM submits")
        assert await rig.sim.deliver(text_receipt("", part["message_id"])) == Status.ESME_ROK
        await rig.receipts_settled(2)
        waiting = "SELECT count(*) FROM receipts WHERE applied_at IS NULL"
        assert await database.pool.fetchval(waiting) == 1
        clock.advance(timedelta(seconds=settings.receipts_recheck - 1))
        await rig.apply_receipts()
        assert await database.pool.fetchval(waiting) == 1
        clock.advance(timedelta(seconds=2))
        await rig.apply_receipts()
        assert await database.pool.fetchval(waiting) == 0
        assert await database.pool.fetchval("SELECT bool_and(matched) FROM receipts")
        assert await rig.states(campaign) == {"delivered": 1}
    assert await database.pool.fetchrow("SELECT message_id, receipt_at FROM submits") == part
