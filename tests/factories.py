"""Set-up rows for tests: subscribers, members, 1204 blocks, campaigns and their deliveries,
survey answers. One statement per table whatever the count, so 3,000 recipients cost what
3 do. Straight rows: no consent entry, no join grant, no confirmation — a test that needs
those joins through ``Membership`` (see tests/bonus_helpers.py) or the HTTP API."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from campaigns.repository import CampaignRepository
from campaigns.spec import parse_campaign
from dispatcher.db import Database

NOVEMBER_1 = datetime(2026, 11, 1, tzinfo=UTC)
"""Earlier in the month of the test clock (tests/conftest.py: 2026-11-23 12:00 UTC)."""


async def subscribers(
    database: Database,
    msisdns: list[str],
    *,
    status: str | None = None,
    language: str | None = None,
) -> None:
    """Subscribers ``msisdns``: new ones active unless ``status`` says otherwise; existing
    ones take the ``status`` and ``language`` given and keep what is not given."""
    await database.pool.execute(
        "INSERT INTO subscribers (msisdn, status, language) "
        "SELECT m, coalesce($2::subscriber_status, 'active'), $3::language "
        "FROM unnest($1::text[]) AS m "
        "ON CONFLICT (msisdn) DO UPDATE "
        "SET status = coalesce($2::subscriber_status, subscribers.status), "
        "language = coalesce($3::language, subscribers.language) "
        "WHERE $2::subscriber_status IS NOT NULL OR $3::language IS NOT NULL",
        msisdns,  # $1
        status,  # $2: None keeps an existing subscriber's status
        language,  # $3: None keeps an existing subscriber's language
    )


async def members(
    database: Database,
    msisdns: list[str],
    *,
    joined_at: datetime = NOVEMBER_1,
    channel: str = "ussd",
) -> None:
    """``msisdns`` as members since ``joined_at`` (subscribers created as needed)."""
    await subscribers(database, msisdns)
    await database.pool.execute(
        "INSERT INTO memberships (msisdn, joined_at, join_channel) "
        "SELECT unnest($1::text[]), $2, $3",
        msisdns,
        joined_at,
        channel,
    )


async def dnc(
    database: Database,
    msisdns: list[str],
    *,
    channel: str = "sms",
    at: datetime = NOVEMBER_1,
) -> None:
    """1204 blocks on ``msisdns``, made at ``at`` through ``channel``."""
    await database.pool.execute(
        "INSERT INTO dnc_blocks (msisdn, blocked_at, channel) SELECT unnest($1::text[]), $2, $3",
        msisdns,
        at,
        channel,
    )


async def campaign(
    database: Database,
    audience: list[str],
    *,
    kind: str = "info",
    scope: str = "smart",
    texts: Mapping[str, str] | None = None,
    state: str = "running",
    priority: int = 0,
    **columns: Any,
) -> int:
    """A campaign queued to ``audience`` (texts: a Russian "Partner offer" unless given);
    its id. ``columns`` sets any other column of ``campaigns``. For a survey, whose
    questions live in other tables, see :func:`campaign_from_spec`."""
    campaign_id = int(
        await database.pool.fetchval(
            "INSERT INTO campaigns (name, kind, scope, texts, state, priority) "
            "VALUES ('c', $1, $2, $3, $4, $5) RETURNING id",
            kind,
            scope,
            dict(texts or {"ru": "Partner offer"}),  # jsonb: the pool's codec encodes it
            state,
            priority,
        )
    )
    for column, value in columns.items():
        await database.pool.execute(
            f"UPDATE campaigns SET {column} = $2 WHERE id = $1", campaign_id, value
        )
    await deliveries(database, campaign_id, audience)
    return campaign_id


async def campaign_from_spec(
    database: Database, spec: Mapping[str, Any], audience: list[str], now: datetime
) -> int:
    """A campaign created from the JSON ``spec`` through the repository (surveys included),
    queued to ``audience`` and started at ``now``; its id."""
    repository = CampaignRepository(database.pool)
    created = await repository.create(parse_campaign(spec, now, 10), "test", now)
    await deliveries(database, created.id, audience)
    await repository.transition(created.id, "start", now)
    return int(created.id)


async def deliveries(database: Database, campaign_id: int, msisdns: list[str]) -> list[int]:
    """Queued deliveries of campaign ``campaign_id`` to ``msisdns``; their ids, in order."""
    rows = await database.pool.fetch(
        "INSERT INTO deliveries (campaign_id, msisdn) "
        "SELECT $1, m FROM unnest($2::text[]) WITH ORDINALITY AS u (m, n) ORDER BY n "
        "RETURNING id",
        campaign_id,
        msisdns,
    )
    return [int(r["id"]) for r in rows]


async def survey_answer(
    database: Database,
    survey_id: int,
    msisdn: str,
    option_no: int,
    *,
    at: datetime,
    state: str = "completed",
    closed_at: datetime | None = None,
) -> None:
    """A survey session of ``msisdn`` opened at ``at`` (expiring a day later) in ``state``,
    with ``option_no`` answered to question 1 at ``at``."""
    session_id = await database.pool.fetchval(
        "INSERT INTO survey_sessions (survey_id, msisdn, state, opened_at, expires_at, "
        "closed_at) VALUES ($1, $2, $3, $4, $4::timestamptz + interval '1 day', $5) "
        "RETURNING id",
        survey_id,
        msisdn,
        state,
        at,
        closed_at,
    )
    await database.pool.execute(
        "INSERT INTO survey_answers (session_id, question_no, option_no, answered_at) "
        "VALUES ($1, 1, $2, $3)",
        session_id,
        option_no,
        at,
    )


# The first spellings of `members` and `campaign`, still imported through
# tests.dispatch_helpers by tests/test_dispatch.py and tests/test_inbound_smpp.py; switch
# those, then delete these two.


async def add_members(database: Database, msisdns: list[str], *, member: bool = True) -> None:
    """:func:`members`, or with ``member=False`` :func:`subscribers` only."""
    if member:
        await members(database, msisdns)
    else:
        await subscribers(database, msisdns)


async def add_campaign(
    database: Database, msisdns: list[str], *, text: str = "Partner offer", **options: Any
) -> int:
    """:func:`campaign` with one Russian ``text``."""
    return await campaign(database, msisdns, texts={"ru": text}, **options)
