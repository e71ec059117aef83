"""Subscribers' SMS (MO): STOP to the short code, anything to 1204, survey replies, HELP.

:func:`classify` is pure; :class:`MoRepository` records the message and :class:`MoDesk`
applies it, both inside the caller's transaction. Which MO is the SMSC's resend of an
unacknowledged one (and so is not applied twice, invariant 4) is decided by the caller,
:class:`dispatcher.engine.sink.InboundSink`, from what the repository records of each
message's deliver_sm_resp.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from dispatcher.kernel.sql import SqlFile
from dispatcher.kernel.states import Channel, ServiceKind
from dispatcher.program import texts
from dispatcher.program.membership import Membership
from dispatcher.program.outbox import ServiceMessage, enqueue


class MoSQL(SqlFile, domain="mo"):
    lock_sender: str
    unacknowledged_copies: str
    insert_mo: str
    redelivered: str
    answered: str
    mo_handled: str
    waiting_replies: str
    unwait_stale: str


#: The default attribution span of the inbox (setting ``inbox_attribution_days``).
ATTRIBUTION_SPAN = timedelta(days=7)

STOP_WORDS = frozenset({"stop", "стоп", "тоқтат", "токтат"})
HELP_WORDS = frozenset({"help", "помощь", "көмек", "комек", "?"})


class Intent(enum.Enum):
    LEAVE = "left"
    DNC = "dnc"
    HELP = "help"
    REPLY = "reply"  # perhaps a survey answer; otherwise ignored
    OTHER = "ignored"  # not for us (another destination)


#: Outcomes of a reply (``mo_messages.outcome``): answered an open survey; waiting for the
#: session of a survey question in flight to the number (applied when it opens); neither.
SURVEY_ANSWER = "survey_answer"
WAITING = "waiting"
IGNORED = "ignored"


def classify(destination: str, text: str, short_code: str, dnc_code: str) -> Intent:
    """What an MO message asks for (R2: STOP words any case, surrounding spaces; R9: 1204)."""
    dest = destination.strip().lstrip("+")
    if dest == dnc_code:
        return Intent.DNC
    if dest != short_code:
        return Intent.OTHER
    word = text.strip().strip(".!").casefold()
    if word in STOP_WORDS:
        return Intent.LEAVE
    if word in HELP_WORDS:
        return Intent.HELP
    return Intent.REPLY


#: Survey replies: (conn, msisdn, text, now) → SURVEY_ANSWER, WAITING or IGNORED. Called with
#: the sender's row locked (:meth:`MoRepository.lock_sender`).
SurveyReply = Callable[[asyncpg.Connection, str, str, datetime], Awaitable[str]]


async def no_survey(conn: asyncpg.Connection, msisdn: str, text: str, now: datetime) -> str:
    return IGNORED


class MoDesk:
    def __init__(
        self,
        membership: Membership,
        short_code: str,
        dnc_code: str,
        survey_reply: SurveyReply = no_survey,
    ) -> None:
        self._membership = membership
        self._short_code = short_code
        self._dnc_code = dnc_code
        self._survey_reply = survey_reply

    async def handle(
        self,
        conn: asyncpg.Connection,
        msisdn: str,
        destination: str,
        text: str,
        mo_id: int,
        now: datetime,
    ) -> str:
        """Apply one MO message inside ``conn``'s transaction; returns the outcome recorded."""
        intent = classify(destination, text, self._short_code, self._dnc_code)
        evidence = {"mo_message_id": mo_id}
        if intent is Intent.DNC:
            await self._membership.dnc_block(conn, msisdn, Channel.SMS, evidence, now)
        elif intent is Intent.LEAVE:
            await self._membership.leave(conn, msisdn, Channel.SMS, evidence, now, reason="stop")
        elif intent is Intent.HELP:
            lang = await self._membership.language_of(conn, msisdn)
            await enqueue(
                conn,
                ServiceMessage(
                    msisdn,
                    ServiceKind.HELP,
                    texts.help_text(lang, self._membership.settings),
                    dedupe_key=f"help:{mo_id}",
                ),
            )
        elif intent is Intent.REPLY:
            return await self._survey_reply(conn, msisdn, text, now)
        return str(intent.value)


@dataclass(frozen=True, slots=True)
class ReceivedMo:
    """An MO message as recorded (a ``mo_messages`` row)."""

    id: int
    smsc: str
    msisdn: str
    destination: str
    body: str
    dedupe_key: str
    received_at: datetime
    campaign_id: int | None = None  # the campaign that last reached the number (inbox)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ReceivedMo:
        return cls(
            id=row["id"],
            smsc=row["smsc"],
            msisdn=row["msisdn"],
            destination=row["destination"],
            body=row["body"],
            dedupe_key=row["dedupe_key"],
            received_at=row["received_at"],
            campaign_id=row["campaign_id"],
        )


@dataclass(frozen=True, slots=True)
class UnacknowledgedCopy:
    """An earlier copy of a message whose deliver_sm_resp is not known to have been written:
    ``lost`` when it is known not to have been (its connection was gone); otherwise ``node``
    is answering it or died first. ``generation`` counts the resends taken over so far."""

    id: int
    node: str | None
    generation: int
    lost: bool

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> UnacknowledgedCopy:
        return cls(row["id"], row["node"], row["resends"], row["ack_lost_at"] is not None)


@dataclass(frozen=True, slots=True)
class WaitingReply:
    """A survey reply that arrived while its question was in flight."""

    id: int
    msisdn: str
    body: str


@dataclass(frozen=True, slots=True)
class Answer:
    """What became of one delivery's deliver_sm_resp: ``acknowledged`` or lost."""

    mo_id: int
    generation: int
    acknowledged: bool


class MoRepository:
    """The only caller of ``mo.sql``. It works on the caller's connection (or pool, for the
    batch of answers), so recording a message, applying it (:class:`MoDesk`) and noting the
    outcome commit together."""

    def __init__(self, conn: asyncpg.Connection | asyncpg.Pool) -> None:
        self._conn = conn

    async def lock_sender(self, msisdn: str) -> None:
        """Lock the sender's subscriber row for the transaction (first, before mo_messages
        rows): one number's MO apply one at a time, and serialise with its survey opening."""
        await self._conn.execute(MoSQL.lock_sender, msisdn)

    async def unacknowledged_copies(
        self, dedupe_key: str, since: datetime
    ) -> list[UnacknowledgedCopy]:
        """Copies of ``dedupe_key`` received since ``since`` not known to be acknowledged."""
        rows = await self._conn.fetch(MoSQL.unacknowledged_copies, dedupe_key, since)
        return [UnacknowledgedCopy.from_row(r) for r in rows]

    async def record(
        self,
        smsc: str,
        msisdn: str,
        destination: str,
        body: str,
        dedupe_key: str,
        now: datetime,
        *,
        node: str | None = None,
        acked_at: datetime | None = None,
        span: timedelta = ATTRIBUTION_SPAN,
    ) -> ReceivedMo:
        """Record a received message, being answered by ``node``; ``acked_at``: when it was
        acknowledged already (no SMPP response follows), else the answer is recorded later
        (:meth:`answered`). It names the campaign that last reached the number within
        ``span`` before ``now`` (the inbox; the setting ``inbox_attribution_days``)."""
        row = await self._conn.fetchrow(
            MoSQL.insert_mo,
            smsc,
            msisdn,
            destination,
            body,
            dedupe_key,
            node,
            acked_at,
            now,
            span,
        )
        return ReceivedMo.from_row(row)

    async def redelivered(
        self, copy: UnacknowledgedCopy, node: str, acked_at: datetime | None
    ) -> int | None:
        """Take over ``copy`` for its resend, answered by ``node``: the new generation, or
        None when the copy changed since it was read (answered, or taken over by another)."""
        value = await self._conn.fetchval(
            MoSQL.redelivered, copy.id, node, copy.generation, acked_at
        )
        return None if value is None else int(value)

    async def answered(self, answers: Sequence[Answer], now: datetime) -> None:
        """Record what became of a batch of deliver_sm_resp (a later generation wins)."""
        await self._conn.execute(
            MoSQL.answered,
            [a.mo_id for a in answers],
            [a.generation for a in answers],
            now,
            [a.acknowledged for a in answers],
        )

    async def handled(self, mo_id: int, outcome: str, now: datetime) -> None:
        """Note what the message came to (``left``, ``dnc``, ``help``, ``survey_answer``,
        ``waiting``, ``ignored``)."""
        await self._conn.execute(MoSQL.mo_handled, mo_id, outcome, now)

    async def waiting_replies(self, msisdns: Sequence[str]) -> list[WaitingReply]:
        """The numbers' replies waiting for a survey session, oldest first, locked."""
        rows = await self._conn.fetch(MoSQL.waiting_replies, list(msisdns))
        return [WaitingReply(r["id"], r["msisdn"], r["body"]) for r in rows]

    async def unwait_stale(self, now: datetime) -> int:
        """Waiting replies whose question is no longer in flight → ignored; how many."""
        return len(await self._conn.fetch(MoSQL.unwait_stale, now))
