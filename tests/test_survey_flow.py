"""SMS surveys end to end on a real database: sessions, replies, re-prompt, thanks, timeout,
results as counts only (R11, R13)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from dispatcher.kernel.states import Role
from dispatcher.program.mo import MoRepository
from dispatcher.program.surveys import (
    FirstQuestion,
    handle_reply,
    match_option,
    open_session,
    open_sessions,
    reply,
    timeout_sweep,
    unwait_stale,
)
from tests.test_campaign_support import BASE, action, create, report, survey_payload, upload
from tests.web_helpers import running_api

A, B = "77011234567", "77021234567"


async def _started_survey(api, database) -> tuple[int, dict[str, int]]:
    cid = (await create(api, survey_payload()))["id"]
    await upload(api, cid, f"{A}\n{B}\n".encode())
    assert (await action(api, cid, "start"))[0] == 200
    rows = await database.pool.fetch("SELECT id, msisdn FROM deliveries WHERE campaign_id=$1", cid)
    return cid, {r["msisdn"]: r["id"] for r in rows}


async def _outbox(database, msisdn: str) -> list[tuple[str, str, bool]]:
    rows = await database.pool.fetch(
        "SELECT kind::text, body, in_window FROM service_messages WHERE msisdn=$1 ORDER BY id",
        msisdn,
    )
    return [(r["kind"], r["body"], r["in_window"]) for r in rows]


def test_match_option_by_number_or_text() -> None:
    """A reply matches by number (with '.' or ')') or by option text in any language."""
    options = [{"ru": "Да", "en": "Yes"}, {"ru": "Нет", "en": "No"}]
    assert match_option(" 2. ", options) == 2
    assert match_option("1)", options) == 1
    assert match_option("  нет ", options) == 2
    assert match_option("YES", options) == 1
    assert match_option("3", options) is None and match_option("maybe", options) is None


async def test_survey_campaign_message_is_the_numbered_first_question(
    settings, clock, database
) -> None:
    """The stored campaign text is question 1 with its numbered options."""
    async with running_api(settings, clock, database) as api:
        body = await create(api, survey_payload())
        assert body["texts"]["en"] == "Happy with the network?\n1. Yes\n2. No"


async def test_bad_survey_is_rejected(settings, clock, database) -> None:
    """A survey whose options lack a language, or with no questions, is a 400."""
    payload = survey_payload()
    payload["survey"]["questions"][1]["options"][0] = {"ru": "Да"}
    async with running_api(settings, clock, database) as api:
        response = await api.client.post(BASE, json=payload, headers=api.auth(Role.MARKETER))
        details = (await response.json())["error"]["details"]
        assert response.status == 400 and "question 2" in details["survey"]
        payload["survey"]["questions"] = []
        response = await api.client.post(BASE, json=payload, headers=api.auth(Role.MARKETER))
        assert response.status == 400


async def test_two_questions_reprompt_thanks_and_timeout(settings, clock, database) -> None:
    """A answers 1, then a bad answer (re-prompt), then 'maybe' (thanks); B times out;
    the report and the CSV hold counts only."""
    async with running_api(settings, clock, database) as api:
        cid, deliveries = await _started_survey(api, database)
        now = clock.now()
        async with database.pool.acquire() as conn:
            for msisdn in (A, B):
                assert await open_session(conn, cid, deliveries[msisdn], msisdn, now, language="en")
            assert await open_session(conn, cid, deliveries[A], A, now, language="en") is None

            first = await handle_reply(conn, A, "1", now)
            assert first is not None and (first.kind, first.option_no) == ("answered", 1)
            bad = await handle_reply(conn, A, "banana", now)
            assert bad is not None and bad.kind == "reprompted"
            done = await handle_reply(conn, A, " Maybe ", now)
            assert done is not None and (done.kind, done.option_no) == ("completed", 2)
            assert await handle_reply(conn, A, "1", now) is None  # no open survey any more

        assert await _outbox(database, A) == [
            ("survey_question", "Would you recommend us?\n1. Yes\n2. Maybe\n3. No", True),
            (
                "survey_reprompt",
                "Please reply with the number of your choice (1-3).\n"
                "Would you recommend us?\n1. Yes\n2. Maybe\n3. No",
                True,
            ),
            ("survey_thanks", "Thank you!", False),
        ]
        assert await timeout_sweep(database.pool, now + timedelta(hours=23)) == 0
        assert await timeout_sweep(database.pool, now + timedelta(hours=24)) == 1
        async with database.pool.acquire() as conn:
            assert await handle_reply(conn, B, "1", now + timedelta(hours=25)) is None

        survey = (await report(api, cid))["survey"]
        assert survey["sessions"] == {"open": 0, "completed": 1, "timed_out": 1, "closed": 0}
        counts = [[o["count"] for o in q["options"]] for q in survey["questions"]]
        assert counts == [[1, 0], [0, 1, 0]]

        url = f"{BASE}/{cid}/results.csv?lang=en"
        response = await api.client.get(url, headers=api.auth(Role.ADMIN))  # exact (R11)
        csv_text = await response.text()
        assert response.status == 200 and response.content_type == "text/csv"
        assert csv_text.splitlines()[1:3] == [
            "1,Happy with the network?,1,Yes,1,100.0",
            "1,Happy with the network?,2,No,0,0.0",
        ]
        assert A not in csv_text and B not in csv_text


async def test_second_invalid_answer_closes_the_session(settings, clock, database) -> None:
    """Two invalid replies to one question: one re-prompt, then the session is closed."""
    async with running_api(settings, clock, database) as api:
        cid, deliveries = await _started_survey(api, database)
        now = clock.now()
        async with database.pool.acquire() as conn:
            await open_session(conn, cid, deliveries[A], A, now, language="ru")
            assert (await handle_reply(conn, A, "?", now)).kind == "reprompted"
            assert (await handle_reply(conn, A, "??", now)).kind == "closed"
            assert await handle_reply(conn, A, "1", now) is None
        kinds = [kind for kind, _, _ in await _outbox(database, A)]
        assert kinds == ["survey_reprompt"]
        assert (await report(api, cid))["survey"]["sessions"]["closed"] == 1


async def test_a_new_survey_supersedes_the_open_one(settings, clock, database) -> None:
    """Opening a second survey for a number closes its open session of the first."""
    async with running_api(settings, clock, database) as api:
        first, d1 = await _started_survey(api, database)
        second, d2 = await _started_survey(api, database)
        now = clock.now()
        async with database.pool.acquire() as conn:
            await open_session(conn, first, d1[A], A, now)
            await open_session(conn, second, d2[A], A, now)
            outcome = await handle_reply(conn, A, "2", now)
        assert outcome is not None and outcome.campaign_id == second
        assert (await report(api, first))["survey"]["sessions"]["closed"] == 1


async def test_open_sessions_in_one_batch(settings, clock, database) -> None:
    """A batch opens every session at once; repeating the batch opens nothing more."""
    async with running_api(settings, clock, database) as api:
        cid, deliveries = await _started_survey(api, database)
        batch = [FirstQuestion(cid, deliveries[m], m, "kk") for m in (A, B)]
        async with database.pool.acquire() as conn:
            assert len(await open_sessions(conn, batch, clock.now())) == 2
            assert await open_sessions(conn, batch, clock.now()) == []
            assert await open_sessions(conn, [], clock.now()) == []
        assert (await report(api, cid))["survey"]["sessions"]["open"] == 2


async def _question_in_flight(database, delivery_id: int) -> None:
    await database.pool.execute(
        "UPDATE deliveries SET state = 'in_flight', claimed_by = 'node-1',"
        " cap_month = date_trunc('month', now())::date WHERE id = $1",
        delivery_id,
    )


async def _reply_in_mo_transaction(conn, msisdn: str, text: str, now) -> str:
    """What the MO path does with a reply: the sender's lock first, record, apply, note."""
    repo = MoRepository(conn)
    await repo.lock_sender(msisdn)
    mo = await repo.record("smsc", msisdn, "5555", text, "key", now, acked_at=now)
    outcome = await reply(conn, msisdn, text, now)
    await repo.handled(mo.id, outcome, now)
    return outcome


async def test_reply_before_the_opening_commits_is_applied_by_it(settings, clock, database) -> None:
    """R13 race, reply first: the reply holds the number's lock and finds the question in
    flight (the recording transaction has marked it submitted, not yet committed): it waits,
    and the opening — which needs the same lock — applies it."""
    async with running_api(settings, clock, database) as api:
        cid, deliveries = await _started_survey(api, database)
        await _question_in_flight(database, deliveries[A])
        now = clock.now()
        async with database.pool.acquire() as record, database.pool.acquire() as mo:
            recording = record.transaction()
            await recording.start()
            await record.execute(
                "UPDATE deliveries SET state = 'submitted' WHERE id = $1", deliveries[A]
            )
            async with mo.transaction():
                assert await _reply_in_mo_transaction(mo, A, "1", now) == "waiting"
                # the opening starts while the reply holds the lock: it waits for this commit
                opening = asyncio.create_task(
                    open_sessions(record, [FirstQuestion(cid, deliveries[A], A, "en")], now)
                )
            assert len(await opening) == 1
            await recording.commit()
        outcome = await database.pool.fetchval("SELECT outcome FROM mo_messages")
        assert outcome == "survey_answer"
        row = await database.pool.fetchrow("SELECT question_no FROM survey_sessions")
        assert row["question_no"] == 2


async def test_reply_after_the_opening_took_the_lock_finds_the_session(
    settings, clock, database
) -> None:
    """R13 race, opening first: a reply arriving while the opening transaction holds the
    number's lock waits for its commit and then answers the open session (it is never left
    waiting behind a session that has already read the waiting replies)."""
    async with running_api(settings, clock, database) as api:
        cid, deliveries = await _started_survey(api, database)
        await _question_in_flight(database, deliveries[A])
        now = clock.now()
        async with database.pool.acquire() as record, database.pool.acquire() as mo:
            async with record.transaction():
                await record.execute(
                    "UPDATE deliveries SET state = 'submitted' WHERE id = $1", deliveries[A]
                )
                await open_sessions(record, [FirstQuestion(cid, deliveries[A], A, "en")], now)

                async def replying() -> str:
                    async with mo.transaction():
                        return await _reply_in_mo_transaction(mo, A, "1", now)

                answering = asyncio.create_task(replying())  # waits for the lock
            assert await answering == "survey_answer"
        row = await database.pool.fetchrow("SELECT question_no FROM survey_sessions")
        assert row["question_no"] == 2


async def test_waiting_reply_of_a_question_that_opened_nothing_is_ignored(
    settings, clock, database
) -> None:
    """A reply left waiting by a question that then failed (no session opened) is marked
    ignored by the housekeeping sweep, and only once the question is no longer in flight."""
    async with running_api(settings, clock, database) as api:
        _, deliveries = await _started_survey(api, database)
        await _question_in_flight(database, deliveries[A])
        now = clock.now()
        async with database.pool.acquire() as conn, conn.transaction():
            assert await _reply_in_mo_transaction(conn, A, "1", now) == "waiting"
        assert await unwait_stale(database.pool, now) == 0
        await database.pool.execute(
            "UPDATE deliveries SET state = 'failed', finished_at = $2 WHERE id = $1",
            deliveries[A],
            now,
        )
        assert await unwait_stale(database.pool, now) == 1
        assert await database.pool.fetchval("SELECT outcome FROM mo_messages") == "ignored"
