"""Retention of personal data (R11): subscribers' SMS and the link from a survey session to a
number are kept only as long as their settings say.

:func:`sweep` is one bounded pass over each table (``retention.sql``): a batch of at most
``batch`` rows, oldest first, found by an index on the time column, so it stays short on a
table of millions of rows; the housekeeping service calls it again at once while it found
work. Survey answers need no sweep: they forget their session when it closes (migration
0018), so they cannot be linked to a number from then on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from dispatcher.kernel.sql import SqlFile

#: Rows one statement deletes or erases at most.
BATCH = 5000


class RetentionSQL(SqlFile, domain="retention"):
    forget_mo: str
    forget_sessions: str


@dataclass(frozen=True, slots=True)
class Retention:
    """How long each table keeps its personal data."""

    mo_messages: timedelta
    survey_sessions: timedelta


@dataclass(frozen=True, slots=True)
class Swept:
    """What one pass removed: MO messages deleted, survey sessions whose number was erased."""

    mo_messages: int
    survey_sessions: int

    @property
    def total(self) -> int:
        return self.mo_messages + self.survey_sessions


async def sweep(
    executor: asyncpg.Pool | asyncpg.Connection,
    retention: Retention,
    now: datetime,
    batch: int = BATCH,
) -> Swept:
    """One batch per table of the rows past their retention as of ``now``."""
    mo = await executor.fetchval(RetentionSQL.forget_mo, now - retention.mo_messages, batch)
    sessions = await executor.fetchval(
        RetentionSQL.forget_sessions, now - retention.survey_sessions, batch
    )
    return Swept(mo, sessions)
