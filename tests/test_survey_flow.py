"""SMS surveys end to end on a real database: sessions, replies, re-prompt, thanks, timeout,
results as counts only (R11, R13)."""

from __future__ import annotations

from datetime import timedelta

from dispatcher.kernel.states import Role
from dispatcher.program.surveys import handle_reply, match_option, open_session, timeout_sweep
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
        response = await api.client.get(url, headers=api.auth(Role.VIEWER))
        csv_text = await response.text()
        assert response.status == 200 and response.content_type == "text/csv"
        assert csv_text.splitlines()[1:3] == [
            "1,Happy with the network?,1,Yes,1",
            "1,Happy with the network?,2,No,0",
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
    from dispatcher.program.surveys import FirstQuestion, open_sessions

    async with running_api(settings, clock, database) as api:
        cid, deliveries = await _started_survey(api, database)
        batch = [FirstQuestion(cid, deliveries[m], m, "kk") for m in (A, B)]
        async with database.pool.acquire() as conn:
            assert len(await open_sessions(conn, batch, clock.now())) == 2
            assert await open_sessions(conn, batch, clock.now()) == []
            assert await open_sessions(conn, [], clock.now()) == []
        assert (await report(api, cid))["survey"]["sessions"]["open"] == 2
