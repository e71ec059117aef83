"""SMS surveys at run time (R13): sessions, replies, follow-ups, timeouts.

The engine calls :func:`open_sessions` when the first question (the campaign message) was
accepted by the SMSC; the MO handler calls :func:`reply` for a subscriber's SMS to the short
code; a periodic job calls :func:`timeout_sweep` and :func:`unwait_stale`. Each works inside
the caller's connection (a savepoint when a transaction is already open), so the outbox
message and the session change commit together with the MO record, or not at all.

Decisions (README, "Surveys"):

* A reply is the option's number (``2``, ``2.``, `` 2) ``) or its text in any of the survey's
  languages, case-insensitive and trimmed.
* An invalid reply gets one re-prompt per question (the question again, with a line saying
  how to answer); a second invalid reply to the same question closes the session
  (state ``closed``) without further messages: we stop asking someone who is not answering.
* Follow-up questions and re-prompts are survey traffic, so they wait for the send window
  (R8); the thank-you answers the subscriber's own reply and may go at any hour (the table
  in :mod:`dispatcher.policy.waiting`). None of them counts against the caps (R7).
* The timeout (survey row, default 24 h) runs from when the last question was sent: the
  first question's submit opens the session with it; a reply that queues the next question
  (or a re-prompt) leaves the session without an expiry until that message is submitted
  (a trigger of migration 0015 on service_messages sets it then), so a question held
  overnight by the window does not time out before the subscriber sees it.
* A new survey reaching a number closes that number's open session of another survey.
* A reply can beat its session: the SMSC may deliver it a second after the question's
  submit_sm_resp, before the engine's recording transaction (which opens the session) has
  committed. So a reply that finds no open session while a survey question is in flight to
  the number is kept as ``waiting``, and the transaction that opens the session applies the
  waiting replies, oldest first. Both sides take the number's subscriber row lock before they
  look (the MO first thing, :meth:`MoRepository.lock_sender`; the opening before it changes
  any session), so one of them always sees the other's commit: the reply finds the session
  open, or the opening finds the reply waiting. No timing is assumed. A question that ends
  otherwise (refused, back to the queue, unknown) opens nothing, and the housekeeping sweep
  (:func:`unwait_stale`) marks its waiting replies ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from campaigns.languages import pick_language
from campaigns.templates import question_message, render
from dispatcher.kernel.sql import SqlFile
from dispatcher.kernel.states import ServiceKind, SurveySessionState
from dispatcher.program.mo import IGNORED, SURVEY_ANSWER, WAITING, MoRepository
from dispatcher.program.outbox import ServiceMessage, enqueue


class SurveySQL(SqlFile, domain="surveys"):
    lock_numbers: str
    question_in_flight: str
    supersede_open: str
    open_sessions: str
    lock_open_session: str
    record_answer: str
    advance: str
    mark_reprompted: str
    close_session: str
    timeout_sweep: str


REPROMPT = {
    "kk": "Жауап ретінде нұсқаның нөмірін жіберіңіз (1-{n}).",
    "ru": "Пожалуйста, ответьте номером варианта (1-{n}).",
    "en": "Please reply with the number of your choice (1-{n}).",
}


@dataclass(frozen=True, slots=True)
class ReplyOutcome:
    """What a reply did: ``answered`` (next question queued), ``completed`` (thanks queued),
    ``reprompted`` (re-prompt queued) or ``closed`` (second invalid reply)."""

    kind: str
    session_id: int
    campaign_id: int
    question_no: int
    option_no: int | None = None
    message_id: int | None = None


@dataclass(frozen=True, slots=True)
class _Session:
    id: int
    campaign_id: int
    question_no: int
    reprompted: bool
    language: str
    questions: list[dict[str, Any]]
    thanks: dict[str, str]
    timeout: timedelta

    @classmethod
    def from_row(cls, row: Any) -> _Session:
        questions = row["questions"]
        return cls(
            row["id"],
            row["campaign_id"],
            row["question_no"],
            row["reprompted"],
            pick_language(questions[0]["texts"], row["language"]),
            questions,
            row["thanks"],
            row["timeout"],
        )

    def question(self, number: int) -> str:
        """Question ``number`` as sent: its text and numbered options."""
        return render(question_message(self.questions[number - 1], self.language), {})


@dataclass(frozen=True, slots=True)
class FirstQuestion:
    """A survey's first question accepted by the SMSC for one recipient."""

    campaign_id: int
    delivery_id: int | None
    msisdn: str
    language: str | None = None  # the language it went out in; None: the subscriber's


async def open_sessions(
    conn: asyncpg.Connection, accepted: Sequence[FirstQuestion], now: datetime
) -> list[int]:
    """Open the survey sessions for a batch of first questions, in two statements whatever
    the batch size; returns the new session ids (repeats and non-survey campaigns open
    nothing). An open session of another survey for the same number is closed first."""
    if not accepted:
        return []
    campaign_ids = [a.campaign_id for a in accepted]
    msisdns = [a.msisdn for a in accepted]
    async with conn.transaction():
        await conn.execute(SurveySQL.lock_numbers, msisdns)
        await conn.execute(SurveySQL.supersede_open, campaign_ids, msisdns, now)
        rows = await conn.fetch(
            SurveySQL.open_sessions,
            campaign_ids,
            [a.delivery_id for a in accepted],
            msisdns,
            [a.language for a in accepted],
            now,
        )
        await _apply_waiting(conn, msisdns, now)
    return [row["id"] for row in rows]


async def _apply_waiting(conn: asyncpg.Connection, msisdns: Sequence[str], now: datetime) -> None:
    """Apply the replies that arrived while these numbers' first question was in flight, in
    the order they arrived (the caller holds the numbers' locks)."""
    replies = MoRepository(conn)
    for waiting in await replies.waiting_replies(msisdns):
        outcome = await handle_reply(conn, waiting.msisdn, waiting.body, now)
        await replies.handled(waiting.id, IGNORED if outcome is None else SURVEY_ANSWER, now)


async def reply(conn: asyncpg.Connection, msisdn: str, text: str, now: datetime) -> str:
    """An SMS from ``msisdn`` to the short code that is no other command: SURVEY_ANSWER when
    the number's open survey took it, WAITING when no session is open yet but a survey
    question is in flight to the number (:func:`open_sessions` applies it), else IGNORED.
    The caller holds the sender's lock (:meth:`MoRepository.lock_sender`)."""
    if await handle_reply(conn, msisdn, text, now) is not None:
        return SURVEY_ANSWER
    if await conn.fetchval(SurveySQL.question_in_flight, msisdn):
        return WAITING
    return IGNORED


async def unwait_stale(executor: asyncpg.Pool | asyncpg.Connection, now: datetime) -> int:
    """Waiting replies whose question opened no session (it was refused, re-queued or became
    unknown) → ignored; returns how many."""
    return await MoRepository(executor).unwait_stale(now)


async def open_session(
    conn: asyncpg.Connection,
    campaign_id: int,
    delivery_id: int | None,
    msisdn: str,
    now: datetime,
    *,
    language: str | None = None,
) -> int | None:
    """Open one session (see :func:`open_sessions`); its id, or None when it was already
    open or the campaign has no survey."""
    ids = await open_sessions(
        conn, [FirstQuestion(campaign_id, delivery_id, msisdn, language)], now
    )
    return ids[0] if ids else None


def match_option(reply: str, options: list[dict[str, str]]) -> int | None:
    """The 1-based option ``reply`` chooses, by number or by text in any language."""
    text = reply.strip().rstrip(".)").strip().casefold()
    if text.isdigit():
        number = int(text)
        return number if 1 <= number <= len(options) else None
    for number, option in enumerate(options, 1):
        if any(text == value.strip().casefold() for value in option.values()):
            return number
    return None


async def handle_reply(
    conn: asyncpg.Connection, msisdn: str, text: str, now: datetime
) -> ReplyOutcome | None:
    """Apply an SMS reply from ``msisdn``; None when the number has no open survey (the
    caller then treats the SMS as something else). See the module docstring for the rules."""
    async with conn.transaction():
        row = await conn.fetchrow(SurveySQL.lock_open_session, msisdn, now)
        if row is None:
            return None
        session = _Session.from_row(row)
        options = session.questions[session.question_no - 1]["options"]
        option_no = match_option(text, options)
        if option_no is None:
            return await _invalid(conn, session, msisdn, now)
        await conn.execute(SurveySQL.record_answer, session.id, session.question_no, option_no, now)
        if session.question_no < len(session.questions):
            return await _next_question(conn, session, msisdn, option_no, now)
        return await _complete(conn, session, msisdn, option_no, now)


async def _next_question(
    conn: asyncpg.Connection, session: _Session, msisdn: str, option_no: int, now: datetime
) -> ReplyOutcome:
    q_no = session.question_no
    await conn.execute(SurveySQL.advance, session.id, q_no)
    message_id = await _send(
        conn,
        session,
        msisdn,
        ServiceKind.SURVEY_QUESTION,
        session.question(q_no + 1),
        f"survey:{session.id}:q{q_no + 1}",
    )
    return ReplyOutcome("answered", session.id, session.campaign_id, q_no, option_no, message_id)


async def _complete(
    conn: asyncpg.Connection, session: _Session, msisdn: str, option_no: int, now: datetime
) -> ReplyOutcome:
    await conn.execute(SurveySQL.close_session, session.id, SurveySessionState.COMPLETED, now)
    body = render(session.thanks[pick_language(session.thanks, session.language)], {})
    message_id = await _send(
        conn,
        session,
        msisdn,
        ServiceKind.SURVEY_THANKS,
        body,
        f"survey:{session.id}:thanks",
    )
    return ReplyOutcome(
        "completed", session.id, session.campaign_id, session.question_no, option_no, message_id
    )


async def _invalid(
    conn: asyncpg.Connection, session: _Session, msisdn: str, now: datetime
) -> ReplyOutcome:
    q_no = session.question_no
    if session.reprompted:
        await conn.execute(SurveySQL.close_session, session.id, SurveySessionState.CLOSED, now)
        return ReplyOutcome("closed", session.id, session.campaign_id, q_no)
    await conn.execute(SurveySQL.mark_reprompted, session.id, q_no)
    count = len(session.questions[q_no - 1]["options"])
    hint = REPROMPT[pick_language(REPROMPT, session.language, "en")].format(n=count)
    message_id = await _send(
        conn,
        session,
        msisdn,
        ServiceKind.SURVEY_REPROMPT,
        f"{hint}\n{session.question(q_no)}",
        f"survey:{session.id}:reprompt:{q_no}",
    )
    return ReplyOutcome("reprompted", session.id, session.campaign_id, q_no, None, message_id)


async def _send(
    conn: asyncpg.Connection,
    session: _Session,
    msisdn: str,
    kind: ServiceKind,
    body: str,
    dedupe_key: str,
) -> int | None:
    message = ServiceMessage(msisdn, kind, body, dedupe_key, session.campaign_id)
    return await enqueue(conn, message)


async def timeout_sweep(executor: asyncpg.Pool | asyncpg.Connection, now: datetime) -> int:
    """Open sessions past their expiry → timed_out (set-based); returns how many."""
    rows = await executor.fetch(SurveySQL.timeout_sweep, now)
    return len(rows)
