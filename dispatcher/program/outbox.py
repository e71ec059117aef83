"""Program service messages (confirmations, bonus notices, survey follow-ups).

They are queued in ``service_messages`` inside the caller's transaction, so a message exists
if and only if the state change that caused it committed; the dispatch engine sends them
ahead of campaign traffic. Whether one waits for the send window (R8) follows from its kind
(:mod:`dispatcher.policy.waiting`), never from the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from dispatcher.kernel.sql import SqlFile
from dispatcher.kernel.states import ServiceKind
from dispatcher.policy.waiting import waits_for_window


class OutboxSQL(SqlFile, domain="outbox"):
    enqueue: str


@dataclass(frozen=True, slots=True)
class ServiceMessage:
    msisdn: str
    kind: ServiceKind
    body: str
    dedupe_key: str | None = None
    campaign_id: int | None = None

    @property
    def in_window(self) -> bool:
        """Whether it leaves only while the send window is open (R8), by its kind."""
        return waits_for_window(self.kind)


async def enqueue(conn: asyncpg.Connection, message: ServiceMessage) -> int | None:
    """Queue ``message``; returns its id, or None when its dedupe key was already queued."""
    message_id: int | None = await conn.fetchval(
        OutboxSQL.enqueue,
        message.msisdn,
        message.kind.value,
        message.body,
        message.in_window,
        message.dedupe_key,
        message.campaign_id,
        None,
    )
    return message_id
