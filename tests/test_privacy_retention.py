"""R11 (issue 13): a survey's answers cannot be linked to a number once its session closed,
and subscribers' SMS and sessions' numbers are kept only as long as their retention says."""

from __future__ import annotations

from datetime import timedelta

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.program import retention
from dispatcher.settings import Settings
from tests.dispatch_helpers import dispatch_rig
from tests.factories import campaign_from_spec, members
from tests.test_dispatch_survey import ANSWERS, SILENT, SURVEY

LINKED = """
SELECT count(*) FROM survey_answers a
JOIN survey_sessions s ON s.id = a.session_id
"""


async def test_a_closed_sessions_answers_name_no_session_and_its_reply_no_text(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """While the session is open its answers name it (the flow needs it); at the close they
    keep their survey and day only, and the MO replies that carried them keep no text."""
    await members(database, [ANSWERS, SILENT])
    await campaign_from_spec(database, SURVEY, [ANSWERS, SILENT], clock.now())
    async with dispatch_rig(database, settings, clock) as rig:
        await rig.drain()
        await rig.sim.inject_mo(ANSWERS, settings.short_code, "1")
        await rig.drain()
        assert await database.pool.fetchval(LINKED) == 1, "open: the answer names its session"
        await rig.sim.inject_mo(ANSWERS, settings.short_code, "3")
        await rig.drain()
    rows = await database.pool.fetch(
        "SELECT session_id, survey_id, question_no, option_no, answered_at FROM survey_answers "
        "ORDER BY question_no"
    )
    assert [(r["question_no"], r["option_no"]) for r in rows] == [(1, 1), (2, 3)]
    assert all(r["session_id"] is None and r["survey_id"] is not None for r in rows)
    day = clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
    assert {r["answered_at"] for r in rows} == {day}, "the time of an answer finds its MO"
    assert await database.pool.fetchval(LINKED) == 0
    texts = await database.pool.fetch(
        "SELECT body FROM mo_messages WHERE outcome = 'survey_answer'"
    )
    assert [r["body"] for r in texts] == ["", ""]


async def test_retention_sweep_keeps_recent_rows_and_removes_old_ones(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """Housekeeping deletes MO older than mo_retention_days and erases the number of a
    session closed longer than survey_session_retention_days ago — nothing younger: not the
    copies the MO resend rule looks at (one hour), not a session closed more recently. The
    results still count the sessions."""
    await members(database, [ANSWERS, SILENT])
    await campaign_from_spec(database, SURVEY, [ANSWERS, SILENT], clock.now())
    async with dispatch_rig(database, settings, clock) as rig:
        await rig.drain()
        await rig.sim.inject_mo(ANSWERS, settings.short_code, "1")
        await rig.sim.inject_mo(ANSWERS, settings.short_code, "2")
        await rig.drain()
        before = await database.pool.fetchval("SELECT count(*) FROM mo_messages")
        assert before == 2

        clock.advance(timedelta(days=settings.mo_retention_days) - timedelta(minutes=1))
        await rig.engine.housekeeping.run_once()  # the silent session times out meanwhile
        assert await database.pool.fetchval("SELECT count(*) FROM mo_messages") == before
        assert (
            await database.pool.fetchval("SELECT count(*) FROM survey_sessions WHERE msisdn <> ''")
            == 2
        )

        clock.advance(timedelta(minutes=2))
        # A free-text SMS just received, not yet acknowledged: what the resend rule reads.
        await database.pool.execute(
            "INSERT INTO mo_messages (smsc, msisdn, destination, body, dedupe_key, "
            "received_at) VALUES ('s', $1, '5555', 'fresh', 'f', $2)",
            SILENT,
            clock.now() - timedelta(minutes=30),
        )
        assert await rig.engine.housekeeping.run_once() == 3  # 2 MO + the completed session
        bodies = await database.pool.fetch("SELECT body FROM mo_messages")
        assert [r["body"] for r in bodies] == ["fresh"]
        numbers = await database.pool.fetch(
            "SELECT msisdn, delivery_id, state::text FROM survey_sessions ORDER BY state"
        )
        # The completed session is anonymous ('': erased, migration 0024); the one timed out
        # just now keeps its number.
        first = numbers[0]
        assert (first["msisdn"], first["delivery_id"], first["state"]) == ("", None, "completed")
        assert numbers[1]["msisdn"] == SILENT
        clock.advance(timedelta(days=settings.survey_session_retention_days))
        await rig.engine.housekeeping.run_once()
        assert (
            await database.pool.fetchval("SELECT count(*) FROM survey_sessions WHERE msisdn <> ''")
            == 0
        )
        assert await rig.engine.housekeeping.run_once() == 0
    counts = await database.pool.fetch(
        "SELECT state::text, count(*) AS n FROM survey_sessions GROUP BY 1 ORDER BY 1"
    )
    assert [(r["state"], r["n"]) for r in counts] == [("completed", 1), ("timed_out", 1)]


async def test_sweep_works_in_bounded_batches_through_the_time_index(
    database: Database, clock: ManualClock
) -> None:
    """A backlog goes batch by batch (the runner calls again while a pass found work), and
    each statement finds its rows through the index on the time column."""
    old = clock.now() - timedelta(days=200)
    await database.pool.execute(
        "INSERT INTO mo_messages (smsc, msisdn, destination, body, dedupe_key, received_at, "
        "acked_at) SELECT 's', '77011110001', '5555', 'x', 'k' || n, $1, $1 "
        "FROM generate_series(1, 7) n",
        old,
    )
    keep = retention.Retention(timedelta(days=90), timedelta(days=90))
    passes = []
    while swept := await retention.sweep(database.pool, keep, clock.now(), batch=3):
        if not swept.total:
            break
        passes.append(swept.mo_messages)
    assert passes == [3, 3, 1]
    async with database.pool.acquire() as conn:
        await conn.execute("SET enable_seqscan = off")  # a tiny table: ask what a big one gets
        for statement in (retention.RetentionSQL.forget_mo, retention.RetentionSQL.forget_sessions):
            plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + statement, clock.now(), 3))
            assert "mo_messages_received" in plan or "survey_sessions_closed_at" in plan, plan
            assert "Limit" in plan
