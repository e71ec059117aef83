"""The audit trail: who did what, when, to which campaign or token (issue 15).

Every operator action is recorded by :func:`record` on the connection, and so in the
transaction, of the action itself: the campaign repository (create, edit, upload, approve,
start, pause, resume, cancel) and the token repository (create, revoke) call it, and the
API, the console and the CLI all go through those. A refused action rolls back its record
with it. The table is append-only in the database (migration 0038).

Who acted (:class:`Actor`): an API call or a console session is the token's name and role;
the CLI runs on the host with the database's own rights, as ``cli:<os user>`` with the admin
role (:func:`cli_actor`). ``details`` say what changed in words and counts: never a token's
value, never a subscriber's number.
"""

from __future__ import annotations

import enum
import getpass
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from dispatcher.kernel.sql import SqlFile

#: Most rows one page of the trail returns.
MAX_PAGE = 500
PAGE_SIZE = 50


class AuditSQL(SqlFile, domain="audit"):
    insert_event: str
    page: str


class AuditAction(enum.StrEnum):
    """What an operator did (``audit_events.action``)."""

    CREATE = "create"
    EDIT = "edit"
    UPLOAD = "upload"
    APPROVE = "approve"
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    TOKEN_CREATE = "token_create"
    TOKEN_REVOKE = "token_revoke"
    SIGN_IN = "sign_in"  # the console (a refused sign-in is only logged: no row per guess)
    SIGN_OUT = "sign_out"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a person's name (a token's name, ``cli:<os user>``) and role (a
    :class:`~dispatcher.kernel.states.Role` value; None when unknown)."""

    name: str
    role: str | None = None


#: Actions taken by the service itself or by code that names nobody (tests, benchmarks).
SYSTEM = Actor("system")


def cli_actor() -> Actor:
    """The person at the command line: the host's user, with the admin's rights (the CLI
    holds the database's credentials)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        user = "unknown"
    return Actor(f"cli:{user}"[:200], "admin")


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: int
    at: datetime
    actor: str
    actor_role: str | None
    action: str
    campaign_id: int | None
    target: str | None
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> AuditEvent:
        return cls(**{**dict(row), "details": dict(row["details"] or {})})

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "actor_role": self.actor_role,
            "action": self.action,
            "campaign_id": self.campaign_id,
            "target": self.target,
            "details": self.details,
        }


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which events a page holds; each None matches all."""

    campaign_id: int | None = None
    actor: str | None = None
    action: AuditAction | None = None
    since: datetime | None = None
    until: datetime | None = None


async def record(
    conn: asyncpg.Connection,
    actor: Actor,
    action: AuditAction,
    at: datetime | None,
    *,
    campaign_id: int | None = None,
    target: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append one event; ``conn`` is in the action's transaction. ``at`` is the caller's
    clock (None: the database's, for a caller without one)."""
    await conn.execute(
        AuditSQL.insert_event,
        at,
        actor.name,
        actor.role,
        action.value,
        campaign_id,
        target,
        dict(details or {}),
    )


class AuditLog:
    """Reads the trail (writing is :func:`record`'s)."""

    def __init__(self, executor: asyncpg.Pool | asyncpg.Connection) -> None:
        self._db = executor

    async def page(
        self, found: AuditFilter, *, before: int | None = None, limit: int = PAGE_SIZE
    ) -> list[AuditEvent]:
        """A page of events, newest first; pass the last id seen as ``before``."""
        rows = await self._db.fetch(
            AuditSQL.page,
            before,
            max(1, min(limit, MAX_PAGE)),
            found.campaign_id,
            found.actor,
            None if found.action is None else found.action.value,
            found.since,
            found.until,
        )
        return [AuditEvent.from_row(row) for row in rows]
