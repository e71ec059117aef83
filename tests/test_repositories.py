"""Repositories on a real database: JSON columns round-trip as Python values, MO messages and
USSD menu sessions come back as frozen records."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from campaigns.repository import CampaignRepository
from campaigns.spec import parse_campaign
from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Channel
from dispatcher.program.bonus import BonusLedger
from dispatcher.program.charging import LedgerCharging
from dispatcher.program.events import EventDesk
from dispatcher.program.lookup import subscriber_view
from dispatcher.program.membership import Membership
from dispatcher.program.mo import Answer, MoRepository, ReceivedMo
from dispatcher.program.ussd import UssdSessions
from dispatcher.settings import Settings
from tests.test_campaign_support import info_payload, survey_payload

MSISDN = "77011234567"
OTHER = "77017654321"

#: Every json column, and the JSON type it must hold.
JSON_COLUMNS = [
    ("campaigns", "texts", "object"),
    ("surveys", "questions", "array"),
    ("surveys", "thanks", "object"),
    ("consent_ledger", "evidence", "object"),
    ("dnc_blocks", "evidence", "object"),
    ("subscriber_events", "payload", "object"),
    ("job_runs", "result", "object"),
]


async def _write_every_json_column(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    now = clock.now()
    campaigns = CampaignRepository(database.pool)
    for payload in (info_payload(), survey_payload()):
        await campaigns.create(
            parse_campaign(payload, now, settings.campaign_max_segments), None, now
        )
    ledger = BonusLedger(database.pool, settings, clock, LedgerCharging())
    membership = Membership(settings, ledger)
    async with database.pool.acquire() as conn, conn.transaction():
        await membership.join(conn, MSISDN, Channel.USSD, {"ussd_session": "s1"}, now)
        await membership.dnc_block(conn, OTHER, Channel.SMS, {"mo_message_id": 7}, now)
    desk = EventDesk(database.pool, membership)
    await desk.record("tariff_change", MSISDN, {"tariff": "Smart 2"}, "crm-1", now, now)
    await ledger.grant_month(now)


async def test_json_columns_hold_objects_not_strings(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """Written through the repositories, each json column holds an object or an array, never a
    JSON string (what a pre-serialised parameter would become under the codec)."""
    await _write_every_json_column(database, settings, clock)
    for table, column, expected in JSON_COLUMNS:
        kinds = await database.pool.fetch(
            f"SELECT DISTINCT jsonb_typeof({column}) AS kind FROM {table}"
        )
        assert [k["kind"] for k in kinds] == [expected], (table, column)


async def test_json_values_read_back_as_python_values(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """Campaign texts, survey questions and thanks, and consent evidence come back as the
    dicts and lists that went in."""
    now = clock.now()
    campaigns = CampaignRepository(database.pool)
    spec = parse_campaign(survey_payload(), now, settings.campaign_max_segments)
    created = await campaigns.create(spec, None, now)
    assert spec.survey is not None
    survey = await campaigns.get_survey(created.id)
    assert survey is not None
    assert (survey.questions, survey.thanks) == (spec.survey.questions, spec.survey.thanks)
    stored = await campaigns.get(created.id)
    assert stored is not None and stored.texts == spec.texts
    await _write_every_json_column(database, settings, clock)
    view = await subscriber_view(database.pool, settings, MSISDN, now)
    assert view is not None
    assert [c["evidence"] for c in view["consent"]] == [{"ussd_session": "s1"}]
    assert await database.pool.fetchval("SELECT payload FROM subscriber_events") == {
        "tariff": "Smart 2"
    }


async def test_mo_recorded_and_its_answer_noted(database: Database, clock: ManualClock) -> None:
    """An MO message is recorded as a frozen record, identical ones as rows of their own; an
    unacknowledged copy is found by its key until its answer is recorded; a resend takes it
    over (one generation more), and an earlier generation's answer changes nothing."""
    now = clock.now()
    async with database.pool.acquire() as conn, conn.transaction():
        repo = MoRepository(conn)
        mo = await repo.record("smsc", MSISDN, "5555", "СТОП", "key-1", now, node="n1")
        assert isinstance(mo, ReceivedMo)
        assert (mo.msisdn, mo.destination, mo.body, mo.received_at) == (
            MSISDN,
            "5555",
            "СТОП",
            now,
        )
        with pytest.raises(dataclasses.FrozenInstanceError):
            mo.body = "x"  # type: ignore[misc]
        again = await repo.record("smsc", MSISDN, "5555", "СТОП", "key-1", now, acked_at=now)
        assert again.id != mo.id
        await repo.handled(mo.id, "left", now)
        [copy] = await repo.unacknowledged_copies("key-1", now)
        assert (copy.id, copy.node, copy.generation, copy.lost) == (mo.id, "n1", 0, False)
        await repo.answered([Answer(mo.id, 0, False)], now)
        [lost] = await repo.unacknowledged_copies("key-1", now)
        assert lost.lost
        assert await repo.redelivered(lost, "n2", None) == 1
        assert await repo.redelivered(lost, "n2", None) is None  # taken over already
        await repo.answered([Answer(mo.id, 0, True)], now)  # the first delivery's: too late
        [taken] = await repo.unacknowledged_copies("key-1", now)
        assert (taken.node, taken.generation, taken.lost) == ("n2", 1, False)
        await repo.answered([Answer(mo.id, 1, True)], now)
        assert await repo.unacknowledged_copies("key-1", now) == []
    row = await database.pool.fetchrow(
        "SELECT outcome, handled_at FROM mo_messages WHERE id = $1", mo.id
    )
    assert (row["outcome"], row["handled_at"]) == ("left", now)


async def test_ussd_sessions_put_get_end_expire(database: Database, clock: ManualClock) -> None:
    """A menu session is kept by gateway id, moved, ended, and expired after its TTL."""
    now = clock.now()
    sessions = UssdSessions(database.pool)
    assert await sessions.get("g1") is None
    await sessions.put("g1", MSISDN, "main", now)
    first = await sessions.get("g1")
    assert first is not None and (first.session_id, first.msisdn, first.menu) == (
        "g1",
        MSISDN,
        "main",
    )
    await sessions.put("g1", MSISDN, "bonus", now)
    moved = await sessions.get("g1")
    assert moved is not None and moved.menu == "bonus"
    await sessions.end("g1")
    assert await sessions.get("g1") is None
    await sessions.put("g2", MSISDN, "main", now)
    await sessions.put("g3", OTHER, "main", now + timedelta(minutes=3))
    assert await sessions.expire(now + timedelta(seconds=1)) == 1
    assert await sessions.get("g2") is None and await sessions.get("g3") is not None
