"""A survey's timeout runs from when its last question was SENT (R13; issue 12): a follow-up
question held overnight for the send window (R8) gets the whole timeout once the subscriber
receives it, not what is left of 24 hours counted from their reply."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.settings import Settings
from tests.dispatch_helpers import Rig, dispatch_rig
from tests.factories import campaign_from_spec, members, subscribers

PATIENT, SILENT = "77019990001", "77019990002"
SURVEY = {
    "name": "Evening survey",
    "kind": "survey",
    "scope": "smart",
    "survey": {
        "questions": [
            {
                "texts": {"ru": "Вам нравится кофе?", "kk": "Сізге кофе ұнай ма?"},
                "options": [{"ru": "Да", "kk": "Иә"}, {"ru": "Нет", "kk": "Жоқ"}],
            },
            {
                "texts": {"ru": "Сколько чашек в день?", "kk": "Күніне неше кесе?"},
                "options": [{"ru": "1", "kk": "1"}, {"ru": "2+", "kk": "2+"}],
            },
        ],
        "thanks": {"ru": "Спасибо!", "kk": "Рақмет!"},
        "timeout_hours": 24,
    },
}
EVENING = datetime(2026, 11, 23, 15, 55, tzinfo=UTC)  # 20:55 Astana, 5 min before the close
NEXT_OPEN = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)  # 10:00 Astana, the next window


async def _submitted_to(rig: Rig) -> list[str]:
    return [sm.destination_addr for _, sm in rig.sim.submits()]


async def _sent_at(database: Database, kind: str) -> dict[str, datetime]:
    """When each number's service message of ``kind`` was submitted to the SMSC."""
    rows = await database.pool.fetch(
        "SELECT msisdn, submitted_at FROM service_messages WHERE kind = $1::service_kind",
        kind,
    )
    return {r["msisdn"]: r["submitted_at"] for r in rows}


async def _states(database: Database) -> dict[str, str]:
    rows = await database.pool.fetch("SELECT msisdn, state::text FROM survey_sessions")
    return {r["msisdn"]: r["state"] for r in rows}


async def test_a_question_held_overnight_gets_the_whole_timeout(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """Both answer question 1 just before 21:00; question 2 waits for 10:00 and goes then.
    Eleven hours after that (past 24 h from the replies) both sessions are still open; one
    answers at 23:59 after question 2 was sent and completes, the silent one times out at
    24:00 after it, not before."""
    clock.set(EVENING)
    await members(database, [PATIENT, SILENT])
    await subscribers(database, [PATIENT, SILENT], language="ru")
    await campaign_from_spec(database, SURVEY, [PATIENT, SILENT], clock.now())
    async with dispatch_rig(database, settings, clock) as rig:
        await rig.drain()
        assert sorted(await _submitted_to(rig)) == [PATIENT, SILENT]

        clock.set(EVENING + timedelta(minutes=4, seconds=30))  # 20:59:30
        for msisdn in (PATIENT, SILENT):
            await rig.sim.inject_mo(msisdn, settings.short_code, "1")
        clock.set(EVENING + timedelta(minutes=5))  # 21:00: the window closed
        await rig.drain()
        assert len(await _submitted_to(rig)) == 2, "question 2 waits for the window"

        clock.set(NEXT_OPEN)
        await rig.drain()
        sent = NEXT_OPEN
        assert await _sent_at(database, "survey_question") == {PATIENT: sent, SILENT: sent}

        # 24 hours and a minute after the replies: the old rule had closed both by now.
        clock.set(EVENING + timedelta(hours=24, minutes=6))
        await rig.engine.housekeeping.run_once()
        assert await _states(database) == {PATIENT: "open", SILENT: "open"}

        clock.set(sent + timedelta(hours=24) - timedelta(seconds=1))
        await rig.engine.housekeeping.run_once()
        assert await _states(database) == {PATIENT: "open", SILENT: "open"}
        await rig.sim.inject_mo(PATIENT, settings.short_code, "2")

        clock.set(sent + timedelta(hours=24))
        await rig.engine.housekeeping.run_once()
        assert await _states(database) == {PATIENT: "completed", SILENT: "timed_out"}
    answers = await database.pool.fetch(
        "SELECT question_no, option_no, count(*) FROM survey_answers GROUP BY 1, 2 ORDER BY 1, 2"
    )
    assert [tuple(r) for r in answers] == [(1, 1, 2), (2, 2, 1)]


async def test_a_reprompt_restarts_the_timeout_when_sent(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """An invalid reply just before the close queues a re-prompt that waits for the window;
    the session's timeout runs from the re-prompt's send at 10:00."""
    clock.set(EVENING)
    await members(database, [PATIENT])
    await campaign_from_spec(database, SURVEY, [PATIENT], clock.now())
    async with dispatch_rig(database, settings, clock) as rig:
        await rig.drain()
        clock.set(EVENING + timedelta(minutes=4, seconds=30))
        await rig.sim.inject_mo(PATIENT, settings.short_code, "maybe")
        clock.set(EVENING + timedelta(minutes=5))  # 21:00: the window closed
        await rig.drain()
        assert await _sent_at(database, "survey_reprompt") == {PATIENT: None}
        clock.set(NEXT_OPEN)
        await rig.drain()
        assert await _sent_at(database, "survey_reprompt") == {PATIENT: NEXT_OPEN}
        clock.set(NEXT_OPEN + timedelta(hours=23, minutes=59))
        await rig.engine.housekeeping.run_once()
        assert await _states(database) == {PATIENT: "open"}
        clock.set(NEXT_OPEN + timedelta(hours=24))
        await rig.engine.housekeeping.run_once()
        assert await _states(database) == {PATIENT: "timed_out"}
