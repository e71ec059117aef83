"""A two-question SMS survey end to end: engine, SMSC simulator, MO replies (R13, R7, R11)."""

from __future__ import annotations

import asyncio
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


async def _answers(database: Database) -> list[tuple[int, int]]:
    rows = await database.pool.fetch(
        "SELECT question_no, option_no FROM survey_answers ORDER BY question_no"
    )
    return [(r["question_no"], r["option_no"]) for r in rows]


async def test_the_same_answer_twice_answers_both_questions(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """R13, invariant 4: `1` to question 1 and `1` again to question 2, minutes apart, are
    two answers (not an SMSC resend): the survey completes."""
    await members(database, [ANSWERS])
    await campaign_from_spec(database, SURVEY, [ANSWERS], clock.now())
    async with dispatch_rig(database, settings, clock) as rig:
        await rig.drain()
        assert await rig.sim.inject_mo(ANSWERS, settings.short_code, "1") == [0]
        clock.advance(timedelta(minutes=2))
        assert await rig.sim.inject_mo(ANSWERS, settings.short_code, "1") == [0]
    assert await _answers(database) == [(1, 1), (2, 1)]
    state = await database.pool.fetchval("SELECT state::text FROM survey_sessions")
    assert state == "completed"
    assert await _last_text_to(rig, ANSWERS) == "Спасибо!"


async def test_a_reply_before_the_session_opened_is_applied(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """R13: a reply that arrives while the first question is in flight (its submit_sm_resp not
    yet recorded, so no session is open) waits, and the transaction that opens the session
    applies it: the subscriber gets question 2."""
    await members(database, [ANSWERS])
    await campaign_from_spec(database, SURVEY, [ANSWERS], clock.now())
    async with dispatch_rig(database, settings, clock, sim_options={"hold_responses": True}) as rig:
        sending = asyncio.create_task(rig.dispatcher.run_once())
        await rig.sim.wait_for(lambda: len(rig.sim.submits()) == 1)
        assert await rig.sim.inject_mo(ANSWERS, settings.short_code, "1") == [0]
        waiting = await database.pool.fetchval("SELECT outcome FROM mo_messages")
        assert waiting == "waiting"
        rig.sim.options.hold_responses = False
        assert rig.sim.release_held() == 1
        assert await sending == 1
    assert await _answers(database) == [(1, 1)]
    session = await database.pool.fetchrow("SELECT state::text, question_no FROM survey_sessions")
    assert (session["state"], session["question_no"]) == ("open", 2)
    assert "чашек" in await _last_text_to(rig, ANSWERS)
    assert await database.pool.fetchval("SELECT outcome FROM mo_messages") == "survey_answer"
