"""A two-question SMS survey end to end: engine, SMSC simulator, MO replies (R13, R7, R11)."""

from __future__ import annotations

from datetime import timedelta

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.program.surveys import timeout_sweep
from dispatcher.settings import Settings
from tests.dispatch_helpers import Rig, dispatch_rig
from tests.factories import campaign_from_spec, members

ANSWERS, SILENT = "77011110001", "77011110002"
SURVEY = {
    "name": "Taste survey",
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
                "options": [
                    {"ru": "1", "kk": "1"},
                    {"ru": "2", "kk": "2"},
                    {"ru": "3+", "kk": "3+"},
                ],
            },
        ],
        "thanks": {"ru": "Спасибо!", "kk": "Рақмет!"},
        "timeout_hours": 24,
    },
}


async def _last_text_to(rig: Rig, msisdn: str) -> str:
    body = await rig.database.pool.fetchval(
        "SELECT body FROM service_messages WHERE msisdn = $1 ORDER BY id DESC LIMIT 1", msisdn
    )
    return str(body)


async def test_two_question_survey_with_bad_answer_and_timeout(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """R13: Q1 goes as the campaign message, a reply brings Q2, a bad answer one re-prompt,
    the last answer a thank-you; the silent number times out; results are counts only."""
    await members(database, [ANSWERS, SILENT])
    await campaign_from_spec(database, SURVEY, [ANSWERS, SILENT], clock.now())
    async with dispatch_rig(database, settings, clock) as rig:
        await rig.drain()
        first = {sm.destination_addr for _, sm in rig.sim.submits()}
        assert first == {ANSWERS, SILENT}
        opened = await database.pool.fetchval(
            "SELECT count(*) FROM survey_sessions WHERE state = 'open'"
        )
        assert opened == 2

        await rig.sim.inject_mo(ANSWERS, settings.short_code, "1")
        assert "чашек" in await _last_text_to(rig, ANSWERS)
        await rig.sim.inject_mo(ANSWERS, settings.short_code, "коньяк")
        assert "чашек" in await _last_text_to(rig, ANSWERS)  # the re-prompt repeats Q2
        await rig.sim.inject_mo(ANSWERS, settings.short_code, "3+")
        assert await _last_text_to(rig, ANSWERS) == "Спасибо!"
        await rig.drain()
        follow_ups = await database.pool.fetch(
            "SELECT kind::text FROM service_messages WHERE msisdn = $1 AND state = 'submitted' "
            "ORDER BY id",
            ANSWERS,
        )
        assert [r["kind"] for r in follow_ups] == [
            "survey_question",
            "survey_reprompt",
            "survey_thanks",
        ]

        clock.advance(timedelta(hours=25))
        assert await timeout_sweep(database.pool, clock.now()) == 1

    states = dict(
        await database.pool.fetch("SELECT msisdn, state::text FROM survey_sessions ORDER BY msisdn")
    )
    assert states == {ANSWERS: "completed", SILENT: "timed_out"}
    answers = await database.pool.fetch(
        "SELECT question_no, option_no FROM survey_answers ORDER BY question_no"
    )
    assert [tuple(r) for r in answers] == [(1, 1), (2, 3)]
    counter = await database.pool.fetchval(
        "SELECT survey_count FROM contact_counters WHERE msisdn = $1", ANSWERS
    )
    assert counter == 1, "R13: one survey counts once however many questions"
