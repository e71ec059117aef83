"""Subscribers' SMS (MO): STOP to the short code, anything to 1204, survey replies, HELP.

:func:`classify` is pure; :class:`MoRepository` records the message and :class:`MoDesk`
applies it, both inside the caller's transaction, so the SMSC's resend of an unacknowledged
message is recognised and never applied twice (invariant 4).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from dispatcher.kernel.sql import SqlFile
from dispatcher.kernel.states import Channel, ServiceKind
from dispatcher.program import texts
from dispatcher.program.membership import Membership
from dispatcher.program.outbox import ServiceMessage, enqueue


class MoSQL(SqlFile, domain="mo"):
    insert_mo: str
    mo_handled: str


STOP_WORDS = frozenset({"stop", "стоп", "тоқтат", "токтат"})
HELP_WORDS = frozenset({"help", "помощь", "көмек", "комек", "?"})


class Intent(enum.Enum):
    LEAVE = "left"
    DNC = "dnc"
    HELP = "help"
    REPLY = "reply"  # perhaps a survey answer; otherwise ignored
    OTHER = "ignored"  # not for us (another destination)


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


#: Survey replies: (conn, msisdn, text, now) → True when an open survey took the reply.
SurveyReply = Callable[[asyncpg.Connection, str, str, datetime], Awaitable[bool]]


async def no_survey(conn: asyncpg.Connection, msisdn: str, text: str, now: datetime) -> bool:
    return False


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
                    texts.text("help", lang),
                    dedupe_key=f"help:{mo_id}",
                ),
            )
        elif intent is Intent.REPLY:
            took = await self._survey_reply(conn, msisdn, text, now)
            return "survey_answer" if took else "ignored"
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
        )


class MoRepository:
    """The only caller of ``mo.sql``. It works on the caller's connection, so recording a
    message, applying it (:class:`MoDesk`) and noting the outcome commit together."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def record(
        self, smsc: str, msisdn: str, destination: str, body: str, dedupe_key: str, now: datetime
    ) -> ReceivedMo | None:
        """Record a received message; None when ``dedupe_key`` was recorded before (the
        SMSC's resend of a message whose acknowledgement it never got)."""
        row = await self._conn.fetchrow(
            MoSQL.insert_mo, smsc, msisdn, destination, body, dedupe_key, now
        )
        return None if row is None else ReceivedMo.from_row(row)

    async def handled(self, mo_id: int, outcome: str, now: datetime) -> None:
        """Note what the message came to (``left``, ``dnc``, ``help``, ``survey_answer``,
        ``ignored``)."""
        await self._conn.execute(MoSQL.mo_handled, mo_id, outcome, now)
