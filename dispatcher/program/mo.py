"""Subscribers' SMS (MO): STOP to the short code, anything to 1204, survey replies, HELP.

:func:`classify` is pure; :class:`MoDesk` applies the result inside the caller's
transaction — the one that records the MO message — so the SMSC's resend of an
unacknowledged message is recognised and never applied twice (invariant 4).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from datetime import datetime

import asyncpg

from dispatcher.program import texts
from dispatcher.program.membership import Membership
from dispatcher.program.outbox import ServiceMessage, enqueue
from dispatcher.states import Channel, ServiceKind

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
